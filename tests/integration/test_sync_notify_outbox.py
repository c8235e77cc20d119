"""A sync's notifications are queued in the sync's own transaction: the user hears of exactly what was committed.

Faults catalogue, "process killed": a process that dies right after the sync commits, before its mail goes out,
leaves the mail queued, and the next pass sends it once. (A sync whose commit fails queues nothing:
tests/integration/test_sync_database_faults.py.)
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from models import QueuedMail, SyncRun
from services import mail_queue, sync_engine
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.mailer import MemoryMailer, OutboxMailer
from services.plaid_client import PlaidGateway
from services.sync import sync_item
from tests.factories import FakeClock
from tests.integration.sync_helpers import FAST, ledger, link_item, make_user, process_env, truth


def _queued(c: Container) -> int:
    with unit_of_work(c.engine) as s:
        return int(s.exec(select(func.count()).select_from(QueuedMail)).one())


class Killed(BaseException):
    """The process ends here (SIGKILL, power cut): nothing after this point runs, not even ``except Exception``."""


def _killed_after(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The process dies right after ``sync_engine.<name>`` returns: its transaction committed, nothing else ran."""
    real = getattr(sync_engine, name)

    def then_die(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(sync_engine, name, then_die)


def _synced_once(c: Container, gateway: PlaidGateway, mailer: MemoryMailer) -> tuple[uuid.UUID, uuid.UUID, str]:
    """A user with a bank synced once, and nothing queued or sent yet: (user id, item id, the bank's item id)."""
    user_id = make_user(c)
    item_id, pid = link_item(c, gateway, user_id)
    assert sync_item(c, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    mail_queue.send(c)
    mailer.sent.clear()
    return user_id, item_id, pid


def test_news_committed_by_a_sync_is_told_even_if_the_process_dies_before_sending(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    mailer: MemoryMailer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_id, item_id, pid = _synced_once(container, gateway, mailer)
    demo_bank.mutate(pid, "add", cents=4_200, name="CORNER BAKERY")

    with monkeypatch.context() as patch, pytest.raises(Killed):
        _killed_after(patch, "apply_run")  # the ledger, cursor and run committed; the process is gone
        sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert mailer.sent == [] and _queued(container) == 1  # committed with the transaction, not yet sent

    assert mail_queue.send(container) == 1  # the next pass (scheduler, CLI) sends it
    (digest,) = mailer.sent
    assert digest["Subject"].startswith("finsync: 1 new transaction") and "CORNER BAKERY" in digest.get_content()
    assert mail_queue.send(container) == 0 and len(mailer.sent) == 1  # once


def test_a_connection_that_needs_the_user_is_told_even_if_the_process_dies_before_sending(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    mailer: MemoryMailer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_id, item_id, pid = _synced_once(container, gateway, mailer)
    demo_bank.set_fault(pid, "login_required")

    with monkeypatch.context() as patch, pytest.raises(Killed):
        _killed_after(patch, "finish_unsuccessful")  # the item is marked "sign in again"; the process is gone
        sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert mailer.sent == [] and _queued(container) == 1
    # The next run finds the connection already marked: it is not news again, so only the queue can tell it.
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "login_required"
    assert mailer.sent == [] and _queued(container) == 1
    assert mail_queue.send(container) == 1
    (alert,) = mailer.sent
    assert str(alert["Subject"]).startswith("finsync: a connection needs your attention:")


@pytest.mark.slow
def test_a_cli_sync_killed_while_handing_its_mail_over_leaves_it_queued_and_it_goes_out_once(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    mailer: MemoryMailer,
    clock: FakeClock,
    tmp_path: Path,
) -> None:
    """A real process and a real SIGKILL: `sync` commits, connects to the mail server (which never answers),
    and dies there. The mail stays queued, leased for a while, then the next pass sends it, once."""
    user_id, _, pid = _synced_once(container, gateway, mailer)
    demo_bank.mutate(pid, "add", cents=4_200, name="CORNER BAKERY")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never greets: the child waits in its send
        silent.settimeout(120)
        env = process_env(container, demo_bank) | {"SMTP_URL": f"smtp://127.0.0.1:{silent.getsockname()[1]}"}
        child = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "sync", "--email", "ada@example.com"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            connection, _ = silent.accept()  # the child is handing the digest over
            with connection:
                with unit_of_work(container.engine) as s:
                    run = s.exec(select(SyncRun).where(SyncRun.trigger == "cli")).one()
                    assert (run.status, run.added) == ("ok", 1)  # committed before any mail was tried
                child.send_signal(signal.SIGKILL)
                child.wait(30)
        finally:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert ledger(container, user_id) == truth(demo_bank, pid)
    assert mailer.sent == [] and _queued(container) == 1  # claimed by the dead child, not lost

    clock.now = datetime.now(UTC) + mail_queue.LEASE / 2
    assert mail_queue.send(container) == 0  # the dead child's lease still holds: no second sender meanwhile
    clock.now = datetime.now(UTC) + mail_queue.LEASE + timedelta(seconds=1)
    assert mail_queue.send(container) == 1  # then the next pass sends it
    (digest,) = mailer.sent
    assert "CORNER BAKERY" in digest.get_content()
    assert mail_queue.send(container) == 0 and _queued(container) == 0 and len(mailer.sent) == 1


@contextmanager
def _database_gone_once_sent(c: Container) -> Iterator[list[str]]:
    """The database goes away (a restart, a failover) just as a delivered mail is crossed off the queue."""
    failed: list[str] = []

    def refuse(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if not failed and statement.lstrip().upper().startswith("DELETE FROM MAIL_QUEUE"):
            failed.append(statement)
            raise OperationalError(statement, None, ConnectionError("server closed the connection unexpectedly"))

    event.listen(c.engine, "before_cursor_execute", refuse)
    try:
        yield failed
    finally:
        event.remove(c.engine, "before_cursor_execute", refuse)


def test_a_notification_the_database_could_not_cross_off_is_not_delivered_twice(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, mailer: MemoryMailer, clock: FakeClock
) -> None:
    """Faults catalogue, "DB down" meets "notification exactly once": the mail went out, the queue still holds it,
    and the retry after its lease must not give the user a second copy (without SMTP: a second outbox file)."""
    user_id, item_id, pid = _synced_once(container, gateway, mailer)
    outbox = container.settings.outbox_dir
    c = replace(container, mailer=OutboxMailer(outbox, container.settings.mail_from))
    demo_bank.mutate(pid, "add", cents=4_200, name="CORNER BAKERY")
    with _database_gone_once_sent(c) as failed:
        assert sync_item(c, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    assert failed, "the fault never fired: no mail was crossed off"
    assert len(list(outbox.glob("*.eml"))) == 1 and _queued(c) == 1  # delivered; the queue could not tell
    clock.advance(seconds=mail_queue.LEASE.total_seconds() + 1)
    assert mail_queue.send(c) == 1  # the retry finds the mail already delivered and crosses it off
    (digest,) = outbox.glob("*.eml")
    assert "CORNER BAKERY" in digest.read_text() and _queued(c) == 0
    assert ledger(c, user_id) == truth(demo_bank, pid)


def test_a_notification_sent_again_over_smtp_carries_the_same_message_id(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, mailer: MemoryMailer, clock: FakeClock
) -> None:
    """With SMTP a second hand-over cannot be taken back; its Message-ID is the first one's, so the recipient's mail
    system (which keeps one message per Message-ID) shows it once."""
    user_id, item_id, pid = _synced_once(container, gateway, mailer)
    demo_bank.mutate(pid, "add", cents=4_200, name="CORNER BAKERY")
    with _database_gone_once_sent(container):
        assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "ok"
    clock.advance(seconds=mail_queue.LEASE.total_seconds() + 1)
    assert mail_queue.send(container) == 1
    first, again = mailer.sent
    assert first["Message-ID"] == again["Message-ID"] and first.get_content() == again.get_content()
    assert _queued(container) == 0
