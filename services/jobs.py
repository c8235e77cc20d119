"""Sync jobs as database rows: enqueue what is due, claim with a lease (SKIP LOCKED on PostgreSQL), run.

A worker killed mid-job leaves a lease that expires; the job is then claimed again. At most one open
job per item (``open_key`` is unique), and a scheduled job re-checks under the item lock that the item
is still due, so racing workers sync an item once per due time.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models import ItemSyncState, PlaidItem, SyncJob
from services.container import Container
from services.db import unit_of_work
from services.sync_engine import sync_item
from services.sync_types import LEASE_SECONDS, SIGN_IN_STALE_MINUTES, SyncResult

log = logging.getLogger("finsync.jobs")
MAX_ATTEMPTS = 5
EXPLICIT_REASONS = ("manual", "webhook")  # these try even an item that waits for the user to sign in


def _enqueue(session: Session, item_id: uuid.UUID, user_id: uuid.UUID, reason: str, now: datetime) -> bool:
    """Queue a job unless the item already has an open one; True if a job was added."""
    if session.exec(select(SyncJob.id).where(SyncJob.open_key == str(item_id))).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                SyncJob(
                    item_id=item_id, user_id=user_id, reason=reason, open_key=str(item_id), due_at=now, created_at=now
                )
            )
    except IntegrityError:  # another process queued it first
        return False
    return True


def enqueue_sync(c: Container, item_id: uuid.UUID, reason: str = "manual") -> bool:
    """Queue a sync of one item now (webhooks, "Sync now" in the background)."""
    with unit_of_work(c.engine, immediate=True) as session:
        item = session.get(PlaidItem, item_id)
        return item is not None and _enqueue(session, item.id, item.user_id, reason, c.clock())


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
    return added


def enqueue_due(c: Container) -> int:
    """Queue every item that is due by schedule, or that a verified webhook asked to sync."""
    now = c.clock()
    added = 0
    with unit_of_work(c.engine, immediate=True) as session:
        due = session.exec(
            select(PlaidItem.id, PlaidItem.user_id)
            .join(ItemSyncState, col(ItemSyncState.item_id) == col(PlaidItem.id), isouter=True)
            .where(or_(col(ItemSyncState.item_id).is_(None), col(ItemSyncState.next_due_at) <= now))
        ).all()
        for item_id, user_id in due:
            added += _enqueue(session, item_id, user_id, "schedule", now)
        asked = session.exec(select(PlaidItem).where(col(PlaidItem.sync_requested_at).is_not(None))).all()
        for item in asked:
            added += _enqueue(session, item.id, item.user_id, "webhook", now)
            item.sync_requested_at = None
            session.add(item)
    return added


def claim(c: Container, worker_id: str, limit: int) -> list[SyncJob]:
    """Lease up to ``limit`` jobs that are due, or whose worker's lease expired."""
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
                lease_owner=None,
                lease_expires_at=None,
                finished_at=c.clock(),
                outcome=outcome[:200],
            )
        )


def run_job(c: Container, job: SyncJob, worker_id: str) -> SyncResult | None:
    """Run one claimed job; None when it was no longer needed or gave up."""
    if job.attempts > MAX_ATTEMPTS:
        _finish(c, job, worker_id, "failed", f"gave up after {MAX_ATTEMPTS} attempts")
        return None
    try:
        result = sync_item(
            c,
            job.user_id,
            job.item_id,
            explicit=job.reason in EXPLICIT_REASONS,
            trigger=job.reason,
            worker=worker_id,
            if_due=job.reason == "schedule",
        )
    except Exception as exc:  # one broken item must not stop the worker
        log.exception("sync job %s failed", job.id)
        _finish(c, job, worker_id, "failed", type(exc).__name__)
        return None
    _finish(c, job, worker_id, "done" if result.ok else "failed", result.summary())
    return result


def run_due_jobs(c: Container, *, worker_id: str, limit: int = 10) -> int:
    """Queue what is due, then claim and run up to ``limit`` jobs; return how many ran."""
    enqueue_due(c)
    jobs = claim(c, worker_id, limit)
    for job in jobs:
        run_job(c, job, worker_id)
    return len(jobs)
