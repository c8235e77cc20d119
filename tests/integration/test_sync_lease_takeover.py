"""A worker whose item lease expired and was taken over must not overwrite what the newer worker left."""

from __future__ import annotations

from datetime import timedelta

import pytest

import services.sync_engine as sync_engine
from models import ItemSyncState, PlaidItem
from services.db import unit_of_work
from services.mailer import MemoryMailer
from services.sync_types import LEASE_SECONDS
from tests.integration.sync_helpers import cursor_of, ledger, sync_fast, truth


@pytest.mark.parametrize("fault", ["institution_down", "login_required"])
def test_a_late_failure_after_a_takeover_leaves_the_newer_success_standing(
    container, gateway, demo_bank, clock, linked, monkeypatch, mailer: MemoryMailer, fault
) -> None:
    """A's bank call fails; before A records that, A stalls past its lease, and B takes the item over and syncs it
    fully (for a login failure: the user signed in again at the bank meanwhile). A's run is recorded as failed,
    but the item stays B's: synced, no error, no failure counted, due by the interval, no "needs attention" mail."""
    user_id, item_id, pid = linked
    real_finish = sync_engine.finish_unsuccessful
    took_over = []

    def stalled_finish(engine, **kw):  # type: ignore[no-untyped-def]
        if kw["owner"] == "worker-A" and not took_over:
            clock.advance(seconds=LEASE_SECONDS + 60)  # A stalls here: its lease expires
            demo_bank.repair(pid)  # (a login failure) the user repaired it elsewhere
            took_over.append(sync_fast(container, gateway, user_id, item_id, worker="worker-B"))
        return real_finish(engine, **kw)

    monkeypatch.setattr(sync_engine, "finish_unsuccessful", stalled_finish)
    if fault == "login_required":
        demo_bank.set_fault(pid, "login_required")
    else:
        demo_bank.set_fault(pid, "institution_down", times=1, endpoint="/transactions/sync")  # only A's call
    late = sync_fast(container, gateway, user_id, item_id, worker="worker-A")

    assert [r.status for r in took_over] == ["ok"]
    assert late.status == ("login_required" if fault == "login_required" else "failed")  # A's own run: as it was
    assert ledger(container, user_id) == truth(demo_bank, pid) and cursor_of(container, item_id) != ""
    with unit_of_work(container.engine) as s:
        state, item = s.get(ItemSyncState, item_id), s.get(PlaidItem, item_id)
        assert state is not None and item is not None
        assert (state.state, state.error_code, state.consecutive_failures) == ("ok", None, 0)
        assert state.login_required_since is None and item.status == "ok"
        assert state.lease_owner is None  # and the item is free for the next sync
        assert state.last_success_at is not None
        assert state.next_due_at == state.last_success_at + timedelta(hours=container.settings.sync_interval_hours)
    assert not [m for m in mailer.sent if "needs your attention" in str(m)]


def test_a_slow_bank_does_not_let_the_lease_run_out_mid_fetch(container, gateway, demo_bank, clock, linked) -> None:
    """Pages that come slowly (a few minutes each: a struggling bank, retries) keep the item's lease alive, so a
    second worker finds the item still syncing instead of taking it over and throwing away the first one's pages."""
    user_id, item_id, pid = linked
    for i in range(1100):  # a first sync of three pages
        demo_bank.mutate(pid, "add", cents=100 + i, name=f"SHOP {i}")
    second: list[str] = []

    def slow_pages(p) -> None:  # type: ignore[no-untyped-def]
        if p.stage != "fetching":
            return
        clock.advance(seconds=LEASE_SECONDS * 0.6)  # each page takes six minutes
        if p.pages == 2:  # twelve minutes in: more than one lease, less than two
            second.append(sync_fast(container, gateway, user_id, item_id, worker="worker-B").status)

    result = sync_fast(container, gateway, user_id, item_id, worker="worker-A", progress=slow_pages)

    assert second == ["already_syncing"]
    assert (result.status, result.pages) == ("ok", 3)
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_a_restart_after_a_mutation_does_not_count_as_a_renewal(container, gateway, demo_bank, clock, linked) -> None:
    """A restart (the bank changed during pagination) renews nothing by itself: the pages fetched again after it must
    not wait a fresh third of a lease counted from the restart, or the lease runs out and a second worker takes over."""
    user_id, item_id, pid = linked
    for i in range(1100):  # three pages
        demo_bank.mutate(pid, "add", cents=100 + i, name=f"SHOP {i}")
    demo_bank.set_fault(pid, "mutation_during_pagination", page=3)
    second: list[str] = []

    def slow_pages(p) -> None:  # type: ignore[no-untyped-def]
        if p.stage != "fetching":
            return
        clock.advance(seconds=LEASE_SECONDS * 0.3)  # each page takes three minutes: never a third of a lease
        if p.pages == 4:  # the restart's second page: twelve minutes after the lease was taken, none renewed it
            second.append(sync_fast(container, gateway, user_id, item_id, worker="worker-B").status)

    result = sync_fast(container, gateway, user_id, item_id, worker="worker-A", progress=slow_pages)

    assert second == ["already_syncing"]
    assert result.status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)
