"""Scenario tests of the sync when the bank errs or another run holds the item: retried, restarted or failed in words.

Mutation during pagination, 429s and 500s, outages, timeouts, login required, an item not ready, endless paging, a
lease held by another run: a failed run keeps nothing, and the next good run makes the ledger equal the bank's truth.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import timedelta
from typing import ClassVar

import pytest
from sqlmodel import col, select

from models import ItemSyncState, PlaidApiEvent, PlaidItem, SyncRun, SyncStaged
from services.banking import list_items
from services.container import Container
from services.db import unit_of_work
from services.demo_bank import DEMO_CLIENT_ID, DEMO_SECRET
from services.mailer import MemoryMailer
from services.plaid_client import PlaidGateway
from services.plaid_errors import MutationDuringPagination, Transient, error_from_body
from services.plaid_events import DatabaseRecorder
from services.plaid_types import CallEvent, SyncPage
from services.sync import item_sync_status, list_runs, sync_item
from services.sync_state import acquire, worker_name
from services.sync_types import MAX_PAGES, MAX_RESTARTS
from tests.integration.sync_helpers import FAST, cursor_of, ledger, link_item, make_user, truth
from tests.integration.sync_helpers import sync_fast as _sync


def _runs(c: Container, item_id: uuid.UUID) -> list[SyncRun]:
    with unit_of_work(c.engine) as s:
        return list(s.exec(select(SyncRun).where(SyncRun.item_id == item_id).order_by(col(SyncRun.started_at))).all())


def test_mutation_during_pagination_restarts_from_the_first_cursor(
    container, gateway, demo_bank, linked, plaid_events
) -> None:
    user_id, item_id, pid = linked
    demo_bank.generate_history(pid, 1200)
    demo_bank.set_fault(pid, "mutation_during_pagination", page=2)
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)  # the restarted loop saw the changed row
    run = _runs(container, item_id)[-1]
    assert run.restarts == 1
    errors = [e for e in plaid_events if e.error_code == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"]
    assert len(errors) == 1


class AlwaysMutating(PlaidGateway):
    """Every second page fails as if the bank changed data mid-pagination."""

    raised: ClassVar[list[int]] = []  # shared with the copies a sync makes (with_recorder)

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        page = super().transactions_sync(access_token, cursor, count)
        if page.has_more:
            return page
        self.raised.append(1)
        raise MutationDuringPagination("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION", request_id="req-m")


def test_endless_mutation_gives_up_and_changes_nothing(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    before, cursor = ledger(container, user_id), cursor_of(container, item_id)
    demo_bank.generate_history(pid, 600)
    flaky = AlwaysMutating("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url, timeout=(2.0, 5.0))
    AlwaysMutating.raised.clear()
    result = _sync(container, flaky, user_id, item_id)
    assert result.status == "failed" and result.error_code == "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"
    assert "tries again automatically" in result.message
    assert ledger(container, user_id) == before and cursor_of(container, item_id) == cursor
    with unit_of_work(container.engine) as s:
        assert s.exec(select(SyncStaged)).first() is None
    assert _runs(container, item_id)[-1].restarts == MAX_RESTARTS  # security bar M3: at most 3 tries, then stop
    assert len(AlwaysMutating.raised) == MAX_RESTARTS
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_one_429_and_one_500_are_absorbed_within_the_run(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    demo_bank.set_fault(pid, "rate_limit", times=1, endpoint="/transactions/sync")
    demo_bank.set_fault(pid, "server_error", times=1, endpoint="/accounts/get")
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)
    run = _runs(container, item_id)[-1]
    assert run.retries == 2 and run.status == "ok" and run.request_ids


def test_persistent_outage_fails_with_words_and_the_next_run_completes(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    demo_bank.set_fault(pid, "server_error", times=50)
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "failed" and ledger(container, user_id) == {} and cursor_of(container, item_id) == ""
    view = list_runs(container, user_id)[0]
    assert view.status == "failed" and view.explanation and "automatically" in view.fix
    demo_bank.clear_faults(pid)
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_a_bank_that_times_out_is_a_transient_failure(container, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    slow = PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url, timeout=(2.0, 0.2))
    demo_bank.set_fault(pid, "delay", seconds=0.6)
    try:
        result = sync_item(
            container, user_id, item_id, gateway=slow, policy=FAST.__class__(retries=1, base_seconds=0.001)
        )
    finally:
        demo_bank.clear_faults(pid)
    assert result.status == "failed" and result.error_code == "NETWORK_ERROR"
    assert _sync(container, slow, user_id, item_id).status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_login_required_then_repaired(
    container, gateway, demo_bank, linked, plaid_events, mailer: MemoryMailer
) -> None:
    user_id, item_id, pid = linked
    _sync(container, gateway, user_id, item_id)
    demo_bank.set_fault(pid, "login_required")
    demo_bank.advance(pid, 2)
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "login_required" and "sign in again" in result.message and "Repair" in result.message
    assert [m for m in mailer.sent if "needs your attention" in str(m)]
    status = item_sync_status(container, user_id)[0]
    assert status.state == "login_required"
    calls = len(plaid_events)
    scheduled = _sync(container, gateway, user_id, item_id, explicit=False)
    assert scheduled.status == "login_required" and len(plaid_events) == calls  # the scheduler does not hammer it
    demo_bank.repair(pid)  # the user repaired it elsewhere: an explicit sync picks that up
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)
    with unit_of_work(container.engine) as s:
        assert s.get(PlaidItem, item_id).status == "ok"  # type: ignore[union-attr]


class AccessWithdrawnBank(PlaidGateway):
    """The bank answers /transactions/sync with an item error only its owner can clear (access not granted)."""

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        raise error_from_body(400, b'{"error_type": "ITEM_ERROR", "error_code": "ACCESS_NOT_GRANTED"}')


def test_an_item_error_only_the_user_clears_waits_for_a_repair_instead_of_hourly_retries(
    container, gateway, demo_bank, linked, plaid_events, mailer: MemoryMailer
) -> None:
    user_id, item_id, _ = linked
    _sync(container, gateway, user_id, item_id)
    withdrawn = AccessWithdrawnBank("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url)
    result = _sync(container, withdrawn, user_id, item_id)
    assert (
        result.status == "login_required"
        and "not sharing the data" in result.message
        and "allow access" in result.message
    )
    assert [m for m in mailer.sent if "needs your attention" in str(m)]
    with unit_of_work(container.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None and (item.status, item.status_code) == ("login_required", "ACCESS_NOT_GRANTED")
    calls = len(plaid_events)
    assert _sync(container, withdrawn, user_id, item_id, explicit=False).status == "login_required"
    assert len(plaid_events) == calls  # the scheduler waits for the user (a daily probe), not an hourly retry


def test_access_withdrawn_at_the_bank_says_link_again_and_is_probed_daily_not_hourly(
    container, gateway, demo_bank, linked, plaid_events, clock
) -> None:
    """Plaid answers ITEM_NOT_FOUND for good once the user withdrew access (the demo bank now does too): the card must
    not say "nothing to do, finsync tries again", and the scheduler must not ask Plaid every hour for ever."""
    user_id, item_id, pid = linked
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    before, cursor = ledger(container, user_id), cursor_of(container, item_id)
    demo_bank.set_fault(pid, "permission_revoked")
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "failed" and result.error_code == "ITEM_NOT_FOUND"
    assert "withdrawn" in result.message and "link the bank again" in result.message
    assert "tries again" not in result.message
    assert ledger(container, user_id) == before and cursor_of(container, item_id) == cursor  # nothing lost
    with unit_of_work(container.engine) as s:
        item, state = s.get(PlaidItem, item_id), s.get(ItemSyncState, item_id)
        assert item is not None and (item.status, item.status_code) == ("permission_revoked", "ITEM_NOT_FOUND")
        assert state is not None and state.next_due_at is not None
        assert state.next_due_at - clock.now >= timedelta(hours=24)
    [card] = list_items(container, user_id)
    assert card.needs_attention and not card.needs_repair and "link the bank again" in card.status_message


class NotOfferedBank(PlaidGateway):
    """Plaid answers /transactions/sync with an error no retry clears (``code`` is set per test)."""

    code: ClassVar[str] = "PRODUCTS_NOT_SUPPORTED"

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        raise error_from_body(400, f'{{"error_type": "ITEM_ERROR", "error_code": "{self.code}"}}')


@pytest.mark.parametrize("code", ["PRODUCTS_NOT_SUPPORTED", "INSTITUTION_NO_LONGER_SUPPORTED"])
def test_a_bank_plaid_no_longer_serves_is_said_so_and_probed_daily_not_hourly(
    container, demo_bank, linked, clock, mailer: MemoryMailer, code: str
) -> None:
    user_id, item_id, _ = linked
    NotOfferedBank.code = code
    gone = NotOfferedBank("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url)
    result = _sync(container, gone, user_id, item_id)
    assert result.status == "failed" and result.error_code == code
    assert "no longer makes its transactions available" in result.message and "Remove it" in result.message
    assert "tries again" not in result.message  # it would not: waiting helps no more than retrying
    with unit_of_work(container.engine) as s:
        state = s.get(ItemSyncState, item_id)
        assert state is not None and state.next_due_at is not None
        assert state.next_due_at - clock.now >= timedelta(hours=24)
    [card] = list_items(container, user_id)  # not a green "Connected." above a sync that can never work
    assert card.needs_attention and not card.needs_repair and "Remove it" in card.status_message, card
    assert "Connected" not in card.status_message and "Try again later" not in card.status_message
    [alert] = [m for m in mailer.sent if "needs your attention" in str(m["Subject"])]
    assert card.status_message in alert.get_content()


def test_an_item_not_ready_yet_is_preparing_not_an_error(container, gateway, demo_bank) -> None:
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id, username="user_not_ready")
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "preparing" and result.ok and "preparing" in result.message
    assert item_sync_status(container, user_id)[0].state == "preparing"
    demo_bank.set_ready(pid, True)
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_second_sync_of_the_same_item_is_refused_while_one_runs(container, gateway, linked) -> None:
    user_id, item_id, _ = linked
    with unit_of_work(container.engine, immediate=True) as s:
        assert acquire(s, s.get(PlaidItem, item_id), worker_name("other"), container.clock())  # type: ignore[arg-type]
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "already_syncing" and ledger(container, user_id) == {}


def test_a_lease_left_by_a_dead_process_is_taken_over(container, gateway, demo_bank, linked) -> None:
    user_id, item_id, pid = linked
    with unit_of_work(container.engine, immediate=True) as s:
        acquire(s, s.get(PlaidItem, item_id), "x", container.clock())  # type: ignore[arg-type]
        state = s.get(ItemSyncState, item_id)
        assert state is not None
        state.lease_owner = f"{os.uname().nodename}:{2**22 + 12345}:worker:dead"  # no such pid
        s.add(state)
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)


class _RepairedWhileRunning:
    """A gateway during whose fetch the user repairs the item elsewhere (e.g. in another tab)."""

    def __init__(self, inner: PlaidGateway, c: Container, item_id: uuid.UUID) -> None:
        self._inner, self._c, self._item_id = inner, c, item_id

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def with_recorder(self, recorder: object) -> _RepairedWhileRunning:  # the engine adds its own recorder
        return _RepairedWhileRunning(self._inner.with_recorder(recorder), self._c, self._item_id)  # type: ignore[arg-type]

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        with unit_of_work(self._c.engine) as s:
            item = s.get(PlaidItem, self._item_id)
            assert item is not None
            item.status, item.updated_at = "ok", self._c.clock() + timedelta(seconds=1)
        return self._inner.transactions_sync(access_token, cursor, count)


def test_a_login_failure_does_not_undo_a_repair_made_while_the_run_was_going(
    container, gateway, demo_bank, linked, clock
) -> None:
    user_id, item_id, pid = linked
    demo_bank.set_fault(pid, "login_required")
    result = sync_item(
        container, user_id, item_id, gateway=_RepairedWhileRunning(gateway, container, item_id), policy=FAST
    )  # type: ignore[arg-type]
    assert result.status == "login_required"  # this run failed...
    with unit_of_work(container.engine) as s:
        item = s.get(PlaidItem, item_id)
        assert item is not None and item.status == "ok"  # ...but the newer repair stands
    clock.advance(minutes=1)
    result = _sync(container, gateway, user_id, item_id)  # control: with no repair, the failure is recorded
    assert result.status == "login_required"
    with unit_of_work(container.engine) as s:
        assert s.get(PlaidItem, item_id).status == "login_required"  # type: ignore[union-attr]


class _FailsFromPage(PlaidGateway):
    """The real gateway, except that every /transactions/sync call after the first ``ok`` pages fails."""

    ok = 2
    calls = 0  # per instance once counted (the sync's copy of this gateway counts its own calls)

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        self.calls += 1
        if self.calls > self.ok:
            raise Transient("INTERNAL_SERVER_ERROR")
        return super().transactions_sync(access_token, cursor, count)


def test_a_failure_on_a_later_page_keeps_nothing_and_leaves_no_fetcher_running(container, demo_bank, linked) -> None:
    """Pages are fetched ahead in a thread: an error there ends the run like an error in line would."""
    user_id, item_id, pid = linked
    demo_bank.generate_history(pid, 1200)  # three pages
    failing = _FailsFromPage("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url)
    failing = failing.with_recorder(DatabaseRecorder(container.engine, container.clock))  # type: ignore[assignment]
    result = _sync(container, failing, user_id, item_id)
    assert result.status == "failed" and result.error_code == "INTERNAL_SERVER_ERROR"
    assert ledger(container, user_id) == {} and cursor_of(container, item_id) == ""
    with unit_of_work(container.engine) as s:
        assert s.exec(select(SyncStaged)).all() == []  # the fetched pages were not kept
        logged = s.exec(select(PlaidApiEvent).where(PlaidApiEvent.endpoint == "/transactions/sync")).all()
    assert len(logged) == 2 and {(e.user_id, e.item_id) for e in logged} == {(user_id, item_id)}  # held, then written
    deadline = time.monotonic() + 5
    while any(t.name == "finsync-sync-fetch" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "finsync-sync-fetch" for t in threading.enumerate())
    assert _sync(container, PlaidGateway("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url), user_id, item_id).ok
    assert ledger(container, user_id) == truth(demo_bank, pid)


def test_a_bank_that_pages_past_the_bound_stops_the_run_and_keeps_nothing(
    container, gateway, demo_bank, linked, monkeypatch, plaid_events: list[CallEvent]
) -> None:
    """Security bar M10: a run that pages beyond MAX_PAGES ends (no endless loop), cursor and ledger unchanged."""
    assert 200 <= MAX_PAGES <= 1000  # bounded, yet a 200,000-transaction first sync (400 pages) fits
    import services.sync_fetch as sync_fetch

    user_id, item_id, pid = linked
    demo_bank.generate_history(pid, 2000)  # five pages
    real = sync_fetch.MAX_PAGES
    monkeypatch.setattr(sync_fetch, "MAX_PAGES", 3)
    result = _sync(container, gateway, user_id, item_id)
    assert result.status == "failed" and result.error_code == "TOO_MANY_PAGES" and result.pages == 3
    assert ledger(container, user_id) == {} and cursor_of(container, item_id) == ""
    assert [e.endpoint for e in plaid_events].count("/transactions/sync") == 3  # the fetcher stopped too
    monkeypatch.setattr(sync_fetch, "MAX_PAGES", real)
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    assert ledger(container, user_id) == truth(demo_bank, pid)


class RevokedBank(PlaidGateway):
    """Plaid answers for an item whose access the user withdrew, and its webhook never reached this server."""

    def transactions_sync(self, access_token: str, cursor: str = "", count: int = 500) -> SyncPage:
        raise error_from_body(400, b'{"error_type": "ITEM_ERROR", "error_code": "ITEM_NOT_FOUND"}')


def test_access_withdrawn_found_by_a_sync_mails_the_owner_once_to_link_again(
    container, gateway, demo_bank, linked, mailer: MemoryMailer
) -> None:
    """A self-hosted server Plaid's webhooks cannot reach learns of a withdrawn access only from a sync. The card
    then says "remove it and link again", but nobody opens Accounts to read it: the owner is mailed, as for an
    expired login, once, with the words that fix it (not "sign in again")."""
    user_id, item_id, _ = linked
    assert _sync(container, gateway, user_id, item_id).status == "ok"
    revoked = RevokedBank("demo", DEMO_CLIENT_ID, DEMO_SECRET, demo_bank.url)
    assert _sync(container, revoked, user_id, item_id).error_code == "ITEM_NOT_FOUND"
    alerts = [m for m in mailer.sent if "needs your attention" in str(m["Subject"])]
    assert len(alerts) == 1, [str(m["Subject"]) for m in mailer.sent]
    body = alerts[0].get_content()
    assert "link the bank again" in body and "sign in again" not in body, body
    assert _sync(container, revoked, user_id, item_id).error_code == "ITEM_NOT_FOUND"  # the daily probe: no news
    assert len([m for m in mailer.sent if "needs your attention" in str(m["Subject"])]) == 1
