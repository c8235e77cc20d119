"""Throttle windows slide (security bar C1, C2, E4): a limit trips once enough failures fall within any
15 minutes, however they straddle the clock; time is passed in, never slept, on both databases."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from models import ThrottleCounter
from services import throttle
from services.account import RESET_IP_WINDOW
from services.db import unit_of_work

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
IP = "203.0.113.70"


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def key(n: int = 1) -> str:
    return throttle.account_key(uuid.UUID(int=n))


def fail(engine: Engine, when: datetime, n: int = 1) -> datetime | None:
    with unit_of_work(engine, immediate=True) as session:
        return throttle.record_failure(session, key(n), when)


def lock_of(engine: Engine, n: int = 1) -> tuple[datetime | None, int]:
    with unit_of_work(engine) as session:
        row = session.get(ThrottleCounter, key(n))
        return (row.locked_until, row.lock_level) if row is not None else (None, 0)


def attempt(engine: Engine, when: datetime, ip: str = IP) -> int:
    """What sign-in does with an address: refuse while limited (seconds to wait), else count it (0)."""
    with unit_of_work(engine, immediate=True) as session:
        wait = throttle.ip_retry_after(session, ip, when)
        if not wait:
            throttle.record_ip(session, ip, when)
        return wait


def test_a_burst_across_the_end_of_a_fixed_window_locks(engine: Engine) -> None:
    """The audit's case: 1 failure, 3 at 14:58, 4 at 15:00 is 7 failures in 2 s; a fixed window missed it."""
    assert fail(engine, at()) is None
    assert [fail(engine, at(14, 58)) for _ in range(3)] == [None] * 3
    assert fail(engine, at(15)) is None  # the first failure is 15 minutes old: four within the window
    assert fail(engine, at(15)) == at(30)  # the fifth within 15 minutes locks, for 15 minutes
    assert [fail(engine, at(15)) for _ in range(2)] == [None, None]  # during the lock: not counted, not extended
    assert lock_of(engine) == (at(30), 1)


def test_five_failures_within_14_59_lock_and_within_15_00_do_not(engine: Engine) -> None:
    for minutes in (0, 3, 7, 11):
        assert fail(engine, at(minutes), n=1) is None
        assert fail(engine, at(minutes), n=2) is None
    assert fail(engine, at(14, 59), n=1) == at(29, 59)
    assert fail(engine, at(15), n=2) is None  # the failure at 0:00 has just left the window
    assert fail(engine, at(17, 59), n=2) == at(32, 59)  # 3:00 to 17:59: five within 15 minutes again


def test_failures_spread_out_never_lock(engine: Engine) -> None:
    for i in range(30):  # each more than 15 minutes after the last
        assert fail(engine, at(15 * i, seconds=i), n=1) is None
    for i in range(60):  # four in every 15 minutes, for 15 hours: never five within any 15 minutes
        assert fail(engine, at(i * 3.75), n=2) is None
    assert lock_of(engine, 1) == (None, 0) and lock_of(engine, 2) == (None, 0)


def test_locks_still_double_up_to_24_hours(engine: Engine) -> None:
    when, lengths = at(), []
    for _ in range(10):
        results = [fail(engine, when) for _ in range(throttle.ACCOUNT_LIMIT)]
        assert results[:-1] == [None] * (throttle.ACCOUNT_LIMIT - 1) and results[-1] is not None
        lengths.append(round((results[-1] - when).total_seconds() / 60))
        when = results[-1]  # the lock just ended: its failures do not count any more
    assert lengths == [15, 30, 60, 120, 240, 480, 960, 24 * 60, 24 * 60, 24 * 60]


def test_failures_from_before_a_lock_do_not_count_after_it(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock answers the failures that started it, even with a lock shorter than the window."""
    monkeypatch.setattr(throttle, "BASE_LOCK", timedelta(minutes=5))
    assert [fail(engine, at(m)) for m in range(5)][-1] == at(9)
    assert [fail(engine, at(9)) for _ in range(4)] == [None] * 4  # 0:00-4:00 are within 15 minutes, not counted
    assert fail(engine, at(9)) == at(19)


def test_success_forgets_failures_and_a_right_password_takes_its_failure_back(engine: Engine) -> None:
    for _ in range(4):
        fail(engine, at())
    with unit_of_work(engine, immediate=True) as session:
        assert throttle.clear(session, key()) is False  # a successful sign-in: no lock was pending
    assert [fail(engine, at(1)) for _ in range(4)] == [None] * 4
    assert fail(engine, at(1)) == at(16)
    # The fifth attempt had the right password (a TOTP user): its failure and its lock are taken back.
    for _ in range(4):
        fail(engine, at(), n=2)
    assert fail(engine, at(1), n=2) == at(16)
    with unit_of_work(engine, immediate=True) as session:
        throttle.undo_failure(session, key(2), at(1), started_lock=True)
    assert lock_of(engine, 2) == (None, 0)
    assert fail(engine, at(2), n=2) == at(17)  # four failures remain within the window: the next one locks
    # A pre-counted failure without a lock is taken back too.
    for _ in range(3):
        fail(engine, at(), n=3)
    with unit_of_work(engine, immediate=True) as session:
        throttle.undo_failure(session, key(3), at(), started_lock=False)
    assert [fail(engine, at(1), n=3) for _ in range(3)] == [None, None, at(16)]


def test_the_address_limit_slides(engine: Engine) -> None:
    assert attempt(engine, at()) == 0
    assert [attempt(engine, at(14, 58)) for _ in range(9)] == [0] * 9
    assert attempt(engine, at(14, 59)) == 1  # ten within 15 minutes: wait until the first is 15 minutes old
    assert attempt(engine, at(15)) == 0  # the first has left: one more, not a fresh ten
    assert attempt(engine, at(15)) == 14 * 60 + 58  # until the 14:58 ones leave
    assert [attempt(engine, at(29, 58)) for _ in range(10)] == [0] * 9 + [2]  # 15:00's still counts
    for i in range(100):  # nine in every 15 minutes from another address: never refused
        assert attempt(engine, at(seconds=100 * i), ip="203.0.113.71") == 0


def test_other_address_counts_slide_with_their_own_windows(engine: Engine) -> None:
    with unit_of_work(engine, immediate=True) as session:
        counts = [throttle.record_ip(session, IP, at(), scope="reset", window=RESET_IP_WINDOW) for _ in range(10)]
        counts.append(throttle.record_ip(session, IP, at(2, 59), scope="reset", window=RESET_IP_WINDOW))
        counts.append(throttle.record_ip(session, IP, at(3), scope="reset", window=RESET_IP_WINDOW))
        assert counts == [*range(1, 12), 2]
        assert throttle.count_in_window(session, throttle.ip_key(IP, "reset"), at(5, 58), RESET_IP_WINDOW) == 2
        assert throttle.count_in_window(session, throttle.ip_key(IP, "reset"), at(6), RESET_IP_WINDOW) == 0
        for _ in range(10):
            throttle.record_ip(session, IP, at(1), scope="register")
        assert throttle.ip_retry_after(session, IP, at(15, 59), scope="register", limit=10) == 1
        assert throttle.ip_retry_after(session, IP, at(16), scope="register", limit=10) == 0
        assert throttle.ip_retry_after(session, IP, at(15, 59), scope="register", limit=11) == 0


def test_a_correct_password_gives_its_address_count_back(engine: Engine) -> None:
    for _ in range(10):
        attempt(engine, at())
    assert attempt(engine, at(1)) > 0
    with unit_of_work(engine, immediate=True) as session:
        throttle.undo_ip(session, IP, at())
    assert attempt(engine, at(1)) == 0


def test_stored_times_stay_bounded_and_fit_their_column(engine: Engine) -> None:
    with unit_of_work(engine, immediate=True) as session:
        counts = [throttle.record_ip(session, IP, at(seconds=i / 1000)) for i in range(3 * throttle.KEPT)]
    assert counts[-1] == throttle.KEPT
    with unit_of_work(engine) as session:
        row = session.get(ThrottleCounter, throttle.ip_key(IP))
        assert row is not None and row.last_at == at(seconds=(3 * throttle.KEPT - 1) / 1000)
        stamps = json.loads(row.recent)
    assert len(stamps) == throttle.KEPT and stamps == sorted(stamps)
    assert stamps[-1] == "2026-11-27T12:00:00.047000Z"  # UTC to the microsecond, oldest first
    assert len(row.recent) <= ThrottleCounter.__table__.c.recent.type.length  # type: ignore[attr-defined]
    assert len(json.dumps([stamps[0]] * throttle.KEPT, separators=(",", ":"))) <= 512
