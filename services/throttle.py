"""Failure counters in the database: per-account locks with back-off and per-client-address limits.

Policy (ASVS 6.1.1, documented here): an account that fails 5 times within 15 minutes refuses
sign-in for 15 minutes; each repeat lock doubles that, up to 24 hours; success, a password reset
or an admin unlock clears it, and so does a week without failures (services.retention). A client
address with 10 failures in 15 minutes is refused before any bcrypt work until its window ends.
Locks expire by themselves, so nobody can lock a victim out for good, and the victim can always
reset the password to clear a lock. After 100 failures in a row with no success between them (NIST SP
800-63B: at most 100 consecutive failed attempts), sign-in stops until a password reset or an admin
unlock: no expiry, and retention keeps the counter.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from models import ThrottleCounter

ACCOUNT_LIMIT = 5
ACCOUNT_WINDOW = timedelta(minutes=15)
BASE_LOCK = timedelta(minutes=15)
MAX_LOCK = timedelta(hours=24)
HARD_STOP = 100  # consecutive failures, across locks, before sign-in stops until a reset or an admin unlock
HARD_LOCK = timedelta(days=36_500)  # "until reset": far enough that it never ends by itself
IP_LIMIT = 10  # failed sign-ins per client address per IP_WINDOW: the 11th is refused (bar C2)
IP_WINDOW = timedelta(minutes=15)


def account_key(user_id: uuid.UUID) -> str:
    return f"acct:{user_id}"


def ip_key(ip: str, scope: str = "auth") -> str:
    # An unknown address shares one bucket: failing closed beats giving spraying a free pass.
    return f"ip:{scope}:{ip or 'unknown'}"[:160]


def _counter(session: Session, key: str, now: datetime) -> ThrottleCounter:
    """The row for ``key``, created if missing and locked for this transaction (no lost updates)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"key": key, "window_start": now, "failures": 0, "consecutive": 0, "lock_level": 0}
    session.execute(insert(ThrottleCounter).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    query = select(ThrottleCounter).where(col(ThrottleCounter.key) == key).with_for_update()
    row: ThrottleCounter = session.execute(query.execution_options(populate_existing=True)).scalar_one()
    return row


def _peek(session: Session, key: str) -> ThrottleCounter | None:
    return session.execute(select(ThrottleCounter).where(col(ThrottleCounter.key) == key)).scalar_one_or_none()


def locked_until(session: Session, key: str, now: datetime) -> datetime | None:
    """When the lock on ``key`` ends, or None when it is not locked."""
    row = _peek(session, key)
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


def record_failure(session: Session, key: str, now: datetime) -> datetime | None:
    """Count one account failure; returns the lock's end when this failure starts a lock."""
    row = _counter(session, key, now)
    if row.locked_until is not None and row.locked_until > now:
        return None  # failures during a lock do not extend it: the lock is already the answer
    if now - row.window_start >= ACCOUNT_WINDOW:
        row.window_start, row.failures = now, 0
    row.failures += 1
    row.consecutive += 1
    if row.consecutive >= HARD_STOP:
        row.locked_until, row.failures, row.window_start = now + HARD_LOCK, 0, now
        return row.locked_until
    if row.failures < ACCOUNT_LIMIT:
        return None
    row.locked_until = now + min(BASE_LOCK * (2**row.lock_level), MAX_LOCK)
    row.lock_level = min(row.lock_level + 1, 16)
    row.failures, row.window_start = 0, now
    return row.locked_until


def is_hard_stop(until: datetime, now: datetime) -> bool:
    """Whether a lock ending at ``until`` is the stop that only a reset or an admin lifts."""
    return until - now > MAX_LOCK * 2


def undo_failure(session: Session, key: str, now: datetime, *, started_lock: bool) -> None:
    """Take back one pre-counted failure (the attempt turned out to be correct), and the lock it started."""
    row = _counter(session, key, now)
    if started_lock:
        row.locked_until, row.lock_level, row.failures = None, max(0, row.lock_level - 1), ACCOUNT_LIMIT
    row.failures = max(0, row.failures - 1)
    row.consecutive = max(0, row.consecutive - 1)


def clear(session: Session, key: str) -> bool:
    """Forget every failure and lock of ``key``; True when there was a lock in force or pending."""
    row = _peek(session, key)
    if row is None:
        return False
    had_lock = row.locked_until is not None
    session.delete(row)
    return had_lock


def ip_retry_after(session: Session, ip: str, now: datetime, *, scope: str = "auth", limit: int = IP_LIMIT) -> int:
    """Seconds until the address may try again; 0 when it may try now."""
    row = _peek(session, ip_key(ip, scope))
    if row is None or now - row.window_start >= IP_WINDOW or row.failures < limit:
        return 0
    return max(1, int((row.window_start + IP_WINDOW - now).total_seconds()))


def record_ip(session: Session, ip: str, now: datetime, *, scope: str = "auth", window: timedelta = IP_WINDOW) -> int:
    """Count one event for the address in the current window; returns the count so far."""
    row = _counter(session, ip_key(ip, scope), now)
    if now - row.window_start >= window:
        row.window_start, row.failures = now, 0
    row.failures += 1
    return row.failures


def undo_ip(session: Session, ip: str, now: datetime) -> None:
    row = _counter(session, ip_key(ip), now)
    row.failures = max(0, row.failures - 1)


def count_in_window(session: Session, key: str, now: datetime, window: timedelta) -> int:
    """How many events ``key`` has in its current window (0 when the window is over)."""
    row = _peek(session, key)
    if row is None or now - row.window_start >= window:
        return 0
    return row.failures
