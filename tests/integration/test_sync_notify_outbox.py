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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from models import QueuedMail, SyncRun
from services import mail_queue, sync_engine
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.mailer import MemoryMailer
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
