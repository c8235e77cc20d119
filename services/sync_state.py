"""Per-item sync state: the lease that allows one sync at a time, run records, and how a run ends."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from models import ItemSyncState, PlaidItem, SyncJob, SyncRun
from services.db import unit_of_work
from services.sync_store import Sql, drop_staging
from services.sync_types import LEASE_SECONDS, explain

HOST = socket.gethostname()
FIRST_BACKOFF = timedelta(minutes=5)  # an unexpected error retries after 5, 10, 20... minutes, up to the interval


def worker_name(role: str = "app") -> str:
    """``host:pid:role:random`` so a lease left by a dead process on this host can be recognised."""
    return f"{HOST}:{os.getpid()}:{role}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str) -> bool:
    """True when the lease belongs to a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def ensure_state(session: Session, item: PlaidItem) -> ItemSyncState:
    """The item's sync state row, created on first use."""
    state = session.get(ItemSyncState, item.id)
    if state is not None:
        return state
    # Two first syncs at once both find no row: ON CONFLICT makes the loser wait for the winner's row
    # (PostgreSQL) and then find its lease taken ("already syncing"), instead of a unique violation.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    row = ItemSyncState(item_id=item.id, user_id=item.user_id).model_dump()
    session.execute(dialect.insert(ItemSyncState).values(**row).on_conflict_do_nothing(index_elements=["item_id"]))
    state = session.get(ItemSyncState, item.id)
    assert state is not None
    return state


def acquire(session: Session, item: PlaidItem, owner: str, now: datetime) -> bool:
    """Take the item's lease if it is free, expired, or held by a dead process on this host."""
    ensure_state(session, item)
    expires = now + timedelta(seconds=LEASE_SECONDS)
    free = (col(ItemSyncState.lease_owner).is_(None)) | (col(ItemSyncState.lease_expires_at) < now)
    stmt = update(ItemSyncState).where(col(ItemSyncState.item_id) == item.id, free)
    if session.execute(stmt.values(lease_owner=owner, lease_expires_at=expires)).rowcount == 1:  # type: ignore[attr-defined]
        session.expire_all()  # read the state as it is now that we hold it, not as first loaded
        return True
    held = session.execute(select(ItemSyncState.lease_owner).where(ItemSyncState.item_id == item.id)).scalar()
    if held and _owner_dead(held):
        stmt = update(ItemSyncState).where(
            col(ItemSyncState.item_id) == item.id, col(ItemSyncState.lease_owner) == held
        )
        taken = session.execute(stmt.values(lease_owner=owner, lease_expires_at=expires)).rowcount == 1  # type: ignore[attr-defined]
        session.expire_all()
        return bool(taken)
    return False


def renew(session: Session, item_id: uuid.UUID, owner: str, now: datetime) -> bool:
    """Push the lease expiry forward while a long sync is still fetching; False if the lease was lost.

    The job a worker runs this sync for is renewed with it: a sync longer than a lease is not taken for a dead
    worker's (another worker would claim its job, and the bot's health would say a worker died)."""
    expires = now + timedelta(seconds=LEASE_SECONDS)
    stmt = update(ItemSyncState).where(col(ItemSyncState.item_id) == item_id, col(ItemSyncState.lease_owner) == owner)
    result = session.execute(stmt.values(lease_expires_at=expires))
    job = update(SyncJob).where(
        col(SyncJob.item_id) == item_id, col(SyncJob.lease_owner) == owner, col(SyncJob.status) == "running"
    )
    session.execute(job.values(lease_expires_at=expires))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def start_run(session: Session, item: PlaidItem, owner: str, trigger: str, now: datetime) -> SyncRun:
    """Record a new run; runs of this item still marked running belonged to a dead holder: close them."""
    stale = session.exec(select(SyncRun).where(SyncRun.item_id == item.id, SyncRun.status == "running")).all()
    what, _ = explain("INTERRUPTED")
    for old in stale:
        old.status, old.error_code, old.message, old.finished_at = "failed", "INTERRUPTED", what, now
        session.add(old)
    state = session.get(ItemSyncState, item.id) if stale else None
    if state is not None:  # its process was killed (OOM, SIGKILL): a failure like any other, so the item backs off
        state.state, state.error_code, state.message = "failed", "INTERRUPTED", what
        state.consecutive_failures += 1
        session.add(state)
    orphans: Sequence[uuid.UUID] = [r.id for r in stale]
    drop_staging(Sql(session.connection()), orphans)
    run = SyncRun(item_id=item.id, user_id=item.user_id, trigger=trigger, worker=owner, started_at=now)
    session.add(run)
    session.flush()
    return run


def failure_backoff(failures: int, interval: timedelta) -> timedelta:
    """How long a failing item waits before it is tried again: 5, 10, 20... minutes, up to the sync interval."""
    return min(interval, FIRST_BACKOFF * (1 << min(failures, 16)))


def give_up(session: Session, item_id: uuid.UUID, now: datetime, interval: timedelta, message: str) -> None:
    """Mark an item whose runs keep dying as failed and not due again before its backoff (unless a sync holds it)."""
    state = session.get(ItemSyncState, item_id, with_for_update=True)
    if state is None or (state.lease_owner is not None and (state.lease_expires_at or now) > now):
        return
    state.state, state.error_code, state.message, state.last_attempt_at = "failed", "INTERRUPTED", message, now
    state.consecutive_failures += 1
    state.next_due_at = max(state.next_due_at or now, now + failure_backoff(state.consecutive_failures, interval))
    session.add(state)


def finish_unsuccessful(
    engine: Engine,
    *,
    item_id: uuid.UUID,
    run_id: uuid.UUID,
    owner: str,
    now: datetime,
    status: str,
    error_code: str | None,
    message: str,
    next_due_at: datetime | None,
    counts: tuple[int, int, int],
    request_ids: Sequence[str],
    alert: Callable[[Session, str], list[uuid.UUID]] | None = None,
    item_status: str | None = None,
) -> list[uuid.UUID] | None:
    """Close a run that did not apply anything.

    The item's own status becomes ``login_required`` when the run found the login expired, or ``item_status`` when
    given (``permission_revoked``: the bank's answer says access was withdrawn; ``error``: Plaid no longer serves it),
    so its card says what to do.

    When this run put the connection in that state (news to the user, unless an ITEM webhook said so first; none
    comes when Plaid cannot reach this server), ``alert`` queues the email for that status in the same transaction;
    the ids of what it queued are returned, for sending once committed. None: the run's apply had committed after
    all (its answer was lost), and nothing was changed.
    """
    with unit_of_work(engine, immediate=True) as session:
        run = session.get(SyncRun, run_id, with_for_update=True)  # waits for a COMMIT still under way
        if run is not None and run.status == "ok":
            return None  # the run and the item say so already
        if run is not None:
            run.status, run.error_code, run.message, run.finished_at = status, error_code, message, now
            run.pages, run.restarts, run.retries = counts
            run.request_ids = ",".join(r for r in request_ids if r)
            session.add(run)
            drop_staging(Sql(session.connection()), [run_id])
        state = session.get(ItemSyncState, item_id)
        newly = False
        # Only the lease holder speaks for the item: a run whose lease expired and was taken over closes its
        # own run record, but the item's state, due time and failure count belong to the newer holder.
        holder = state is not None and state.lease_owner == owner
        if state is not None and holder:
            state.state = status
            state.error_code = error_code
            state.message = message
            state.last_attempt_at = now
            state.next_due_at = next_due_at
            if status == "failed":
                state.consecutive_failures += 1
            if status == "login_required" and state.login_required_since is None:
                state.login_required_since = now
            state.lease_owner, state.lease_expires_at = None, None
            session.add(state)
        mark = "login_required" if status == "login_required" else item_status
        if mark is not None and holder:
            item = session.get(PlaidItem, item_id)
            began = run.started_at if run is not None else now
            # A repair that landed while this run was failing is newer news: keep it.
            if item is not None and item.updated_at <= began:
                # news only if the connection was fine: an ITEM webhook that said so first has told the user
                newly = item.status != mark
                item.status, item.status_code, item.updated_at = mark, error_code, now
                item.status_since = began  # an ITEM webhook signed before this run is older news
                session.add(item)
        return alert(session, mark) if newly and mark is not None and alert is not None else []


def close_interrupted(
    engine: Engine, *, item_id: uuid.UUID, run_id: uuid.UUID, owner: str, now: datetime, retry_at: datetime
) -> None:
    """Close a run cut short by an exception that is not ours to handle (a Streamlit rerun, Ctrl-C), and free the item.

    The run is marked failed (INTERRUPTED) only if it is still running, and the item is made due by
    ``retry_at`` so the scheduler finishes the work, even for an item that never completed a first sync.
    """
    with unit_of_work(engine, immediate=True) as session:
        run = session.get(SyncRun, run_id)
        if run is not None and run.status == "running":
            what, _ = explain("INTERRUPTED")
            run.status, run.error_code, run.message, run.finished_at = "failed", "INTERRUPTED", what, now
            session.add(run)
            drop_staging(Sql(session.connection()), [run_id])
        state = session.get(ItemSyncState, item_id)
        if state is not None and state.lease_owner == owner:
            state.lease_owner, state.lease_expires_at, state.last_attempt_at = None, None, now
            if state.next_due_at is None or state.next_due_at > retry_at:
                state.next_due_at = retry_at
            session.add(state)


def release(engine: Engine, item_id: uuid.UUID, owner: str) -> None:
    """Give the lease back (used when a run ends by an unexpected error)."""
    with unit_of_work(engine, immediate=True) as session:
        stmt = update(ItemSyncState).where(
            col(ItemSyncState.item_id) == item_id, col(ItemSyncState.lease_owner) == owner
        )
        session.execute(stmt.values(lease_owner=None, lease_expires_at=None))
