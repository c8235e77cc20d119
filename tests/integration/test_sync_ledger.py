"""Scenario tests of the sync against the demo bank over HTTP: what the bank changes lands in the ledger, edits kept.

The ledger is compared with the bank's truth after paging, modifications, pending to posted and balance drift; a
sync never touches another user's row, and reports its progress, request ids and status in words.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import func, select

from models import LedgerTransaction, PlaidItem, TransactionChange
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import endpoints, render, syncing
from services.mailer import MemoryMailer
from services.plaid_client import PlaidGateway
from services.plaid_types import CallEvent, SyncPage, Transaction
from services.sync import (
    NotificationSettings,
    edit_transaction,
    item_sync_status,
    last_change,
    list_runs,
    set_notification_prefs,
    sync_item,
    transaction_history,
)
from services.sync_state import acquire, worker_name
from tests.integration.sync_helpers import FAST, ledger, link_item, make_user, truth, user_row
from tests.integration.sync_helpers import sync_fast as _sync


def test_initial_multi_page_and_incremental_sync_equal_the_bank(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    demo_bank.generate_history(pid, 1200)
    first = _sync(container, gateway, user_id, item_id)
    assert first.status == "ok" and first.pages == 3
    assert ledger(container, user_id) == truth(demo_bank, pid)
    demo_bank.advance(pid, 5)
    second = _sync(container, gateway, user_id, item_id)
    assert second.status == "ok" and second.added + second.modified + second.removed > 0
    assert ledger(container, user_id) == truth(demo_bank, pid)
    again = _sync(container, gateway, user_id, item_id)  # nothing new: nothing changes, no duplicates
    assert (again.added, again.modified, again.removed) == (0, 0, 0)
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_modified_transaction_keeps_user_edits_and_records_what_plaid_changed(
    container, gateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    target = next(t for t in demo_bank.truth(pid) if not t["pending"])
    tid = target["transaction_id"]
    edit_transaction(
        container, user_id, tid, category="Groceries", note="split with Sam", tags=["shared"], excluded=True
    )
    demo_bank.mutate(pid, "modify", transaction_id=tid, name="RENAMED BY BANK", cents=4321)
    assert _sync(container, gateway, user_id, item_id).modified >= 1
    assert ledger(container, user_id) == truth(demo_bank, pid)
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, tid)
        assert row is not None
        assert (row.name, row.amount_minor) == ("RENAMED BY BANK", -4321)
        assert (row.category_override, row.note, row.tags, row.excluded) == (
            "Groceries",
            "split with Sam",
            "shared",
            True,
        )
    changes = {c.field_name: (c.old_value, c.new_value) for c in transaction_history(container, user_id, tid)}
    assert changes["name"] == (target["name"], "RENAMED BY BANK")
    assert changes["amount_minor"][1] == "-4321"


def test_pending_to_posted_across_pages_carries_edits_and_never_shows_both(
    container, gateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    pending = demo_bank.mutate(pid, "add", cents=2500, name="COFFEE HOLD", pending=True)
    assert pending is not None
    _sync(container, gateway, user_id, item_id)
    edit_transaction(container, user_id, pending["transaction_id"], category="Treats", note="birthday")
    for i in range(499):  # the removal of the pending row ends page 1; its posted twin starts page 2
        demo_bank.mutate(pid, "add", cents=100 + i, name=f"FILLER {i}")
    posted = demo_bank.mutate(pid, "post", transaction_id=pending["transaction_id"], cents=2800)
    assert posted is not None
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "ok" and result.pages == 2
    rows = ledger(container, user_id)
    assert rows == truth(demo_bank, pid)
    assert pending["transaction_id"] not in rows
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, posted["transaction_id"])
        assert row is not None and (row.category_override, row.note, row.amount_minor) == ("Treats", "birthday", -2800)


def test_pending_to_posted_in_one_page_carries_edits(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    pending = demo_bank.mutate(pid, "add", cents=900, name="TAXI", pending=True)
    _sync(container, gateway, user_id, item_id)
    edit_transaction(container, user_id, pending["transaction_id"], tags=["work", "travel"])
    posted = demo_bank.mutate(pid, "post", transaction_id=pending["transaction_id"])
    _sync(container, gateway, user_id, item_id)
    assert ledger(container, user_id) == truth(demo_bank, pid)
    with unit_of_work(container.engine) as s:
        assert s.get(LedgerTransaction, posted["transaction_id"]).tags == "work,travel"  # type: ignore[union-attr]


def test_balance_drift_flags_the_account(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()
    # Ordinary bank news moves balance and transactions together: never a flag.
    pending = demo_bank.mutate(pid, "add", cents=2_500, name="GROCER", pending=True)
    posted = next(t for t in demo_bank.truth(pid) if not t["pending"])
    demo_bank.mutate(pid, "modify", transaction_id=posted["transaction_id"], cents=round(posted["amount"] * 100) + 300)
    _sync(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "post", transaction_id=pending["transaction_id"])
    _sync(container, gateway, user_id, item_id)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()

    victim = next(t for t in demo_bank.truth(pid) if not t["pending"])
    with unit_of_work(container.engine) as s:  # the ledger loses a transaction the bank still counts
        row = s.get(LedgerTransaction, victim["transaction_id"])
        assert row is not None
        lost, account_id = row.model_dump(), row.account_id
        s.delete(row)
    demo_bank.mutate(pid, "add", cents=500, name="NEW")
    _sync(container, gateway, user_id, item_id)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == (account_id,)  # that account only
    with unit_of_work(container.engine) as s:  # the missing transaction is back: the balance adds up again
        s.add(LedgerTransaction(**lost))
    _sync(container, gateway, user_id, item_id)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()


def test_the_older_history_plaid_sends_later_does_not_flag_the_accounts(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    demo_bank.hold_history(pid, 30)  # Plaid's first pull: the last 30 days; the rest comes in a later sync
    _sync(container, gateway, user_id, item_id)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()
    demo_bank.finish_history(pid)
    assert _sync(container, gateway, user_id, item_id).added > 0
    assert ledger(container, user_id) == truth(demo_bank, pid)
    # The older history was in the balances all along: the transactions explain them as well as before.
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()
    demo_bank.advance(pid, 3)
    _sync(container, gateway, user_id, item_id)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()


def test_a_loss_in_the_sync_that_brings_the_older_history_still_flags_its_account(
    container, gateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    demo_bank.hold_history(pid, 30)
    _sync(container, gateway, user_id, item_id)
    lost = next(t for t in demo_bank.truth(pid) if not t["pending"])
    with unit_of_work(container.engine) as s:  # the ledger loses a transaction the bank still counts
        row = s.get(LedgerTransaction, lost["transaction_id"])
        assert row is not None
        account_id = row.account_id
        s.delete(row)
    demo_bank.finish_history(pid)
    _sync(container, gateway, user_id, item_id)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == (account_id,)  # that account only


def test_a_row_the_bank_re_dates_before_the_oldest_day_is_no_older_history_and_flags_nothing(
    container, gateway, demo_bank, linked
) -> None:
    """A transaction on the connection's oldest day that the bank moves a day earlier (a date correction, here in the
    sync that also brings the older history) changes no sum and no balance. It was taken for history arriving, which
    moved the expected drift by its amount, and its account was flagged as if a transaction had been lost."""
    user_id, item_id, pid = linked
    demo_bank.hold_history(pid, 30)
    _sync(container, gateway, user_id, item_id)
    with unit_of_work(container.engine) as s:
        oldest = s.exec(select(func.min(LedgerTransaction.date))).one()
    row = next(t for t in demo_bank.truth(pid) if not t["pending"] and t["date"] == oldest.isoformat())
    assert row["amount"] != 0
    demo_bank.mutate(pid, "modify", transaction_id=row["transaction_id"], date=oldest - timedelta(days=1))
    demo_bank.finish_history(pid)
    _sync(container, gateway, user_id, item_id)
    assert ledger(container, user_id) == truth(demo_bank, pid)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()


def _with_brokerage(monkeypatch, pid: str, value: dict[str, float], kind: str = "investment") -> None:
    """The bank's answers, as a bank with a brokerage account (worth ``value["current"]``) gives them; ``kind``: its
    Plaid account type."""

    def with_brokerage(item: Any) -> list[dict[str, Any]]:
        listed = real(item)
        brokerage = {**listed[0], "account_id": f"{pid[:20]}-brokerage", "mask": "4242", "name": "Brokerage",
                     "type": kind, "subtype": "brokerage" if kind == "investment" else None,
                     "balances": {**listed[0]["balances"], "current": value["current"], "available": None}}  # fmt: skip
        return [*listed, brokerage]

    real = render.accounts_json
    for module in (render, syncing, endpoints):
        monkeypatch.setattr(module, "accounts_json", with_brokerage)


def test_a_brokerage_account_whose_value_moves_with_the_market_is_not_flagged(
    container, gateway, demo_bank, linked, monkeypatch
) -> None:
    """/transactions/sync sends no investment transactions (PLAID_NOTES §3): such a balance is never explained by
    them, so its moving is no sign of a lost or doubled transaction."""
    user_id, item_id, pid = linked
    value = {"current": 10_000.0}
    _with_brokerage(monkeypatch, pid, value)
    _sync(container, gateway, user_id, item_id)
    value["current"] = 10_350.25  # the market moved; no transaction did
    demo_bank.mutate(pid, "add", cents=500, name="NEW")
    _sync(container, gateway, user_id, item_id)
    assert ledger(container, user_id) == truth(demo_bank, pid)
    assert item_sync_status(container, user_id)[0].drift_flagged_accounts == ()


@pytest.mark.parametrize("kind", ["investment", "other"])
def test_low_balance_alerts_watch_bank_accounts_not_investments(
    container, gateway, demo_bank, linked, monkeypatch, mailer: MemoryMailer, kind: str
) -> None:
    """The alert guards against overdrawing: a brokerage's worth falling below the amount with the market is not
    money about to run out, and "the available balance of Brokerage" would be read as cash there is not. Nor is
    an account of Plaid's type "other", which the setting's "bank account" does not name."""
    user_id, item_id, pid = linked
    _with_brokerage(monkeypatch, pid, {"current": 10.0}, kind)
    set_notification_prefs(container, user_id, NotificationSettings(False, None, 10**12, False))
    _sync(container, gateway, user_id, item_id)
    alerted = {str(m["Subject"]).removeprefix("finsync: low balance on ") for m in mailer.sent}
    assert alerted == {"Everyday Checking", "Rainy Day Savings"}  # below the amount, as the brokerage is; no card


def test_sync_progress_reports_pages_and_applied(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    demo_bank.generate_history(pid, 700)
    seen = []
    result = _sync(container, gateway, user_id, item_id, progress=seen.append)
    assert [p.pages for p in seen if p.stage == "fetching"] == [1, 2]
    assert seen[-1].stage == "done" and seen[-1].applied == result.added


def test_request_ids_are_recorded_per_run(container, gateway, linked, plaid_events: list[CallEvent]) -> None:
    user_id, item_id, _ = linked
    _sync(container, gateway, user_id, item_id)
    run = list_runs(container, user_id)[0]
    assert run.status == "ok" and set(run.request_ids) <= {e.request_id for e in plaid_events}
    assert len(run.request_ids) >= 2  # /transactions/sync and /accounts/get


class _RemovalComesLater:
    """A gateway whose pages carry additions but not removals: Plaid may send a pending row's removal in a
    later sync than its posted twin, so the posted row arrives in a run of additions only."""

    def __init__(self, inner: PlaidGateway) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def with_recorder(self, recorder: object) -> _RemovalComesLater:  # the engine adds its own recorder
        return _RemovalComesLater(self._inner.with_recorder(recorder))  # type: ignore[arg-type]

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        page = self._inner.transactions_sync(access_token, cursor, count)
        return dataclasses.replace(page, removed=())


def test_posted_twin_in_an_additions_only_run_replaces_the_pending_row_and_keeps_edits(
    container, gateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    pending = demo_bank.mutate(pid, "add", cents=4200, name="HOTEL HOLD", pending=True)
    _sync(container, gateway, user_id, item_id)
    edit_transaction(container, user_id, pending["transaction_id"], category="Trips", excluded=True)
    posted = demo_bank.mutate(pid, "post", transaction_id=pending["transaction_id"], cents=4350)
    result = sync_item(container, user_id, item_id, gateway=_RemovalComesLater(gateway), policy=FAST)  # type: ignore[arg-type]
    # The removal did not come, yet the ledger swapped the pending row for the posted one: counts say so.
    assert result.status == "ok" and (result.added, result.removed) == (1, 1)
    rows = ledger(container, user_id)
    assert pending["transaction_id"] not in rows and posted["transaction_id"] in rows  # never both
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, posted["transaction_id"])
        assert row is not None and (row.category_override, row.excluded, row.amount_minor) == ("Trips", True, -4350)
    assert rows == truth(demo_bank, pid)


class _SendsAgain:
    """A gateway whose sync pages also carry ``again`` (and its removal, when ``removed``): a pending row Plaid
    removed in an earlier sync, sent again under the same id (alone: the ledger's fast path for additions sees it)."""

    def __init__(self, inner: PlaidGateway, again: Transaction, *, removed: bool = False) -> None:
        self._inner, self._again, self._removed = inner, again, removed

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def with_recorder(self, recorder: object) -> _SendsAgain:
        return _SendsAgain(self._inner.with_recorder(recorder), self._again, removed=self._removed)  # type: ignore[arg-type]

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        page = self._inner.transactions_sync(access_token, cursor, count)
        gone = (*page.removed, self._again.transaction_id) if self._removed else page.removed
        return dataclasses.replace(page, added=(*page.added, self._again), removed=gone)


class _Remembers:
    """A gateway that keeps every transaction its sync pages carried, by id."""

    def __init__(self, inner: PlaidGateway, seen: dict[str, Transaction]) -> None:
        self._inner, self.seen = inner, seen

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def with_recorder(self, recorder: object) -> _Remembers:
        return _Remembers(self._inner.with_recorder(recorder), self.seen)  # type: ignore[arg-type]

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        page = self._inner.transactions_sync(access_token, cursor, count)
        self.seen.update((t.transaction_id, t) for t in (*page.added, *page.modified))
        return page


def _edits(c: Container, tid: str) -> tuple[object, ...] | None:
    with unit_of_work(c.engine) as s:
        row = s.get(LedgerTransaction, tid)
        return None if row is None else (row.category_override, row.note, row.excluded)


def test_a_removed_pending_row_sent_again_comes_back_with_its_edits(container, gateway, demo_bank, linked) -> None:
    """Plaid may send a removed pending id again; the user's edits come back with it, and go on to its posted twin."""
    user_id, item_id, pid = linked
    tid = demo_bank.mutate(pid, "add", cents=4200, name="HOTEL HOLD", pending=True)["transaction_id"]
    seen: dict[str, Transaction] = {}
    sync_item(container, user_id, item_id, gateway=_Remembers(gateway, seen), policy=FAST)  # type: ignore[arg-type]
    edit_transaction(container, user_id, tid, category="Trips", note="deposit", excluded=True)
    demo_bank.mutate(pid, "remove", transaction_id=tid)
    assert _sync(container, gateway, user_id, item_id).removed == 1 and _edits(container, tid) is None

    # Sent and removed again in one page: the saved edits are used up and saved anew, not lost between the writes.
    both = _SendsAgain(gateway, seen[tid]._replace(name="HOTEL HOLD 2"), removed=True)
    result = sync_item(container, user_id, item_id, gateway=both, policy=FAST)  # type: ignore[arg-type]
    assert (result.status, result.added, result.removed) == ("ok", 0, 0) and _edits(container, tid) is None

    # Sent again alone (a run of additions only): back in the ledger with the edits.
    result = sync_item(container, user_id, item_id, gateway=_SendsAgain(gateway, seen[tid]), policy=FAST)  # type: ignore[arg-type]
    assert result.status == "ok" and result.added == 1
    assert _edits(container, tid) == ("Trips", "deposit", True)

    # Its posted twin, in a later sync, takes them; the ledger never shows both.
    posted = demo_bank.mutate(pid, "add", cents=4350, name="HOTEL", pending_transaction_id=tid)["transaction_id"]
    _sync(container, gateway, user_id, item_id)
    assert _edits(container, posted) == ("Trips", "deposit", True) and tid not in ledger(container, user_id)
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_a_change_to_an_id_another_user_owns_never_touches_their_row(container, gateway, demo_bank, linked) -> None:
    """Transaction ids are global keys; a sync of Ada's item must not read or rewrite Bob's row with that id."""
    ada, item_id, pid = linked
    bob = make_user(container, "bob@example.com")
    bob_item, _ = link_item(container, gateway, bob)
    _sync(container, gateway, ada, item_id)
    _sync(container, gateway, bob, bob_item)
    taken = next(iter(ledger(container, ada)))
    with unit_of_work(container.engine) as s:  # the id now belongs to Bob (as if his bank had issued it first)
        row = s.get(LedgerTransaction, taken)
        bobs_account = s.exec(select(LedgerTransaction.account_id).where(LedgerTransaction.user_id == bob)).first()
        assert row is not None and bobs_account is not None
        row.user_id, row.account_id, row.item_id, row.name = bob, bobs_account, bob_item, "BOB'S ROW"
        s.add(row)
    demo_bank.mutate(pid, "modify", transaction_id=taken, name="CHANGED AT ADA'S BANK")
    result = _sync(container, gateway, ada, item_id)
    assert result.status == "ok"
    assert taken not in ledger(container, ada)
    kept = user_row(container, bob, taken)
    assert kept is not None and kept.name == "BOB'S ROW" and kept.item_id == bob_item
    with unit_of_work(container.engine) as s:
        assert s.exec(select(TransactionChange).where(TransactionChange.plaid_transaction_id == taken)).all() == []


def test_the_accounts_page_status_reads_in_words_new_syncing_and_up_to_date(
    container: Container, gateway: PlaidGateway, linked: tuple[uuid.UUID, uuid.UUID, str]
) -> None:
    user_id, item_id, _ = linked
    assert [(s.state, s.message) for s in item_sync_status(container, user_id)] == [
        ("new", "Waiting for the first sync.")
    ]
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert [(s.state, s.message) for s in item_sync_status(container, user_id)] == [("ok", "Up to date.")]
    with unit_of_work(container.engine) as s:  # the bot (alive, in this process) is at it
        item = s.get(PlaidItem, item_id)
        assert item is not None and acquire(s, item, worker_name("scheduler"), container.clock())
    assert [(s.state, s.message) for s in item_sync_status(container, user_id)] == [("syncing", "Syncing now…")]


def test_an_open_list_learns_of_a_sync_that_changed_the_ledger_and_only_of_one(
    container, gateway, demo_bank, linked, clock
) -> None:
    """``last_change`` is what an open Transactions page watches: it moves when a sync brought something, and stays
    put through syncs that brought nothing (else the page would cry "new transactions" every few hours)."""
    user_id, item_id, pid = linked
    assert last_change(container, user_id) is None  # nothing synced yet
    assert _sync(container, gateway, user_id, item_id).added > 0
    first = last_change(container, user_id)
    assert first == clock.now
    clock.advance(hours=6)
    quiet = _sync(container, gateway, user_id, item_id)
    assert (quiet.status, quiet.added, quiet.modified, quiet.removed) == ("ok", 0, 0, 0)
    assert last_change(container, user_id) == first
    clock.advance(hours=6)
    demo_bank.advance(pid, 5)
    assert _sync(container, gateway, user_id, item_id).added > 0
    assert last_change(container, user_id) == clock.now > first
