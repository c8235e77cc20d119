"""Retention (security bar J6): old sign-in, webhook, Plaid-call, link and sync records are deleted.

Each table is purged in batches of ``BATCH`` rows, one short transaction each, so SQLite's write lock
is never held for long; outbox mail (no SMTP) goes after ``OUTBOX_KEEP``. Kept for good: audit events (append-only by triggers), transactions, their
history, pending edits, and Plaid revocations not yet confirmed (the admin page lists them; a confirmed one
goes after ``REVOCATION_KEEP``). The scheduler and the worker
purge at most once a day per process (``DailyPurge``); ``python -m services.cli db purge`` does it now.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, delete, exists, inspect, or_, select, tuple_
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel, col

from models import (
    AuthSession,
    LinkSession,
    OneTimeToken,
    PlaidApiEvent,
    PlaidRevocation,
    SyncJob,
    SyncRun,
    SyncStaged,
    ThrottleCounter,
    WebhookDelivery,
)
from services import throttle
from services.account import RESET_IP_WINDOW
from services.container import Container
from services.db import unit_of_work

log = logging.getLogger("finsync.retention")

SESSION_KEEP = timedelta(days=30)  # ended sessions stay a month, to answer "was that sign-in me?"
TOKEN_KEEP = timedelta(days=7)  # a used or expired link opens nothing; a week to explain "my link failed"
THROTTLE_KEEP = timedelta(days=1)  # a counter that never locked: a quiet day after its last count ran out
LOCK_MEMORY = timedelta(days=7)  # one that locked keeps its back-off level (doubling) for a quiet week
WEBHOOK_KEEP = timedelta(days=90)  # a quarter to debug deliveries; replay checks need 5 min (webhook_verify)
PLAID_CALL_KEEP = timedelta(days=90)  # a quarter of request ids to give Plaid support
LINK_KEEP = timedelta(days=7)  # a finished link session is never resumed; a week to debug a failed link
REVOCATION_KEEP = timedelta(days=90)  # a confirmed revocation: a quarter to answer "is my bank really unlinked?"
OUTBOX_KEEP = timedelta(days=30)  # mail written to the outbox folder (no SMTP): addresses and links, a month
JOB_KEEP = timedelta(days=14)  # finished sync jobs: two weeks to see what the queue did (runs keep the history)
SYNC_RUN_KEEP = timedelta(days=400)  # a year of sync history plus a month; each linked bank's latest run stays
PURGE_EVERY = timedelta(hours=24)  # the scheduler and the worker purge once a day
RETRY_FAILED = timedelta(hours=1)  # after a failed purge (database away), try again sooner than a day
BATCH = 500  # rows per transaction: milliseconds of SQLite's write lock, so sign-ins and syncs never wait long
# A counter still counts until its latest time leaves the longest window any caller of throttle uses.
LONGEST_WINDOW = max(throttle.ACCOUNT_WINDOW, throttle.IP_WINDOW, RESET_IP_WINDOW)


def _rules(c: Container, now: datetime) -> list[tuple[str, type[SQLModel], ColumnElement[bool]]]:
    """Per table: which rows are past retention at ``now`` (sync runs before their staging rows)."""
    idle = timedelta(minutes=c.settings.session_idle_minutes)
    ended, used = now - SESSION_KEEP, now - TOKEN_KEEP
    # A session ends at revocation, at its stored absolute expiry, or idle after last_seen_at (sessions._live).
    session_over = or_(
        col(AuthSession.revoked_at) < ended,
        col(AuthSession.expires_at) < ended,
        col(AuthSession.last_seen_at) < ended - idle,
    )

    def quiet_since(quiet: datetime) -> ColumnElement[bool]:
        return (col(ThrottleCounter.last_at) < quiet - LONGEST_WINDOW) & or_(
            col(ThrottleCounter.locked_until).is_(None), col(ThrottleCounter.locked_until) < quiet
        )

    counter_over = or_(
        (col(ThrottleCounter.lock_level) == 0) & quiet_since(now - THROTTLE_KEEP),
        (col(ThrottleCounter.lock_level) > 0) & quiet_since(now - LOCK_MEMORY),
    )
    newer = aliased(SyncRun)
    superseded = exists().where(
        col(newer.item_id) == col(SyncRun.item_id), col(newer.started_at) > col(SyncRun.started_at)
    ) | col(SyncRun.item_id).is_(None)  # a removed bank's (history kept) all go in time: no "last synced" to tell
    running = select(col(SyncRun.id)).where(col(SyncRun.status) == "running")
    finished = now - LINK_KEEP
    return [
        ("auth_sessions", AuthSession, session_over),
        ("one_time_tokens", OneTimeToken, or_(col(OneTimeToken.used_at) < used, col(OneTimeToken.expires_at) < used)),
        ("throttle_counters", ThrottleCounter, counter_over),
        ("webhook_deliveries", WebhookDelivery, col(WebhookDelivery.received_at) < now - WEBHOOK_KEEP),
        ("plaid_api_events", PlaidApiEvent, col(PlaidApiEvent.at) < now - PLAID_CALL_KEEP),
        (
            "link_sessions",
            LinkSession,
            or_(col(LinkSession.completed_at) < finished, col(LinkSession.expires_at) < finished),
        ),
        (
            "sync_runs",
            SyncRun,
            (col(SyncRun.started_at) < now - SYNC_RUN_KEEP) & (col(SyncRun.status) != "running") & superseded,
        ),
        ("sync_staging", SyncStaged, col(SyncStaged.run_id).not_in(running)),
        ("sync_jobs", SyncJob, col(SyncJob.finished_at) < now - JOB_KEEP),  # queued and running ones have none
        (
            "plaid_revocations",  # given-up ones stay: Plaid may still hold that connection, an admin must act
            PlaidRevocation,
            (col(PlaidRevocation.outcome) == "revoked") & (col(PlaidRevocation.finished_at) < now - REVOCATION_KEEP),
        ),
    ]


def _purge_table(c: Container, model: type[SQLModel], where: ColumnElement[bool]) -> int:
    """Delete the rows matching ``where``, ``BATCH`` at a time, each batch its own transaction."""
    keys = inspect(model).primary_key
    total = 0
    while True:
        with unit_of_work(c.engine, immediate=True) as session:
            found = session.execute(select(*keys).where(where).limit(BATCH)).all()
            if not found:
                return total
            rows = [tuple(k) for k in found]
            match = keys[0].in_([r[0] for r in rows]) if len(keys) == 1 else tuple_(*keys).in_(rows)
            deleted = session.execute(delete(model).where(match).execution_options(synchronize_session=False))
            total += int(deleted.rowcount or 0)  # type: ignore[attr-defined]
        if len(found) < BATCH:
            return total


def purge(c: Container) -> dict[str, int]:
    """Delete every row past its retention, and old outbox mail; returns how many each table (and "outbox") lost."""
    now = c.clock()
    counts = {table: _purge_table(c, model, where) for table, model, where in _rules(c, now)}
    counts["outbox"] = _purge_outbox(c.settings.outbox_dir, now - OUTBOX_KEEP)
    if any(counts.values()):
        log.info("retention purge: %s", ", ".join(f"{t}={n}" for t, n in counts.items() if n))
    return counts


def _purge_outbox(folder: Path, before: datetime) -> int:
    """Delete the outbox's ``.eml`` files written before ``before`` (their links died long ago), and the ``.part`` of a
    write cut short then; return how many."""
    gone = 0
    for path in [*folder.glob("*.eml"), *folder.glob("*.part")] if folder.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):  # an admin (or another process's purge) was faster
            if datetime.fromtimestamp(path.stat().st_mtime, UTC) < before:
                path.unlink()
                gone += 1
    return gone


def purge_quietly(c: Container) -> dict[str, int] | None:
    """``purge`` for the scheduler and the worker: a failure is logged, never raised (None then)."""
    try:
        return purge(c)
    except Exception:  # the sync pass must go on; whatever is left is purged next time
        log.exception("retention purge failed")
        return None


class DailyPurge:
    """Runs ``purge_quietly`` when due: at most once per ``PURGE_EVERY`` (an hour after a failure)."""

    def __init__(self) -> None:
        self.next_at: datetime | None = None

    def __call__(self, c: Container) -> dict[str, int] | None:
        """The counts of a purge that ran now, or None when it was not due (or failed)."""
        now = c.clock()
        if self.next_at is not None and now < self.next_at:
            return None
        counts = purge_quietly(c)
        self.next_at = now + (PURGE_EVERY if counts is not None else RETRY_FAILED)
        return counts
