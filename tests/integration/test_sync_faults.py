"""Faults inside a sync: a run cut short by a rerun or a kill, an unexpected error, two first syncs at once."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException

from models import ItemSyncState, PlaidItem, SyncJob, SyncRun
from pages.ui import sync_view
from services.banking import list_items
from services.container import Container
from services.db import unit_of_work
from services.jobs import enqueue_due, run_due_jobs
from services.sync import SyncProgress, sync_item
from services.sync_state import acquire, start_run
from tests.integration.sync_helpers import FAST, corrupt_token, ledger, link_item, make_user, truth


@pytest.fixture
def wired(container: Container, gateway) -> Container:
    """Jobs find the gateway the way the app does: on the container."""
    return dataclasses.replace(container, plaid=gateway)


def _runs(c: Container) -> list[tuple[str, str | None]]:
    with unit_of_work(c.engine) as s:
        return [(r.status, r.error_code) for r in s.exec(select(SyncRun).order_by(SyncRun.started_at)).all()]  # type: ignore[arg-type]


def _state(c: Container, item_id: uuid.UUID) -> ItemSyncState:
    with unit_of_work(c.engine) as s:
        state = s.get(ItemSyncState, item_id)
        assert state is not None
        return state


def _rerun_while_applying(p: SyncProgress) -> None:
    if p.stage == "applying":
        raise RerunException(None)  # what a Streamlit call raises when the user clicks during "Sync now"


def test_a_first_sync_cut_short_by_a_rerun_is_closed_and_then_finished_by_the_scheduler(
    wired, gateway, demo_bank, clock
) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    with pytest.raises(RerunException):
        sync_item(wired, user_id, item_id, progress=_rerun_while_applying)
    assert _runs(wired) == [("failed", "INTERRUPTED")]  # not left "running"
    state = _state(wired, item_id)
    assert state.lease_owner is None and state.next_due_at is not None
    clock.advance(minutes=5)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    assert _runs(wired)[-1] == ("ok", None)


def test_a_first_sync_killed_midway_is_picked_up_by_the_scheduler(wired, gateway, demo_bank, clock) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    with unit_of_work(wired.engine, immediate=True) as s:  # lease and run committed, then SIGKILL: nothing else
        item = s.get(PlaidItem, item_id)
        assert item is not None and acquire(s, item, "otherhost:1:app:x", clock())
        start_run(s, item, "otherhost:1:app:x", "manual", clock())
    assert enqueue_due(wired) == 0  # its lease still looks alive: no job every tick behind a running sync
    clock.advance(minutes=11)  # the dead holder's lease has expired
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    assert _runs(wired) == [("failed", "INTERRUPTED"), ("ok", None)]


def test_an_unexpected_error_fails_the_run_and_backs_off_instead_of_retrying_every_tick(
    wired, gateway, demo_bank, clock, caplog
) -> None:
    user_id = make_user(wired)
    item_id, _ = link_item(wired, gateway, user_id)
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1
    corrupt_token(wired, item_id)
    clock.advance(hours=wired.settings.sync_interval_hours, seconds=1)
    failed_at = clock()
    ran = []
    for _ in range(4):  # two minutes of scheduler ticks
        ran.append(run_due_jobs(wired, worker_id="w", limit=5))
        clock.advance(seconds=30)
    assert ran == [1, 0, 0, 0]
    assert _runs(wired) == [("ok", None), ("failed", "TOKEN_UNREADABLE")]
    assert "failed unexpectedly" in caplog.text and "Traceback" in caplog.text
    state = _state(wired, item_id)
    assert (state.state, state.lease_owner, state.consecutive_failures) == ("failed", None, 1)
    assert state.next_due_at == failed_at + timedelta(minutes=5)
    clock.advance(minutes=3)
    retried_at = clock()
    assert run_due_jobs(wired, worker_id="w", limit=5) == 1  # tried again, and the wait doubles
    assert _state(wired, item_id).next_due_at == retried_at + timedelta(minutes=10)
    with unit_of_work(wired.engine) as s:
        assert len(s.exec(select(SyncJob)).all()) == 3  # the first sync, the failure, one retry: no job per tick


def test_a_bug_in_the_sync_is_recorded_on_the_run_as_internal_error(wired, gateway, monkeypatch) -> None:
    import services.sync_engine as engine

    user_id = make_user(wired)
    item_id, _ = link_item(wired, gateway, user_id)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(engine, "fetch", broken)
    result = sync_item(wired, user_id, item_id, policy=FAST)
    assert (result.status, result.error_code) == ("failed", "INTERNAL_ERROR")
    assert "surprise" not in result.message and "logs" in result.message
    assert _runs(wired) == [("failed", "INTERNAL_ERROR")]
    assert _state(wired, item_id).lease_owner is None


class _Box:
    """Stands in for st.status / st.empty: records labels; ``write`` raises as Streamlit does after a click."""

    def __init__(self) -> None:
        self.labels: list[str] = []

    def __enter__(self) -> _Box:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, label: str, state: str) -> None:
        self.labels.append(label)

    def write(self, text: str) -> None:
        raise RerunException(None)


@contextlib.contextmanager
def _fake_streamlit(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Box]:
    box = _Box()
    monkeypatch.setattr(sync_view.st, "status", lambda *a, **k: box)
    monkeypatch.setattr(sync_view.st, "empty", lambda: box)
    yield box


def test_sync_now_finishes_the_sync_before_honouring_a_rerun(wired, gateway, demo_bank, monkeypatch) -> None:
    user_id = make_user(wired)
    item_id, pid = link_item(wired, gateway, user_id)
    view = next(i for i in list_items(wired, user_id) if i.id == item_id)
    with _fake_streamlit(monkeypatch), pytest.raises(RerunException):
        sync_view.sync_now(wired, user_id, view)
    assert ledger(wired, user_id) == truth(demo_bank, pid)
    assert _runs(wired) == [("ok", None)]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite serialises the two first syncs
def test_two_first_syncs_at_once_one_says_already_syncing(container, gateway, demo_bank, db_url) -> None:
    user_id = make_user(container)
    item_id, _ = link_item(container, gateway, user_id)
    out: dict[str, str] = {}

    def second() -> None:
        try:
            out["status"] = sync_item(container, user_id, item_id, gateway=gateway, policy=FAST).status
        except BaseException as exc:
            out["status"] = f"raised {type(exc).__name__}"

    with unit_of_work(container.engine, immediate=True) as s:  # the first sync's lease, not yet committed
        item = s.get(PlaidItem, item_id)
        assert item is not None and acquire(s, item, "otherhost:1:app:first", container.clock())
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(1.0)  # let the second reach its insert of the state row
    thread.join(30)
    assert out == {"status": "already_syncing"}


def test_a_429s_retry_after_is_waited_out_and_one_beyond_the_budget_fails_the_run(
    container, gateway, demo_bank
) -> None:
    """Security bar L8 over real HTTP: the demo bank's 429 says "Retry-After: 1"; waits are recorded, not slept."""
    user_id = make_user(container)
    item_id, pid = link_item(container, gateway, user_id)
    slept: list[float] = []
    patient = dataclasses.replace(FAST, sleep=slept.append)
    demo_bank.set_fault(pid, "rate_limit", times=1, endpoint="/transactions/sync")
    assert sync_item(container, user_id, item_id, gateway=gateway, policy=patient).status == "ok"
    assert slept == [1.0]  # FAST's jitter is a few milliseconds: the header set the wait
    assert ledger(container, user_id) == truth(demo_bank, pid)

    slept.clear()
    hurried = dataclasses.replace(patient, budget_seconds=0.5)
    demo_bank.set_fault(pid, "rate_limit", times=1, endpoint="/transactions/sync")
    result = sync_item(container, user_id, item_id, gateway=gateway, policy=hurried)
    assert (result.status, result.error_code, slept) == ("failed", "TRANSACTIONS_SYNC_LIMIT", [])
    assert "slow down" in result.message
    demo_bank.clear_faults(pid)
