"""The self-check: an item replayed from the empty cursor equals the ledger, and tampering is found."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlmodel import select

from models import LedgerTransaction, SyncRun
from services.container import Container
from services.db import unit_of_work
from services.demo_bank.server import DemoBankHandle
from services.plaid_client import PlaidGateway
from services.sync import edit_transaction
from services.sync_engine import sync_item
from services.sync_selfcheck import check_due, due_check
from services.sync_verify import verify_item
from tests.factories import FakeClock
from tests.integration.sync_helpers import FAST, garble, ledger, sync_fast, truth


def _verify(c: Container, gw: PlaidGateway, user_id: uuid.UUID, item_id: uuid.UUID):  # type: ignore[no-untyped-def]
    return verify_item(c, user_id, item_id, gateway=gw, policy=FAST)


def test_a_ledger_built_by_many_syncs_verifies_against_a_replay(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, linked: tuple[uuid.UUID, uuid.UUID, str]
) -> None:
    user_id, item_id, pid = linked
    demo_bank.generate_history(pid, 1200)  # several pages
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    for day in range(3):  # pending charges post, transactions change and disappear between syncs
        demo_bank.advance(pid, 2 + day)
        sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    result = _verify(container, gateway, user_id, item_id)
    assert result.status == "verified", result.summary()
    assert result.found.checked == len(truth(demo_bank, pid)) == len(ledger(container, user_id))
    with unit_of_work(container.engine) as s:
        runs = s.exec(select(SyncRun).where(SyncRun.trigger == "verify")).all()
        assert [(r.status, r.error_code) for r in runs] == [("ok", None)]
        assert s.exec(select(SyncRun).where(SyncRun.status == "running")).all() == []


def test_a_lost_an_invented_and_an_altered_transaction_are_each_reported(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, linked: tuple[uuid.UUID, uuid.UUID, str]
) -> None:
    user_id, item_id, _ = linked
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    lost, altered = sorted(ledger(container, user_id))[:2]
    with unit_of_work(container.engine) as s:  # what a bug in the sync could have done
        row = s.get(LedgerTransaction, lost)
        assert row is not None
        s.delete(row)
        changed = s.get(LedgerTransaction, altered)
        assert changed is not None
        changed.amount_minor += 1
        s.add(changed)
        s.add(
            LedgerTransaction(
                plaid_transaction_id="invented-1",
                user_id=user_id,
                account_id=changed.account_id,
                item_id=item_id,
                amount_minor=-500,
                date=changed.date,
                name="NOT AT THE BANK",
            )
        )
    result = _verify(container, gateway, user_id, item_id)
    assert result.status == "differs" and not result.ok
    f = result.found
    assert (f.missing, f.extra, f.differing) == (1, 1, 1)
    assert set(f.examples) == {("missing", lost), ("extra", "invented-1"), ("different", altered)}
    assert "DIFFERS: 1 missing, 1 extra, 1 different" in result.summary()
    with unit_of_work(container.engine) as s:  # recorded twice (confirmed by a second sync and replay)
        runs = s.exec(select(SyncRun).where(SyncRun.trigger == "verify")).all()
        assert [(r.status, r.error_code) for r in runs] == [("failed", "LEDGER_DIFFERS")] * 2
        assert s.get(LedgerTransaction, "invented-1") is not None  # a check reports; it never repairs


def test_a_bank_that_is_down_fails_the_check_without_a_verdict(
    container: Container, gateway: PlaidGateway, demo_bank: DemoBankHandle, linked: tuple[uuid.UUID, uuid.UUID, str]
) -> None:
    user_id, item_id, pid = linked
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    demo_bank.set_fault(pid, "server_error", times=50, endpoint="/transactions/sync")
    result = _verify(container, gateway, user_id, item_id)
    demo_bank.clear_faults(pid)
    assert result.status == "failed" and "automatically" in result.message
    assert _verify(container, gateway, user_id, item_id).status == "verified"


def test_a_set_aside_transaction_is_counted_not_reported_as_missing(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    linked: tuple[uuid.UUID, uuid.UUID, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import services.demo_bank.syncing as bank_sync

    user_id, item_id, pid = linked
    real = bank_sync.txn_json
    poisoned = sorted(truth(demo_bank, pid))[0]
    monkeypatch.setattr(
        bank_sync, "txn_json", lambda t: {**real(t), "amount": None} if t.transaction_id == poisoned else real(t)
    )
    result = _verify(container, gateway, user_id, item_id)
    assert result.status == "verified" and result.found.set_aside == 1
    assert "(1 unreadable one(s) set aside)" in result.summary()


def _scheduled(c: Container, gw: PlaidGateway):  # type: ignore[no-untyped-def]
    return check_due(c, gateway=gw, policy=FAST)


def _verify_runs(c: Container) -> list[tuple[str, str | None]]:
    with unit_of_work(c.engine) as s:
        runs = s.exec(select(SyncRun).where(SyncRun.trigger == "verify").order_by(SyncRun.started_at)).all()  # type: ignore[arg-type]
        return [(r.status, r.error_code) for r in runs]


def test_the_bot_checks_each_bank_once_a_period_by_itself(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    linked: tuple[uuid.UUID, uuid.UUID, str],
    clock: FakeClock,
) -> None:
    user_id, item_id, pid = linked
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert _scheduled(container, gateway) is None  # a bank linked today is checked a period from now
    clock.advance(days=7, seconds=1)
    demo_bank.advance(pid, 7)
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    first = _scheduled(container, gateway)
    assert first is not None and first.status == "verified", first
    assert first.found.checked == len(truth(demo_bank, pid))
    assert _scheduled(container, gateway) is None  # checked: not again this period
    clock.advance(days=3)
    assert _scheduled(container, gateway) is None
    clock.advance(days=4, seconds=1)
    again = _scheduled(container, gateway)
    assert again is not None and again.status == "verified"
    assert _verify_runs(container) == [("ok", None), ("ok", None)]
    with unit_of_work(container.engine) as s:  # Sync history names the check's own syncs as such
        triggers = sorted({r.trigger for r in s.exec(select(SyncRun)).all()})
    assert triggers == ["check", "manual", "verify"]


def test_a_scheduled_check_that_finds_a_lost_transaction_records_it_once_a_period(
    container: Container,
    gateway: PlaidGateway,
    linked: tuple[uuid.UUID, uuid.UUID, str],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user_id, item_id, _ = linked
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    lost = sorted(ledger(container, user_id))[0]
    with unit_of_work(container.engine) as s:  # what a bug in the sync could have done
        row = s.get(LedgerTransaction, lost)
        assert row is not None
        s.delete(row)
    clock.advance(days=8)
    with caplog.at_level("WARNING", logger="finsync.selfcheck"):
        found = _scheduled(container, gateway)
    assert found is not None and found.status == "differs" and ("missing", lost) in found.found.examples
    assert any(lost in r.getMessage() for r in caplog.records)  # the operator's log names it
    # Found, then confirmed by a second sync and replay; Sync history explains it to the user.
    assert _verify_runs(container) == [("failed", "LEDGER_DIFFERS")] * 2
    assert _scheduled(container, gateway) is None  # reported: not re-checked at every tick


def test_a_bank_that_fails_is_not_self_checked_and_checks_can_be_turned_off(
    container: Container,
    gateway: PlaidGateway,
    demo_bank: DemoBankHandle,
    linked: tuple[uuid.UUID, uuid.UUID, str],
    clock: FakeClock,
) -> None:
    user_id, item_id, pid = linked
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    clock.advance(days=8)
    off = dataclasses.replace(container, settings=container.settings.model_copy(update={"sync_verify_days": 0}))
    assert _scheduled(off, gateway) is None and _verify_runs(container) == []
    demo_bank.set_fault(pid, "institution_down", times=10**6)
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status == "failed"
    assert _scheduled(container, gateway) is None  # the ordinary sync and its back-off deal with a bank that is down
    demo_bank.clear_faults(pid)
    assert sync_item(container, user_id, item_id, explicit=True, gateway=gateway, policy=FAST).ok
    result = _scheduled(container, gateway)
    assert result is not None and result.status == "verified"


def test_a_check_plaid_cut_short_is_tried_again_the_next_day_not_at_every_tick(
    container: Container, gateway: PlaidGateway, linked: tuple[uuid.UUID, uuid.UUID, str], clock: FakeClock
) -> None:
    user_id, item_id, _ = linked
    sync_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    clock.advance(days=8)
    with unit_of_work(container.engine) as s:  # a replay that ended without a verdict (Plaid failed midway)
        s.add(SyncRun(item_id=item_id, user_id=user_id, trigger="verify", started_at=clock.now, status="failed"))
    clock.advance(hours=23)
    assert due_check(container, clock.now) is None
    clock.advance(hours=1, seconds=1)
    assert due_check(container, clock.now) == (user_id, item_id)


def test_a_hold_kept_for_its_set_aside_posted_charge_is_not_a_difference(
    container, gateway, demo_bank, linked, monkeypatch
) -> None:
    user_id, item_id, pid = linked
    p = demo_bank.mutate(pid, "add", cents=2500, name="HOLD", pending=True)
    sync_fast(container, gateway, user_id, item_id)
    edit_transaction(container, user_id, p["transaction_id"], note="keep me")
    posted = demo_bank.mutate(pid, "post", transaction_id=p["transaction_id"])
    garble(monkeypatch, posted["transaction_id"], date="2025-13-45")
    assert sync_fast(container, gateway, user_id, item_id).error_code == "TRANSACTIONS_SET_ASIDE"
    result = verify_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert result.status == "verified", result.summary()  # kept on purpose: the weekly check failed on it


def test_a_transaction_whose_later_change_was_set_aside_is_not_a_difference(
    container, gateway, demo_bank, linked, monkeypatch
) -> None:
    user_id, item_id, pid = linked
    t = demo_bank.mutate(pid, "add", cents=2500, name="GROCER")
    sync_fast(container, gateway, user_id, item_id)
    demo_bank.mutate(pid, "modify", transaction_id=t["transaction_id"], name="GROCER #2")
    garble(monkeypatch, t["transaction_id"], amount="n/a")
    assert sync_fast(container, gateway, user_id, item_id).error_code == "TRANSACTIONS_SET_ASIDE"
    result = verify_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert result.status == "verified", result.summary()


def test_the_kept_history_of_an_account_no_longer_shared_is_not_a_difference(
    container, gateway, demo_bank, linked
) -> None:
    user_id, item_id, pid = linked
    assert sync_fast(container, gateway, user_id, item_id).status == "ok"
    with demo_bank.bank.lock:
        demo_bank.bank.item(pid).hidden.append("savings")  # unticked at a later sign-in (as test_banking_items does)
    assert sync_fast(container, gateway, user_id, item_id).status == "ok"  # its history is kept, by design
    result = verify_item(container, user_id, item_id, gateway=gateway, policy=FAST)
    assert result.status == "verified", result.summary()
