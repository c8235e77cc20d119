"""A sync's notifications are queued in the sync's own transaction: the user hears of exactly what was committed.

Faults catalogue, "process killed": a process that dies right after the sync commits, before its mail goes out,
leaves the mail queued, and the next pass sends it once. (A sync whose commit fails queues nothing:
tests/integration/test_sync_database_faults.py.)
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func
from sqlmodel import select

from models import QueuedMail
from services import mail_queue, sync_engine
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DemoBankHandle
from services.mailer import MemoryMailer
from services.plaid_client import PlaidGateway
from services.sync import sync_item
from tests.integration.sync_helpers import FAST, link_item, make_user


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
    assert digest["Subject"].startswith("finsync: 1 new transaction(s)") and "CORNER BAKERY" in digest.get_content()
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
    assert str(alert["Subject"]).startswith("finsync: A connection needs your attention:")
