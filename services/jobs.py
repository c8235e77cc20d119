"""Sync jobs as database rows: enqueue what is due, claim with a lease (SKIP LOCKED on PostgreSQL), run.

A worker killed mid-job leaves a lease that expires; the job is then claimed again. Jobs are claimed one
at a time and a worker checks it still owns a job before running it, so a job whose lease ran out is run
by one worker only. At most one open job per item (``open_key`` is unique), and a scheduled job re-checks
under the item lock that the item is still due, so racing workers sync an item once per due time.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from models import ItemSyncState, PlaidItem, SyncJob
from services import wakeup
from services.container import Container
from services.db import unit_of_work
from services.job_rows import EXPLICIT_REASONS, queued_job
from services.job_rows import enqueue_row as _enqueue
from services.sync_engine import sync_item
from services.sync_state import give_up
from services.sync_types import LEASE_SECONDS, SIGN_IN_STALE_MINUTES, SyncResult, explain

log = logging.getLogger("finsync.jobs")
MAX_ATTEMPTS = 5
# A storm of SYNC_UPDATES_AVAILABLE webhooks syncs an item at most WEBHOOK_BURST times in any WEBHOOK_WINDOW (the
# SECURITY_BAR faults' per-item budget, one per 5 minutes on average, with room for a short burst such as a new
# bank's first updates); requests beyond it wait, coalesced into one job, none is dropped.
WEBHOOK_BURST = 3
WEBHOOK_WINDOW = timedelta(minutes=15)


def _upgrade(session: Session, item_id: uuid.UUID, reason: str, due: datetime) -> bool:
    """Make the item's queued job run as explicit ``reason`` (past the due check and sign-in pause), at ``due`` at the
    latest (one waiting for a busy item's lease runs once it is free); False if none."""
    job = queued_job(session, item_id)
    if job is None:
        return False
    if job.reason not in EXPLICIT_REASONS:
        job.reason = reason
    job.due_at = min(job.due_at, due)
    session.add(job)
    return True


def enqueue_sync(c: Container, item_id: uuid.UUID, reason: str = "manual") -> bool:
    """Queue a sync of one item now (webhooks, "Sync now" in the background)."""
    with unit_of_work(c.engine, immediate=True) as session:
        item = session.get(PlaidItem, item_id)
        added = item is not None and _enqueue(session, item.id, item.user_id, reason, c.clock())
    if added:
        wakeup.nudge()
    return added


def request_sync_on_sign_in(c: Container, user_id: uuid.UUID) -> int:
    """Queue the user's connections whose last successful sync is older than an hour; return how many."""
    now = c.clock()
    stale = now - timedelta(minutes=SIGN_IN_STALE_MINUTES)
    added = 0
    with unit_of_work(c.engine, immediate=True) as session:
        rows = session.exec(
            select(PlaidItem.id, ItemSyncState.last_success_at)
            .join(ItemSyncState, col(ItemSyncState.item_id) == col(PlaidItem.id), isouter=True)
            .where(PlaidItem.user_id == user_id)
        ).all()
        for item_id, last in rows:
            if last is None or last < stale:
                added += _enqueue(session, item_id, user_id, "sign_in", now)
    if added:
        wakeup.nudge()
    return added


def enqueue_due(c: Container) -> int:
    """Queue every item that is due by schedule, or that a verified webhook asked to sync."""
    now = c.clock()
    added = 0
    with unit_of_work(c.engine, immediate=True) as session:
        due = session.exec(
            select(PlaidItem.id, PlaidItem.user_id, ItemSyncState.last_success_at)
            .join(ItemSyncState, col(ItemSyncState.item_id) == col(PlaidItem.id), isouter=True)
            .where(
                or_(
                    col(ItemSyncState.item_id).is_(None),
                    col(ItemSyncState.next_due_at).is_(None),  # a first sync that never finished: due now
                    col(ItemSyncState.next_due_at) <= now,
                ),
                # not while a sync holds the item (its end sets the next due time); a dead holder's lease expires
                or_(col(ItemSyncState.lease_owner).is_(None), col(ItemSyncState.lease_expires_at) < now),
            )
        ).all()
        for item_id, user_id, last_success in due:  # a bank that never synced yet is on its first sync, not a schedule
            added += _enqueue(session, item_id, user_id, "schedule" if last_success else "first", now)
        asked = session.exec(
            select(PlaidItem, ItemSyncState)
            .join(ItemSyncState, col(ItemSyncState.item_id) == col(PlaidItem.id), isouter=True)
            .where(col(PlaidItem.sync_requested_at).is_not(None))
        ).all()
        for item, state in asked:
            if state is not None and state.lease_expires_at is not None and state.lease_expires_at >= now:
                continue  # "Sync now" or the CLI holds it and may have read the bank before the request: keep it
            when = _webhook_due(session, item.id, now)
            queued = _enqueue(session, item.id, item.user_id, "webhook", now, when)
            added += queued
            # A job already running may have read the bank before this request: keep it for the next tick.
            if queued or _upgrade(session, item.id, "webhook", when):
                item.sync_requested_at = None
                session.add(item)
    return added


def _webhook_due(session: Session, item_id: uuid.UUID, now: datetime) -> datetime:
    """Now, or when the oldest of the item's last ``WEBHOOK_BURST`` webhook syncs leaves ``WEBHOOK_WINDOW`` (failed ones
    count: a bank that is down or needs a sign-in is not asked again with every webhook it sends)."""
    recent = session.exec(
        select(SyncJob.finished_at)
        .where(
            col(SyncJob.item_id) == item_id,
            col(SyncJob.reason) == "webhook",
            col(SyncJob.status).in_(("done", "failed")),
            col(SyncJob.finished_at) > now - WEBHOOK_WINDOW,
        )
        .order_by(col(SyncJob.finished_at).desc())
        .limit(WEBHOOK_BURST)
    ).all()
    if len(recent) < WEBHOOK_BURST:
        return now
    return max(now, min(t for t in recent if t is not None) + WEBHOOK_WINDOW)


def _wait_for_holder(c: Container, job: SyncJob, worker_id: str) -> None:
    """Queue a job that found its item held by another sync again, for when that sync's lease ends: a live holder
    does the work (a scheduled job then finds the item not due), a dead one's lease runs out and this job does it.
    A webhook's request is also put back, so the job runs as soon as the holder lets go (it may have read the bank
    before the webhook). The attempt that ran nothing is not counted."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        held = session.exec(select(ItemSyncState.lease_expires_at).where(ItemSyncState.item_id == job.item_id)).first()
        stmt = update(SyncJob).where(
            col(SyncJob.id) == job.id, col(SyncJob.lease_owner) == worker_id, col(SyncJob.attempts) == job.attempts
        )
        waiting = stmt.values(
            status="queued",
            due_at=max(now, held or now) + timedelta(seconds=1),
            lease_owner=None,
            lease_expires_at=None,
            attempts=job.attempts - 1,
            outcome="waiting for the sync that holds this bank",
        )
        if session.execute(waiting).rowcount != 1 or job.reason != "webhook":  # type: ignore[attr-defined]
            return
        item = session.get(PlaidItem, job.item_id)
        if item is not None and item.sync_requested_at is None:
            item.sync_requested_at = job.created_at
            session.add(item)


def claim(c: Container, worker_id: str, limit: int = 1) -> list[SyncJob]:
    """Lease up to ``limit`` jobs that are due, or whose worker's lease expired (run them before the lease ends)."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        ready = (col(SyncJob.status) == "queued") & (col(SyncJob.due_at) <= now)
        orphaned = (col(SyncJob.status) == "running") & (col(SyncJob.lease_expires_at) < now)
        jobs = session.exec(
            select(SyncJob)
            .where(ready | orphaned)
            .order_by(col(SyncJob.due_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        for job in jobs:
            job.status, job.lease_owner = "running", worker_id
            job.lease_expires_at, job.attempts = now + timedelta(seconds=LEASE_SECONDS), job.attempts + 1
            session.add(job)
        return list(jobs)


def _finish(c: Container, job: SyncJob, worker_id: str, status: str, outcome: str) -> None:
    with unit_of_work(c.engine, immediate=True) as session:
        stmt = update(SyncJob).where(col(SyncJob.id) == job.id, col(SyncJob.lease_owner) == worker_id)
        session.execute(
            stmt.values(
                status=status,
                open_key=None,
                lease_expires_at=None,  # lease_owner stays: which worker ran it (the admin's Sync bot tab)
                finished_at=c.clock(),
                outcome=outcome[:200],
            )
        )


def _still_ours(c: Container, job: SyncJob, worker_id: str) -> bool:
    """Renew the job's lease if this worker still holds it; False when it expired and another worker took it."""
    now = c.clock()
    with unit_of_work(c.engine, immediate=True) as session:
        stmt = update(SyncJob).where(
            col(SyncJob.id) == job.id,
            col(SyncJob.status) == "running",
            col(SyncJob.lease_owner) == worker_id,
            col(SyncJob.attempts) == job.attempts,  # a re-claim by this same worker id is a different attempt
        )
        renewed = session.execute(stmt.values(lease_expires_at=now + timedelta(seconds=LEASE_SECONDS)))
        return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def run_job(c: Container, job: SyncJob, worker_id: str) -> SyncResult | None:
    """Run one claimed job; None when it is no longer this worker's (another one runs it)."""
    if not _still_ours(c, job, worker_id):
        log.warning("sync job %s: lease lost to another worker before it ran; not running it", job.id)
        return None
    if job.attempts > MAX_ATTEMPTS:
        outcome = f"gave up after {MAX_ATTEMPTS} attempts (each ended without finishing: a crash or a kill)"
        _finish(c, job, worker_id, "failed", outcome)
        with unit_of_work(c.engine, immediate=True) as session:  # not queued again as soon as its lease runs out
            what, _ = explain("INTERRUPTED")
            give_up(session, job.item_id, c.clock(), timedelta(hours=c.settings.sync_interval_hours), what)
        return SyncResult(job.item_id, "failed", message=outcome)
    try:
        result = sync_item(
            c,
            job.user_id,
            job.item_id,
            explicit=job.reason in EXPLICIT_REASONS,
            trigger=job.reason,
            worker=worker_id,
            if_due=job.reason in ("schedule", "first"),
        )
    except Exception as exc:  # one broken item must not stop the worker
        log.exception("sync job %s failed", job.id)
        _finish(c, job, worker_id, "failed", type(exc).__name__)
        return SyncResult(job.item_id, "failed", message=f"unexpected {type(exc).__name__}; see the server log")
    if result.status == "already_syncing":  # "Sync now", the CLI, or a worker that died with the item's lease
        _wait_for_holder(c, job, worker_id)
    else:
        _finish(c, job, worker_id, "done" if result.ok else "failed", result.summary())
    return result


def run_due_jobs(
    c: Container,
    *,
    worker_id: str,
    limit: int = 10,
    on_result: Callable[[SyncResult], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Queue what is due, then claim and run up to ``limit`` jobs one at a time; return how many ran.

    ``on_result`` hears how each job that ran here ended (the worker's command line prints and counts them).
    Once ``stop`` is set (the process is shutting down), no further job is claimed: the one in hand finishes.
    """
    enqueue_due(c)
    ran = 0
    while ran < limit and not (stop is not None and stop.is_set()):
        jobs = claim(c, worker_id)  # one at a time: a job waiting behind a batch would outlive its lease
        if not jobs:
            break
        result = run_job(c, jobs[0], worker_id)
        if result is not None and on_result is not None:
            on_result(result)
        ran += 1
    return ran
