"""Failure counters in the database: per-account locks with back-off and per-client-address limits.

Policy (ASVS 6.1.1, documented here): an account that fails 5 times within any 15 minutes refuses
sign-in for 15 minutes; each repeat lock doubles that, up to 24 hours; success, a password reset
or an admin unlock clears it, and so does a week without failures (services.retention). A client
address with 10 failures within any 15 minutes is refused before any bcrypt work until the oldest of
them is 15 minutes old. The windows slide: each row keeps the times of its latest events, so a burst
across the end of a fixed window is counted whole.
Locks expire by themselves, so nobody can lock a victim out for good, and the victim can always
reset the password to clear a lock. After 100 failures in a row with no success between them (NIST SP
800-63B: at most 100 consecutive failed attempts), sign-in stops until a password reset or an admin
unlock: no expiry, and retention keeps the counter.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from models import ThrottleCounter
from services.client_address import sender

ACCOUNT_LIMIT = 5
ACCOUNT_WINDOW = timedelta(minutes=15)
BASE_LOCK = timedelta(minutes=15)
MAX_LOCK = timedelta(hours=24)
HARD_STOP = 100  # consecutive failures, across locks, before sign-in stops until a reset or an admin unlock
HARD_LOCK = timedelta(days=36_500)  # "until reset": far enough that it never ends by itself
IP_LIMIT = 10  # failed sign-ins per client address per IP_WINDOW: the 11th is refused (bar C2)
IP_WINDOW = timedelta(minutes=15)
KEPT = 16  # latest times kept per row: above every caller's limit (the reset limit needs to see an 11th)
_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"  # ThrottleCounter.recent: 16 stamps of 30 characters fit its 512
_LOCK_SPACE = 0x7468  # the first key of the advisory locks taken here ("th"): nothing else in finsync takes any


def account_key(user_id: uuid.UUID) -> str:
    return f"acct:{user_id}"


def ip_key(ip: str, scope: str = "auth") -> str:
    # An unknown address shares one bucket: failing closed beats giving spraying a free pass. An IPv6 address
    # counts by its /64: one host has the whole range, and a new address each try must not make a new bucket.
    return f"ip:{scope}:{sender(ip) or 'unknown'}"[:160]


def _counter(session: Session, key: str, now: datetime) -> ThrottleCounter:
    """The row for ``key``, created if missing and locked for this transaction (no lost updates)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"key": key, "last_at": now, "recent": "[]", "consecutive": 0, "lock_level": 0}
    session.execute(insert(ThrottleCounter).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    query = select(ThrottleCounter).where(col(ThrottleCounter.key) == key).with_for_update()
    row: ThrottleCounter = session.execute(query.execution_options(populate_existing=True)).scalar_one()
    return row


def _peek(session: Session, key: str) -> ThrottleCounter | None:
    return session.execute(select(ThrottleCounter).where(col(ThrottleCounter.key) == key)).scalar_one_or_none()


def _times(row: ThrottleCounter, now: datetime, window: timedelta) -> list[datetime]:
    """The row's kept times that fall within ``window`` before ``now``, oldest first."""
    stamps = (datetime.strptime(s, _STAMP).replace(tzinfo=UTC) for s in json.loads(row.recent or "[]"))
    return sorted(t for t in stamps if now - t < window)


def _keep(row: ThrottleCounter, times: list[datetime]) -> int:
    """Store the latest ``KEPT`` of ``times``; returns how many were stored."""
    kept = [t.astimezone(UTC).strftime(_STAMP) for t in sorted(times)[-KEPT:]]
    row.recent = json.dumps(kept, separators=(",", ":"))
    return len(kept)


def _without(times: list[datetime], now: datetime) -> list[datetime]:
    """``times`` less the one counted at ``now`` (or the latest, if that one is gone)."""
    if not times:
        return times
    at = max((i for i, t in enumerate(times) if t == now), default=len(times) - 1)
    return times[:at] + times[at + 1 :]


def _serialise(session: Session, key: str) -> None:
    """Hold ``key`` until this transaction ends, so a check and the count that follows it are one step.

    Parallel attempts then queue here and each sees the ones before it. SQLite needs nothing: every caller's
    transaction began IMMEDIATE, which already lets one writer in at a time. PostgreSQL takes an advisory lock
    (no row needed: the first attempt of a key has none to lock yet).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"), {"space": _LOCK_SPACE, "key": key}
        )


def locked_until(session: Session, key: str, now: datetime) -> datetime | None:
    """When the lock on ``key`` ends, or None when it is not locked (held until the transaction ends)."""
    _serialise(session, key)
    row = _peek(session, key)
    if row is None or row.locked_until is None or row.locked_until <= now:
        return None
    return row.locked_until


def record_failure(session: Session, key: str, now: datetime) -> datetime | None:
    """Count one account failure; returns the lock's end when this failure starts a lock."""
    row = _counter(session, key, now)
    if row.locked_until is not None and row.locked_until > now:
        return None  # failures during a lock do not extend it: the lock is already the answer
    ended = row.locked_until  # failures before a lock that has ended were answered by it: they never count again
    times = [t for t in _times(row, now, ACCOUNT_WINDOW) if ended is None or t >= ended] + [now]
    _keep(row, times)  # kept through a lock, so undo_failure can take the lock back exactly
    row.last_at = now
    row.consecutive += 1
    if row.consecutive >= HARD_STOP:
        row.locked_until = now + HARD_LOCK
        return row.locked_until
    if len(times) < ACCOUNT_LIMIT:
        return None
    row.locked_until = now + min(BASE_LOCK * (2**row.lock_level), MAX_LOCK)
    row.lock_level = min(row.lock_level + 1, 16)
    return row.locked_until


def is_hard_stop(until: datetime, now: datetime) -> bool:
    """Whether a lock ending at ``until`` is the stop that only a reset or an admin lifts."""
    return until - now > MAX_LOCK * 2


def undo_failure(session: Session, key: str, now: datetime, *, started_lock: bool) -> None:
    """Take back one pre-counted failure (the attempt turned out to be correct), and the lock it started."""
    row = _counter(session, key, now)
    if started_lock:
        row.locked_until, row.lock_level = None, max(0, row.lock_level - 1)
    _keep(row, _without(_times(row, now, ACCOUNT_WINDOW), now))
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
    """Seconds until the address may try again; 0 when it may try now (held until the transaction ends)."""
    return retry_after(session, ip_key(ip, scope), now, limit=limit)


def retry_after(session: Session, key: str, now: datetime, *, limit: int, window: timedelta = IP_WINDOW) -> int:
    """Seconds until ``key`` is below ``limit`` events within ``window`` again; 0 when it is now (held, likewise)."""
    _serialise(session, key)
    row = _peek(session, key)
    times = _times(row, now, window) if row is not None else []
    if len(times) < limit:
        return 0
    # Below the limit again once the oldest of the latest ``limit`` events leaves the window.
    return max(1, int((times[-limit] + window - now).total_seconds()))


def record_ip(session: Session, ip: str, now: datetime, *, scope: str = "auth", window: timedelta = IP_WINDOW) -> int:
    """Count one event for the address; returns how many fall within ``window`` up to now (at most ``KEPT``)."""
    return record_event(session, ip_key(ip, scope), now, window)


def record_event(session: Session, key: str, now: datetime, window: timedelta) -> int:
    """Count one event for ``key``; returns how many fall within ``window`` up to now (at most ``KEPT``)."""
    row = _counter(session, key, now)
    row.last_at = now
    return _keep(row, [*_times(row, now, window), now])


def undo_ip(session: Session, ip: str, now: datetime) -> None:
    row = _counter(session, ip_key(ip), now)
    _keep(row, _without(_times(row, now, IP_WINDOW), now))


def count_in_window(session: Session, key: str, now: datetime, window: timedelta) -> int:
    """How many events ``key`` has within ``window`` before ``now`` (at most ``KEPT``)."""
    row = _peek(session, key)
    return len(_times(row, now, window)) if row is not None else 0
