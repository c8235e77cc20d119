"""Is the sync bot keeping up? What the job queue and the runs say, for the operator (the admin page's "Sync bot").

Everything here is read from the database, so it tells the same story whichever process asks: due jobs nobody
claims mean no scheduler or worker is running against this database; banks with no good sync for twice the
interval mean the bot runs but cannot sync them. Counts, times and worker names only: no user's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from models import ItemSyncState, PlaidItem, SyncJob
from services.container import Container

DAY = timedelta(days=1)
LATE_AT_LEAST = timedelta(minutes=5)  # a due job waiting longer than this (or two ticks) is late


@dataclass(frozen=True)
class RunningJob:
    worker: str  # host:pid:role:random, as the worker named itself
    due_at: datetime
    lease_expires_at: datetime | None
    stalled: bool  # the lease ran out: its worker died or hangs; the next claim retries it


@dataclass(frozen=True)
class BotHealth:
    """The sync bot's state at ``now``."""

    now: datetime
    due: int  # queued jobs whose time has come
    oldest_due_at: datetime | None
    later: int  # queued jobs not due yet
    running: tuple[RunningJob, ...]
    done_24h: int
    failed_24h: int
    last_finished_at: datetime | None
    workers_24h: tuple[str, ...]  # the workers that finished a job in the last day
    banks: int
    need_owner: int  # waiting for their owner (Repair, or remove and link again): the bot does not retry them
    behind: int  # banks the bot should sync but has not synced well within behind_after
    preparing: int  # connected banks never synced well whose bank is still preparing the first data (NOT_READY)
    unsynced: int  # connected banks, not behind, never synced well for another reason (the first sync to come)
    late_after: timedelta  # a due job waiting longer is late: max(5 minutes, two ticks)
    behind_after: timedelta  # twice the sync interval

    @property
    def stalled(self) -> int:
        return sum(r.stalled for r in self.running)

    @property
    def waiting_for(self) -> timedelta | None:
        """How long the oldest due job has waited, when that is longer than it should (else None)."""
        if self.oldest_due_at is None or self.now - self.oldest_due_at <= self.late_after:
            return None
        return self.now - self.oldest_due_at

    @property
    def keeping_up(self) -> bool:
        """No due sync waits too long, no worker died mid-sync, no bank the bot should sync falls behind."""
        return self.waiting_for is None and not self.stalled and not self.behind


def bot_health(session: Session, now: datetime, *, interval: timedelta, tick: timedelta) -> BotHealth:
    """The queue and the last day of the bot's work; banks behind = no good sync within ``2 * interval``."""
    behind_after = 2 * interval
    queued = session.exec(
        select(col(SyncJob.due_at) <= now, func.count(), func.min(SyncJob.due_at))
        .where(col(SyncJob.status) == "queued")
        .group_by(col(SyncJob.due_at) <= now)
    ).all()
    due = next(((n, oldest) for is_due, n, oldest in queued if is_due), (0, None))
    later = sum(n for is_due, n, _ in queued if not is_due)
    running = tuple(
        RunningJob(
            job.lease_owner or "",
            job.due_at,
            job.lease_expires_at,
            stalled=job.lease_expires_at is not None and job.lease_expires_at < now,
        )
        for job in session.exec(select(SyncJob).where(col(SyncJob.status) == "running").order_by(col(SyncJob.due_at)))
    )
    finished = session.exec(
        select(SyncJob.status, func.count(), func.max(SyncJob.finished_at))
        .where(col(SyncJob.finished_at) >= now - DAY)
        .group_by(col(SyncJob.status))
    ).all()
    counts = {status: n for status, n, _ in finished}
    workers = session.exec(select(SyncJob.lease_owner).where(col(SyncJob.finished_at) >= now - DAY).distinct()).all()
    items = session.exec(
        select(PlaidItem.status, PlaidItem.created_at, ItemSyncState.last_success_at, ItemSyncState.state).outerjoin(
            ItemSyncState, col(ItemSyncState.item_id) == col(PlaidItem.id)
        )
    ).all()
    return BotHealth(
        now=now,
        due=due[0],
        oldest_due_at=due[1],
        later=later,
        running=running,
        done_24h=counts.get("done", 0),
        failed_24h=counts.get("failed", 0),
        last_finished_at=max((at for _, _, at in finished if at is not None), default=None),
        workers_24h=tuple(sorted(w for w in workers if w)),
        banks=len(items),
        need_owner=sum(status != "ok" for status, _, _, _ in items),
        # a bank never synced well counts from when it was linked: one linked a moment ago is not behind yet
        behind=sum(status == "ok" and (at or created) < now - behind_after for status, created, at, _ in items),
        # connected, not behind, yet never synced: not to be counted as synced
        preparing=sum(
            status == "ok" and at is None and created >= now - behind_after and state == "preparing"
            for status, created, at, state in items
        ),
        unsynced=sum(
            status == "ok" and at is None and created >= now - behind_after and state != "preparing"
            for status, created, at, state in items
        ),
        late_after=max(LATE_AT_LEAST, 2 * tick),
        behind_after=behind_after,
    )


def current_health(c: Container, session: Session) -> BotHealth:
    """``bot_health`` now, with the interval and tick of the settings."""
    return bot_health(
        session,
        c.clock(),
        interval=timedelta(hours=c.settings.sync_interval_hours),
        tick=timedelta(seconds=c.settings.sync_tick_seconds),
    )
