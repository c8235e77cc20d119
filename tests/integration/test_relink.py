"""Removing a bank "keeping history" and linking the same login again continues the history, never doubles it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from models import AuditEvent, BankAccount, LedgerTransaction
from services import banking, sync, webhook_verify
from services.container import build_container
from services.db import unit_of_work
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET, DemoBankHandle
from services.mailer import MemoryMailer
from services.plaid_client import PlaidGateway
from services.sync import edit_transaction, sync_item
from tests.factories import FakeClock, make_settings
from tests.integration.conftest_bank import Bank, WebhookSink
from tests.integration.sync_helpers import truth


def _rows(bank: Bank, user_id: uuid.UUID) -> list[LedgerTransaction]:
    with unit_of_work(bank.c.engine) as session:
        rows = session.execute(select(LedgerTransaction).where(col(LedgerTransaction.user_id) == user_id)).scalars()
        return list(rows)


def _content(rows: list[LedgerTransaction]) -> Counter[tuple[object, ...]]:
    return Counter((r.date, r.amount_minor, r.name, r.pending) for r in rows)


def _accounts(bank: Bank, user_id: uuid.UUID) -> list[BankAccount]:
    with unit_of_work(bank.c.engine) as session:
        return list(session.execute(select(BankAccount).where(col(BankAccount.user_id) == user_id)).scalars())


def test_relinking_a_removed_bank_continues_its_kept_history_with_the_edits(bank: Bank) -> None:
    alice = bank.user()
    first = bank.link(alice)
    assert sync_item(bank.c, alice, first.id, explicit=True).status == "ok"
    before = _rows(bank, alice)
    posted = next(r for r in before if not r.pending)
    held = next((r for r in before if r.pending), None)
    edit_transaction(bank.c, alice, posted.plaid_transaction_id, category="Trips", note="kept note", excluded=True)
    if held is not None:
        edit_transaction(bank.c, alice, held.plaid_transaction_id, note="hold")

    banking.remove_item(bank.c, alice, first.id, keep_history=True)
    assert _content(_rows(bank, alice)) == _content(before)  # history kept, accounts detached

    second = bank.link(alice)  # the same login again: Plaid gives new account and transaction ids
    accounts = _accounts(bank, alice)
    assert len(accounts) == len(first.accounts)  # the kept accounts were taken back, not doubled
    assert {a.item_id for a in accounts} == {second.id}
    with unit_of_work(bank.c.engine) as session:
        linked = session.execute(select(AuditEvent.detail).where(col(AuditEvent.event) == "bank_linked")).scalars()
        assert f"continues the kept history of {len(accounts)} account(s)" in list(linked)[-1]

    result = sync_item(bank.c, alice, second.id, explicit=True)
    assert result.status == "ok"
    after = _rows(bank, alice)
    bank_now = truth(bank.demo, bank.plaid_item_id(second.id))
    assert {r.plaid_transaction_id for r in after} == set(bank_now)  # every kept row continued by a new one
    assert _content(after) == _content(before)  # nothing doubled, nothing lost
    assert result.added == 0  # nothing new to the user: no digest of old transactions
    same = [r for r in after if (r.date, r.amount_minor, r.name) == (posted.date, posted.amount_minor, posted.name)]
    assert [(r.category_override, r.note, r.excluded) for r in same] == [("Trips", "kept note", True)]
    assert same[0].plaid_transaction_id != posted.plaid_transaction_id
    if held is not None:
        assert [r.note for r in after if r.note == "hold"] == ["hold"]
    with unit_of_work(bank.c.engine) as session:  # done matching: later syncs skip the search
        assert all(a.relinked_at is None for a in session.execute(select(BankAccount)).scalars())


def test_another_login_at_the_same_bank_does_not_take_kept_history(bank: Bank) -> None:
    alice = bank.user()
    first = bank.link(alice)
    assert sync_item(bank.c, alice, first.id, explicit=True).status == "ok"
    kept = _rows(bank, alice)
    banking.remove_item(bank.c, alice, first.id, keep_history=True)

    other = bank.link(alice, username="user_not_ready")  # another login at the same bank: its own accounts
    accounts = _accounts(bank, alice)
    assert len([a for a in accounts if a.item_id is None]) == len(first.accounts)  # still kept, detached
    assert len([a for a in accounts if a.item_id == other.id]) == len(other.accounts)
    assert Counter(r.plaid_transaction_id for r in _rows(bank, alice)) == Counter(r.plaid_transaction_id for r in kept)


@pytest.fixture
def own_bank(
    engine: Engine, db_url: str, tmp_path: Path, clock: FakeClock, mailer: MemoryMailer,
    fresh_demo_bank: DemoBankHandle, webhook_sink: WebhookSink,
) -> Bank:  # fmt: skip
    """Banking over a demo bank of its own, whose clock this test may move."""
    clock.now = datetime.now(UTC).replace(microsecond=0)
    gateway = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, fresh_demo_bank.url, timeout=(2.0, 5.0))
    settings = make_settings(
        tmp_path / "data", db_url, FINSYNC_BASE_URL=webhook_sink.url.removesuffix("/plaid/webhook")
    )
    webhook_verify.clear_key_cache()
    return Bank(build_container(settings, engine=engine, mailer=mailer, clock=clock, plaid=gateway),
                fresh_demo_bank, webhook_sink, clock)  # fmt: skip


def _ledger(bank: Bank, user_id: uuid.UUID) -> Counter[tuple[object, ...]]:
    return Counter((r.date, r.amount_minor, r.name, r.pending, r.note) for r in _rows(bank, user_id))


def test_relinking_days_later_ends_where_an_unbroken_link_would(own_bank: Bank) -> None:
    """Removed with its history kept and linked again a week later, a bank shows what it would have shown had it
    never been removed: holds that posted meanwhile (some for another amount, tipped) carry their notes onto the
    posted rows, dropped holds are gone, nothing stays pending from the old link and no balance looks wrong."""
    bank = own_bank
    alice, bob = bank.user("alice"), bank.user("bob")  # the same login, linked by two people; bob never unlinks
    first, steady = bank.link(alice), bank.link(bob)
    for uid, item in ((alice, first), (bob, steady)):
        assert sync_item(bank.c, uid, item.id, explicit=True).status == "ok"
        holds = [r for r in _rows(bank, uid) if r.pending]
        for r in holds:
            edit_transaction(bank.c, uid, r.plaid_transaction_id, note="hold")
    assert len(holds) >= 2  # the fixed demo day has card holds waiting to post
    banking.remove_item(bank.c, alice, first.id, keep_history=True)

    bank.demo.advance_clock(7)  # a week passes: the holds post (some tipped) or are dropped
    second = bank.link(alice)
    assert sync_item(bank.c, alice, second.id, explicit=True).status == "ok"
    assert sync_item(bank.c, bob, steady.id, explicit=True).status == "ok"

    assert _ledger(bank, alice) == _ledger(bank, bob)
    assert {r.plaid_transaction_id for r in _rows(bank, alice)} == set(truth(bank.demo, bank.plaid_item_id(second.id)))
    noted = [r for r in _rows(bank, alice) if r.note == "hold"]
    assert noted and not any(r.pending for r in noted)  # every surviving hold posted, its note with it
    assert {r.amount_minor for r in noted} - {r.amount_minor for r in holds}  # one of them posted with a tip
    [status] = sync.item_sync_status(bank.c, alice)
    assert status.drift_flagged_accounts == ()


def test_a_kept_hold_the_bank_dropped_goes_when_matching_ends_but_one_older_than_its_history_stays(bank: Bank) -> None:
    """A month after the relink, a kept hold still unmatched from days the new link's history covers is one the bank
    dropped (Plaid would have removed it): it goes, with its change history. One older than anything the new link
    sent is history the bank no longer sends: it stays, like the posted rows of its time, with the user's note."""
    from datetime import timedelta

    from models import TransactionChange

    alice = bank.user()
    first = bank.link(alice)
    assert sync_item(bank.c, alice, first.id, explicit=True).status == "ok"
    banking.remove_item(bank.c, alice, first.id, keep_history=True)
    rows = _rows(bank, alice)
    account = rows[0].account_id
    days = sorted(r.date for r in rows if r.account_id == account)
    ghosts = {"dropped": days[-1], "ancient": days[0] - timedelta(days=60)}
    with unit_of_work(bank.c.engine) as session:
        for name, day in ghosts.items():
            session.add(
                LedgerTransaction(
                    plaid_transaction_id=f"kept-{name}",
                    user_id=alice,
                    account_id=account,
                    item_id=None,
                    amount_minor=-1234,
                    iso_currency_code="USD",
                    date=day,
                    name=f"{name.upper()} HOLD",
                    pending=True,
                    note=f"my {name} note",
                )
            )
            session.add(TransactionChange(user_id=alice, plaid_transaction_id=f"kept-{name}", field_name="name"))

    second = bank.link(alice)
    assert sync_item(bank.c, alice, second.id, explicit=True).status == "ok"
    left = {r.plaid_transaction_id for r in _rows(bank, alice) if r.item_id is None}
    assert left == {"kept-dropped", "kept-ancient"}  # everything else continued by the new link
    bank.clock.advance(days=31)  # matching ends a month after the link
    assert sync_item(bank.c, alice, second.id, explicit=True).status == "ok"

    after = {r.plaid_transaction_id: r for r in _rows(bank, alice) if r.item_id is None}
    assert set(after) == {"kept-ancient"} and after["kept-ancient"].note == "my ancient note"
    with unit_of_work(bank.c.engine) as session:
        changes = session.execute(select(TransactionChange.plaid_transaction_id)).scalars().all()
    assert "kept-dropped" not in changes and "kept-ancient" in changes


def test_a_note_saved_on_a_kept_row_while_the_relink_sync_continues_it_is_kept_or_refused(
    bank: Bank, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A note saved (another tab) on a kept transaction just as the new link's first sync continues it either lands
    on the continuing row or is refused as gone; it is never reported saved and then lost with the kept row."""
    from services import relink
    from services.errors import NotFound

    alice = bank.user()
    first = bank.link(alice)
    assert sync_item(bank.c, alice, first.id, explicit=True).status == "ok"
    kept = next(r for r in _rows(bank, alice) if not r.pending)
    banking.remove_item(bank.c, alice, first.id, keep_history=True)
    second = bank.link(alice)
    said: list[str] = []

    def save_note() -> None:
        try:
            edit_transaction(bank.c, alice, kept.plaid_transaction_id, note="saved meanwhile")
            said.append("saved")
        except NotFound as exc:
            said.append(str(exc))

    tab = threading.Thread(target=save_note)
    real_pair = relink._pair

    def meanwhile(kept_rows, fresh):  # type: ignore[no-untyped-def] - the kept rows are read; the other tab saves
        tab.start()
        tab.join(2.0)
        return real_pair(kept_rows, fresh)

    monkeypatch.setattr(relink, "_pair", meanwhile)
    assert sync_item(bank.c, alice, second.id, explicit=True).status == "ok"
    tab.join(30)
    same = [
        r for r in _rows(bank, alice) if (r.date, r.amount_minor, r.name) == (kept.date, kept.amount_minor, kept.name)
    ]
    assert len(same) == 1 and same[0].plaid_transaction_id != kept.plaid_transaction_id
    if said == ["saved"]:
        assert same[0].note == "saved meanwhile"
    else:
        assert said == ["That transaction is gone: your bank removed it. Pick another one."]
        assert same[0].note is None


def test_a_relinked_bank_whose_older_history_comes_later_continues_it_without_a_drift_flag(bank: Bank) -> None:
    """The new link's first sync brings the last 30 days, a later one the older history: both continue kept rows
    (the kept copies go), so the balances are explained as before, and no account is flagged."""
    alice = bank.user()
    first = bank.link(alice)
    assert sync_item(bank.c, alice, first.id, explicit=True).status == "ok"
    before = _rows(bank, alice)
    banking.remove_item(bank.c, alice, first.id, keep_history=True)
    second = bank.link(alice)
    pid = bank.plaid_item_id(second.id)
    bank.demo.hold_history(pid, 30)
    assert sync_item(bank.c, alice, second.id, explicit=True).status == "ok"
    bank.demo.finish_history(pid)
    assert sync_item(bank.c, alice, second.id, explicit=True).status == "ok"
    assert _content(_rows(bank, alice)) == _content(before)  # nothing doubled, nothing lost
    assert sync.item_sync_status(bank.c, alice)[0].drift_flagged_accounts == ()
