"""What a sync's notifications say, through a real sync: which rows a busy sync lists and alerts, and a bank name
that would break a mail header."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest

from models import PlaidItem
from services import mail_queue, sync_engine
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, DemoBankHandle
from services.mailer import MemoryMailer
from services.notify import NotificationSettings, set_notification_prefs
from services.plaid_client import PlaidGateway
from services.plaid_types import SyncPage
from tests.factories import FakeClock
from tests.integration.conftest_bank import BANK_TODAY
from tests.integration.sync_helpers import link_item, make_user, sync_fast


class YenBank(PlaidGateway):
    """Every transaction is in yen (no minor unit): the demo bank's ``cents`` are whole yen here."""

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        page = super().transactions_sync(access_token, cursor, count)
        yen = tuple(t._replace(iso_currency_code="JPY", unofficial_currency_code=None) for t in page.added)
        return dataclasses.replace(page, added=yen)


def _synced(
    c: Container, gw: PlaidGateway, mailer: MemoryMailer, prefs: NotificationSettings
) -> tuple[uuid.UUID, uuid.UUID, str]:
    user_id = make_user(c)
    item_id, pid = link_item(c, gw, user_id)
    set_notification_prefs(c, user_id, prefs)
    assert sync_fast(c, gw, user_id, item_id).status == "ok"  # the first sync: history, not news
    mail_queue.send(c)
    mailer.sent.clear()
    return user_id, item_id, pid


@pytest.mark.parametrize("mixed", [False, True], ids=["all-added", "with-a-change"])
def test_a_large_yen_charge_among_many_new_rows_is_alerted(
    container: Container, demo_bank: DemoBankHandle, mailer: MemoryMailer, mixed: bool
) -> None:
    """A threshold of 500.00 is 500 yen: a 600-yen charge is large however many small ones came before it."""
    gw = YenBank("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url)
    user_id, item_id, pid = _synced(container, gw, mailer, NotificationSettings(False, 50_000, None, True))
    known = demo_bank.truth(pid)[0]["transaction_id"]
    for n in range(25):
        demo_bank.mutate(pid, "add", cents=100, name=f"SMALL {n}")
    demo_bank.mutate(pid, "add", cents=600, name="BIG YEN")
    if mixed:  # a change among them: the row-by-row path
        demo_bank.mutate(pid, "modify", transaction_id=known, name="RENAMED BY THE BANK")
    assert sync_fast(container, gw, user_id, item_id).status == "ok"
    (alert,) = [m for m in mailer.sent if "large transaction" in str(m["Subject"])]
    body = alert.get_content()
    assert "BIG YEN" in body and "600 JPY" in body and "SMALL" not in body


@pytest.mark.parametrize("mixed", [False, True], ids=["all-added", "with-a-change"])
def test_a_busy_sync_s_digest_lists_the_newest_transactions(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, mailer: MemoryMailer, mixed: bool
) -> None:
    """The digest lists the 20 newest and counts the rest, whatever order the bank sends them in."""
    user_id, item_id, pid = _synced(container, gateway, mailer, NotificationSettings(True, None, None, True))
    known = demo_bank.truth(pid)[0]
    today = date.fromisoformat(known["date"])
    for n in range(22):  # the bank sends the older ones first
        demo_bank.mutate(pid, "add", cents=100, name=f"OLDER {n}", date=today - timedelta(days=1))
    for n in range(3):
        demo_bank.mutate(pid, "add", cents=100, name=f"NEWEST {n}", date=today)
    if mixed:
        demo_bank.mutate(pid, "modify", transaction_id=known["transaction_id"], name="RENAMED BY THE BANK")
    assert sync_fast(container, gateway, user_id, item_id).status == "ok"
    (digest,) = mailer.sent
    body = digest.get_content()
    assert str(digest["Subject"]) == "finsync: 25 new transactions from Demo ins_demo_1"
    assert all(f"NEWEST {n}" in body for n in range(3)), body
    assert body.count("OLDER") == 17 and "... and 5 more" in body


def test_a_bank_name_with_a_line_break_does_not_lose_its_notifications(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, mailer: MemoryMailer
) -> None:
    """The name a bank is stored under can come from the browser's Link metadata: a line break in it must not make
    a header of the subject (refused by the mailer, so the mail would wait and fail until it expired)."""
    user_id, item_id, pid = _synced(container, gateway, mailer, NotificationSettings(True, 50_000, None, True))
    with unit_of_work(container.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None
        item.institution_name = "Evil Bank\r\nBcc: thief@evil.example"
        s.add(item)
    demo_bank.mutate(pid, "add", cents=75_000, name="NEW TV")
    assert sync_fast(container, gateway, user_id, item_id).status == "ok"
    subjects = sorted(str(m["Subject"]) for m in mailer.sent)
    assert len(subjects) == 2, subjects  # the digest and the large-transaction alert, both sent
    assert all("\n" not in s and "\r" not in s and "Evil Bank" in s for s in subjects)
    assert all(m["Bcc"] is None and m["To"] == "ada@example.com" for m in mailer.sent)
    assert all("\r" not in m.get_content() and "\nBcc:" not in m.get_content() for m in mailer.sent)


class QuietBank(PlaidGateway):
    """An account with nothing in the last 30 days: Plaid's initial pull sends no transactions."""

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        return dataclasses.replace(super().transactions_sync(access_token, cursor, count), added=())


def test_older_history_after_a_first_sync_that_brought_nothing_is_not_news(
    container: Container, fresh_demo_bank: DemoBankHandle, mailer: MemoryMailer, clock: FakeClock
) -> None:
    """With no transaction of the bank's in the ledger yet, the day it was linked tells history from news: its
    older history arriving later is not mailed as hundreds of new (and large) transactions."""
    bank = fresh_demo_bank
    clock.now = datetime.combine(BANK_TODAY, time(18), tzinfo=UTC)  # our clock and the bank's agree, as in life
    gw = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, bank.url)
    quiet = QuietBank("demo", DEMO_CLIENT_ID, DEMO_SECRET, bank.url)
    user_id = make_user(container)
    item_id, pid = link_item(container, gw, user_id)
    set_notification_prefs(container, user_id, NotificationSettings(True, 10_000, None, True))
    bank.hold_history(pid, days=30)
    assert sync_fast(container, quiet, user_id, item_id).added == 0  # the first sync: nothing recent
    bank.finish_history(pid)
    bank.mutate(pid, "add", cents=20_000, name="NEW BIKE")
    second = sync_fast(container, gw, user_id, item_id)
    assert second.added > 1  # the older history, and the bike
    assert sorted(str(m["Subject"]) for m in mailer.sent) == [
        "finsync: 1 new transaction from Demo ins_demo_1",
        "finsync: large transaction at Demo ins_demo_1",
    ]
    for mail in mailer.sent:
        listed = [line for line in mail.get_content().splitlines() if line.startswith("  20")]
        assert len(listed) == 1 and "NEW BIKE" in listed[0], listed


def test_a_hold_that_posts_at_a_large_amount_is_alerted_once_then(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, mailer: MemoryMailer
) -> None:
    """One alert per charge, the first time it is seen at or above the threshold: a 1.00 fuel hold is not large, the
    85.00 it posts as is (and is not news again for the digest); a large hold posting larger is not alerted twice."""
    user_id, item_id, pid = _synced(container, gateway, mailer, NotificationSettings(True, 5_000, None, True))
    fuel = demo_bank.mutate(pid, "add", cents=100, name="FUEL HOLD", pending=True)
    hotel = demo_bank.mutate(pid, "add", cents=20_000, name="HOTEL HOLD", pending=True)
    sync_fast(container, gateway, user_id, item_id)
    assert sorted(str(m["Subject"]) for m in mailer.sent) == [
        "finsync: 2 new transactions from Demo ins_demo_1",
        "finsync: large transaction at Demo ins_demo_1",
    ]
    (first,) = [m.get_content() for m in mailer.sent if "large" in str(m["Subject"])]
    assert "HOTEL HOLD" in first and "FUEL HOLD" not in first
    mailer.sent.clear()
    demo_bank.mutate(pid, "post", transaction_id=fuel["transaction_id"], cents=8_500)
    demo_bank.mutate(pid, "post", transaction_id=hotel["transaction_id"], cents=24_000)
    result = sync_fast(container, gateway, user_id, item_id)
    assert (result.added, result.removed) == (2, 2)
    (alert,) = mailer.sent  # no digest: nothing new
    assert str(alert["Subject"]) == "finsync: large transaction at Demo ins_demo_1"
    body = alert.get_content()
    assert "-85.00 USD" in body and "HOTEL" not in body


def test_preferences_saved_while_a_sync_runs_are_the_ones_it_follows(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, mailer: MemoryMailer, monkeypatch
) -> None:
    """A user who turns the emails off while a sync fetches (a slow bank: minutes) gets none from that sync."""
    user_id, item_id, pid = _synced(container, gateway, mailer, NotificationSettings(True, 5_000, None, True))
    demo_bank.mutate(pid, "add", cents=75_000, name="NEW TV")
    real = sync_engine.apply_run

    def saved_meanwhile(*args: object, **kwargs: object) -> object:
        set_notification_prefs(container, user_id, NotificationSettings(False, None, None, True))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sync_engine, "apply_run", saved_meanwhile)
    assert sync_fast(container, gateway, user_id, item_id).added == 1
    mail_queue.send(container)
    assert mailer.sent == []
