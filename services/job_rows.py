"""Sync job rows written inside a caller's unit of work (no sync code here: banking imports it).

``services.jobs`` claims and runs them; this module only adds or brings forward the open job of an item.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models import SyncJob

EXPLICIT_REASONS = ("manual", "webhook", "repair")  # these try even an item that waits for the user to sign in


def enqueue_row(
    session: Session, item_id: uuid.UUID, user_id: uuid.UUID, reason: str, now: datetime, due_at: datetime | None = None
) -> bool:
    """Queue a job (due at ``due_at``, default now) unless the item already has an open one; True if one was added."""
    if session.exec(select(SyncJob.id).where(SyncJob.open_key == str(item_id))).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                SyncJob(
                    item_id=item_id,
                    user_id=user_id,
                    reason=reason,
                    open_key=str(item_id),
                    due_at=due_at or now,
                    created_at=now,
                )
            )
    except IntegrityError:  # another process queued it first
        return False
    return True


def queued_job(session: Session, item_id: uuid.UUID) -> SyncJob | None:
    """The item's job waiting to run, locked for this transaction (one a worker is claiming meanwhile: None)."""
    queued = select(SyncJob).where(col(SyncJob.open_key) == str(item_id), col(SyncJob.status) == "queued")
    return session.exec(queued.with_for_update()).first()


def sync_soon(session: Session, item_id: uuid.UUID, user_id: uuid.UUID, reason: str, now: datetime) -> bool:
    """Queue the item's sync to run now as explicit ``reason`` (the user just repaired it), in the caller's unit of
    work: a queued job held back (a webhook's, past its budget) is brought forward. False when a job is running
    already (it may have read the bank before: the caller asks again for after it)."""
    if enqueue_row(session, item_id, user_id, reason, now):
        return True
    job = queued_job(session, item_id)
    if job is None:
        return False
    job.due_at, job.reason = min(job.due_at, now), reason
    session.add(job)
    return True
