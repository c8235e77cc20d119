"""The sync changes exactly what the bank changed: statuses, field limits, counts, news, history and edits."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from typing import Any

import pytest
from sqlmodel import select

from models import ItemSyncState, LedgerTransaction, PendingEdit, PlaidItem, TransactionChange
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET
from services.mailer import MemoryMailer
from services.notify import NotificationSettings, set_notification_prefs
from services.plaid_client import PlaidGateway
from services.plaid_types import SyncPage
from services.sync import edit_transaction, sync_item, transaction_history
from services.sync_store import TWIN_WAIT
from tests.integration.sync_helpers import FAST, garble, ledger, truth


def _sync(c: Container, gw: PlaidGateway, user_id: uuid.UUID, item_id: uuid.UUID):  # type: ignore[no-untyped-def]
    return sync_item(c, user_id, item_id, gateway=gw, policy=FAST)


def _subjects(mailer: MemoryMailer) -> list[str]:
    return [str(m).split("Subject: ")[1].split("\n")[0] for m in mailer.sent]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("pending_expiration", "pending_expiration"),
        ("pending_disconnect", "pending_disconnect"),
        ("new_accounts_available", "new_accounts_available"),
        ("permission_revoked", "permission_revoked"),
        ("login_required", "ok"),
        ("error", "ok"),
    ],
)
def test_a_sync_clears_only_the_statuses_it_disproves(container, gateway, linked, before: str, after: str) -> None:
    user_id, item_id, _ = linked
    with unit_of_work(container.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None
        item.status, item.status_code = before, "CODE"
        s.add(item)
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    with unit_of_work(container.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None and item.status == after
        assert item.status_code == (None if after == "ok" else "CODE")


def test_over_long_text_is_cut_to_fit_and_the_item_keeps_syncing(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    t = demo_bank.mutate(pid, "add", cents=100, name="X" * 600, merchant_name="M" * 300, primary="P" * 100,
                         detailed="D" * 200, channel="C" * 40)  # fmt: skip
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "ok" and result.added == 1
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, t["transaction_id"])
        assert row is not None and (row.name, row.merchant_name) == ("X" * 512, "M" * 256)
        assert (row.category_primary, row.category_detailed, row.payment_channel) == ("P" * 64, "D" * 128, "C" * 32)
    assert ledger(container, user_id) == truth(demo_bank, pid)  # truth maps through the same edge
    demo_bank.advance(pid, 1)
    assert _sync(container, gateway, user_id, item_id).status == "ok"


def test_an_id_too_long_to_store_is_set_aside_and_the_rest_syncs(
    container, gateway, demo_bank, linked, monkeypatch
) -> None:
    import services.demo_bank.syncing as bank_sync

    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    t = demo_bank.mutate(pid, "add", cents=100, name="LONG ID")
    ok = demo_bank.mutate(pid, "add", cents=200, name="FINE")
    real = bank_sync.txn_json

    def long_id(txn: Any) -> dict[str, Any]:
        body = real(txn)
        return {**body, "transaction_id": "L" * 600} if body["transaction_id"] == t["transaction_id"] else body

    monkeypatch.setattr(bank_sync, "txn_json", long_id)
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "ok" and result.error_code == "TRANSACTIONS_SET_ASIDE" and result.added == 1
    assert ok["transaction_id"] in ledger(container, user_id)


def test_a_pending_row_posting_is_not_news_again(container, gateway, demo_bank, linked, mailer) -> None:
    user_id, item_id, pid = linked
    set_notification_prefs(container, user_id, NotificationSettings(True, 50_000, None, True))
    _sync(container, gateway, user_id, item_id)
    mailer.sent.clear()
    p = demo_bank.mutate(pid, "add", cents=75_000, name="NEW TV", pending=True)
    _sync(container, gateway, user_id, item_id)
    assert sorted(_subjects(mailer)) == [
        "finsync: 1 new transaction from Demo ins_demo_1",
        "finsync: large transaction at Demo ins_demo_1",
    ]
    mailer.sent.clear()
    demo_bank.mutate(pid, "post", transaction_id=p["transaction_id"])
    result = _sync(container, gateway, user_id, item_id)
    assert (result.added, result.removed) == (1, 1)
    assert _subjects(mailer) == []
    assert ledger(container, user_id) == truth(demo_bank, pid)


@pytest.mark.parametrize("mixed", [False, True], ids=["all-added", "with-a-change"])
def test_the_older_history_plaid_sends_after_the_first_30_days_is_not_news(
    container, gateway, demo_bank, linked, mailer, mixed: bool
) -> None:
    """Plaid pulls a new connection's last 30 days first (INITIAL_UPDATE_COMPLETE) and its older history later, as
    `added` in a later sync: that history fills the ledger but is not mailed as new transactions (nor as large ones);
    a transaction that really is new in the same sync still is. Both ways a run is written: all added (set-based)
    and with a change among them (row by row)."""
    user_id, item_id, pid = linked
    set_notification_prefs(container, user_id, NotificationSettings(True, 10_000, None, True))
    demo_bank.hold_history(pid, days=30)
    first = _sync(container, gateway, user_id, item_id)
    recent = ledger(container, user_id)
    assert first.added == len(recent) > 0 and recent == truth(demo_bank, pid)
    demo_bank.finish_history(pid)
    bike = demo_bank.mutate(pid, "add", cents=20_000, name="NEW BIKE")
    if mixed:
        demo_bank.mutate(pid, "modify", transaction_id=min(recent), name="RENAMED BY THE BANK")
    second = _sync(container, gateway, user_id, item_id)
    assert second.modified == mixed
    whole = ledger(container, user_id)
    older = [v for k, v in whole.items() if k not in recent and k != bike["transaction_id"]]
    assert older and max(v[2] for v in older) < min(v[2] for v in recent.values())  # it was history indeed
    assert second.added == len(older) + 1 and whole == truth(demo_bank, pid)
    assert sorted(_subjects(mailer)) == [
        "finsync: 1 new transaction from Demo ins_demo_1",
        "finsync: large transaction at Demo ins_demo_1",
    ]
    for mail in mailer.sent:
        listed = [line for line in mail.get_content().splitlines() if line.startswith("  20")]
        assert len(listed) == 1 and "NEW BIKE" in listed[0], listed


class DuplicatingBank(PlaidGateway):
    """The last page repeats its first added transaction and removes an id nobody has."""

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        page = super().transactions_sync(access_token, cursor, count)
        if page.has_more or not page.added:
            return page
        return dataclasses.replace(page, added=page.added + page.added[:1], removed=(*page.removed, "never-seen"))


def test_counts_and_news_are_what_changed_in_the_ledger(container, gateway, demo_bank, linked, mailer) -> None:
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    mailer.sent.clear()
    demo_bank.mutate(pid, "add", cents=100, name="ONE NEW")
    dup = DuplicatingBank("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url)
    result = _sync(container, dup, user_id, item_id)
    assert (result.added, result.modified, result.removed) == (1, 0, 0)
    assert _subjects(mailer) == ["finsync: 1 new transaction from Demo ins_demo_1"]
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_pending_history_follows_its_posted_twin_from_a_later_page(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    p = demo_bank.mutate(pid, "add", cents=2500, name="HOLD", pending=True)
    _sync(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "modify", transaction_id=p["transaction_id"], name="HOLD RENAMED")
    _sync(container, gateway, user_id, item_id)
    for i in range(499):  # the removal lands on the first page and the posted twin on the next
        demo_bank.mutate(pid, "add", cents=100 + i, name=f"FILLER {i}")
    posted = demo_bank.mutate(pid, "post", transaction_id=p["transaction_id"])
    assert _sync(container, gateway, user_id, item_id).pages == 2
    moved = [
        (h.field_name, h.old_value, h.new_value)
        for h in transaction_history(container, user_id, posted["transaction_id"])
    ]
    assert ("name", "HOLD", "HOLD RENAMED") in moved
    with unit_of_work(container.engine) as s:
        assert s.exec(select(PendingEdit)).all() == []  # nothing left behind for a hold that posted
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_an_unedited_hold_that_never_posts_leaves_nothing_behind(container, gateway, demo_bank, linked, clock) -> None:
    user_id, item_id, pid = linked
    p = demo_bank.mutate(pid, "add", cents=2500, name="HOLD", pending=True)
    _sync(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "modify", transaction_id=p["transaction_id"], name="HOLD RENAMED")
    _sync(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "remove", transaction_id=p["transaction_id"])
    assert _sync(container, gateway, user_id, item_id).removed == 1
    clock.advance(days=TWIN_WAIT.days, seconds=1)  # its posted twin had its time to come
    _sync(container, gateway, user_id, item_id)  # the next sync tidies up, even one with nothing new
    with unit_of_work(container.engine) as s:
        assert s.exec(select(PendingEdit)).all() == []
        assert s.exec(select(TransactionChange)).all() == []


def test_a_posted_twin_in_a_later_sync_takes_the_hold_s_history_and_is_not_news_again(
    container, gateway, demo_bank, linked, mailer, clock
) -> None:
    """Plaid may remove the pending row in one sync and add its posted twin in a later one."""
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    p = demo_bank.mutate(pid, "add", cents=2500, name="HOLD", pending=True)
    _sync(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "modify", transaction_id=p["transaction_id"], name="HOLD RENAMED")
    _sync(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "remove", transaction_id=p["transaction_id"])
    _sync(container, gateway, user_id, item_id)
    clock.advance(days=3)
    mailer.sent.clear()
    posted = demo_bank.mutate(pid, "add", cents=2500, name="HOLD RENAMED", pending_transaction_id=p["transaction_id"])
    assert posted is not None and _sync(container, gateway, user_id, item_id).added == 1
    assert _subjects(mailer) == []  # announced when it was pending: not news a second time
    moved = [
        (h.field_name, h.old_value, h.new_value)
        for h in transaction_history(container, user_id, posted["transaction_id"])
    ]
    assert ("name", "HOLD", "HOLD RENAMED") in moved
    with unit_of_work(container.engine) as s:
        assert s.exec(select(PendingEdit)).all() == []  # used by its twin
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_an_edit_saved_while_the_apply_runs_is_carried_or_refused_never_lost(
    container, gateway, demo_bank, linked, monkeypatch
) -> None:
    import services.sync_commit as sync_commit

    user_id, item_id, pid = linked
    p = demo_bank.mutate(pid, "add", cents=2500, name="COFFEE HOLD", pending=True)
    _sync(container, gateway, user_id, item_id)
    posted = demo_bank.mutate(pid, "post", transaction_id=p["transaction_id"])
    outcome: dict[str, str] = {}

    def edit() -> None:
        try:
            edit_transaction(container, user_id, p["transaction_id"], note="mine")
            outcome["edit"] = "saved"
        except Exception as exc:  # whatever the edit says, it must not say "saved" and then lose the note
            outcome["edit"] = type(exc).__name__

    editor = threading.Thread(target=edit)
    real = sync_commit.load_existing

    def load_then_edit(sql: Any, user: uuid.UUID, ids: Any) -> Any:
        rows = real(sql, user, ids)
        if p["transaction_id"] in ids and not editor.is_alive() and not outcome:
            editor.start()
            time.sleep(0.5)
            assert editor.is_alive(), "the edit went through while the apply held the pending row"
        return rows

    monkeypatch.setattr(sync_commit, "load_existing", load_then_edit)
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    editor.join(30)
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, posted["transaction_id"])
        assert row is not None and s.get(LedgerTransaction, p["transaction_id"]) is None
        assert row.note == "mine" or outcome["edit"] != "saved", outcome


def test_a_pending_row_stays_while_its_posted_twin_is_set_aside(
    container, gateway, demo_bank, linked, monkeypatch
) -> None:
    from services.sync import item_sync_status

    user_id, item_id, pid = linked
    p = demo_bank.mutate(pid, "add", cents=2500, name="HOLD", pending=True)
    _sync(container, gateway, user_id, item_id)
    edit_transaction(container, user_id, p["transaction_id"], note="keep me")
    posted = demo_bank.mutate(pid, "post", transaction_id=p["transaction_id"])
    garble(monkeypatch, posted["transaction_id"], date="2025-13-45")
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "ok" and result.error_code == "TRANSACTIONS_SET_ASIDE" and result.removed == 0
    rows = ledger(container, user_id)
    assert p["transaction_id"] in rows and posted["transaction_id"] not in rows
    (status,) = item_sync_status(container, user_id)
    assert status.state == "ok" and "set aside" in status.message
    with unit_of_work(container.engine) as s:
        state = s.get(ItemSyncState, item_id)
        assert state is not None and state.error_code == "TRANSACTIONS_SET_ASIDE"
    monkeypatch.undo()  # the bank sends it readable again
    demo_bank.mutate(pid, "modify", transaction_id=posted["transaction_id"], name="POSTED")  # now readable
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, posted["transaction_id"])
        assert row is not None and row.note == "keep me" and s.get(LedgerTransaction, p["transaction_id"]) is None
        state = s.get(ItemSyncState, item_id)
        assert state is not None and (state.error_code, state.message) == (None, "")
    assert ledger(container, user_id) == truth(demo_bank, pid)


@pytest.mark.parametrize("edited", [True, False], ids=["edited", "unedited"])
def test_a_posted_row_the_bank_removes_and_sends_again_keeps_its_edits_and_is_not_news_again(
    container, gateway, demo_bank, linked, mailer, clock, edited: bool
) -> None:
    """A bank may drop a posted transaction and put it back later under the same id: the user's category, note,
    tags and exclusion come back with it, and the digest does not announce it a second time."""
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    t = demo_bank.mutate(pid, "add", cents=4200, name="BOOKSHOP")
    assert t is not None
    tid = t["transaction_id"]
    _sync(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "modify", transaction_id=tid, name="BOOKSHOP LTD")
    _sync(container, gateway, user_id, item_id)
    if edited:
        edit_transaction(container, user_id, tid, category="Gifts", note="for a friend", tags=["books"], excluded=True)
    demo_bank.mutate(pid, "remove", transaction_id=tid)
    assert _sync(container, gateway, user_id, item_id).removed == 1
    assert tid not in ledger(container, user_id)
    clock.advance(days=2)  # past the digest's hourly pause
    mailer.sent.clear()
    demo_bank.mutate(pid, "restore", transaction_id=tid)
    demo_bank.mutate(pid, "add", cents=100, name="REALLY NEW")
    assert _sync(container, gateway, user_id, item_id).added == 2
    assert _subjects(mailer) == ["finsync: 1 new transaction from Demo ins_demo_1"]
    listed = [line for line in mailer.sent[0].get_content().splitlines() if line.startswith("  20")]
    assert len(listed) == 1 and "REALLY NEW" in listed[0], listed
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, tid)
        assert row is not None
        owned = (row.category_override, row.note, row.tags, row.excluded)
        assert owned == (("Gifts", "for a friend", "books", True) if edited else (None, None, None, False))
        assert s.exec(select(PendingEdit)).all() == []  # used up by its return
    changes = [(h.field_name, h.old_value, h.new_value) for h in transaction_history(container, user_id, tid)]
    assert ("name", "BOOKSHOP", "BOOKSHOP LTD") in changes  # what the bank changed earlier is still shown
    assert ledger(container, user_id) == truth(demo_bank, pid)
