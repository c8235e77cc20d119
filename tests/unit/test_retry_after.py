"""Plaid's Retry-After: parsed and clamped at the edge, then honoured by the sync's backoff within its budget."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from services.plaid_errors import RateLimited, Transient, error_from_body, parse_retry_after
from services.sync_run import Pacer, RunCounters, retrying
from services.sync_types import RetryPolicy, default_policy

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        (" 42 ", 42.0),
        ("0", 0.0),
        ("301", 300.0),  # clamped: a hostile or mistaken header never parks a sync for hours
        ("9" * 400, 300.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),  # HTTP-date
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # already past
        ("Fri, 01 Jan 2027 12:00:00 GMT", 300.0),
        ("-5", None),
        ("1.5", None),
        ("nan", None),
        ("inf", None),
        ("١٢", None),  # non-ASCII digits
        ("Mon, 99 Foo 2026", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date_clamped_to_five_minutes(
    value: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_the_error_carries_retry_after_only_when_the_answer_had_one() -> None:
    body = '{"error_type": "RATE_LIMIT_EXCEEDED", "error_code": "TRANSACTIONS_SYNC_LIMIT"}'
    assert error_from_body(429, body, 12.0).retry_after == 12.0
    assert error_from_body(429, body).retry_after is None


def _run() -> RunCounters:
    return RunCounters(run_id=uuid.uuid4(), item_id=uuid.uuid4(), owner="test", progress=None)


def _failing(*errors: Exception) -> tuple[list[int], Callable[[], str]]:
    """A call that raises ``errors`` in turn, then answers; and the list of calls it took."""
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "page"

    return calls, call


def _policy(slept: list[float], budget_seconds: float = 120.0) -> RetryPolicy:
    """Backoff too short to matter, with every wait recorded instead of slept."""
    return RetryPolicy(base_seconds=0.001, cap_seconds=0.005, budget_seconds=budget_seconds, sleep=slept.append)


def test_a_429_with_retry_after_waits_at_least_that_long() -> None:
    slept: list[float] = []
    _, call = _failing(RateLimited("TRANSACTIONS_SYNC_LIMIT", retry_after=7.0), Transient("HTTP_503", retry_after=2.0))
    run = _run()
    assert retrying(call, _policy(slept), run) == "page"
    assert slept == [7.0, 2.0] and run.retries == 2


def test_a_429_without_or_with_garbage_retry_after_gets_plain_jittered_backoff() -> None:
    slept: list[float] = []
    garbage = error_from_body(429, "", parse_retry_after("in a while"))
    _, call = _failing(garbage, RateLimited("RATE_LIMIT"))
    assert retrying(call, _policy(slept), _run()) == "page"
    assert len(slept) == 2 and all(0 <= s <= 0.005 for s in slept)


def test_a_retry_after_beyond_the_budget_fails_the_call_without_sleeping() -> None:
    slept: list[float] = []
    calls, call = _failing(RateLimited("RATE_LIMIT", retry_after=300.0))
    with pytest.raises(RateLimited):
        retrying(call, _policy(slept, budget_seconds=120.0), _run())
    assert slept == [] and len(calls) == 1


def test_retry_afters_count_against_one_budget_per_call() -> None:
    slept: list[float] = []
    calls, call = _failing(*(RateLimited("RATE_LIMIT", retry_after=50.0) for _ in range(3)))
    with pytest.raises(RateLimited):
        retrying(call, _policy(slept, budget_seconds=120.0), _run())
    assert slept == [50.0, 50.0] and len(calls) == 3  # a third 50 s would pass 120 s


def test_waits_count_against_one_budget_per_run_too() -> None:
    """A bank that throttles every page: each call recovers, but the run stops once it has waited 300 s."""
    slept: list[float] = []
    run = _run()
    policy = _policy(slept, budget_seconds=120.0)
    for _ in range(3):  # three pages, each after two 50 s waits: 300 s in all, the run's whole budget
        _, call = _failing(*(RateLimited("RATE_LIMIT", retry_after=50.0) for _ in range(2)))
        assert retrying(call, policy, run) == "page"
    calls, call = _failing(RateLimited("RATE_LIMIT", retry_after=1.0))
    with pytest.raises(RateLimited):
        retrying(call, policy, run)  # the fourth page's first wait would pass it
    assert sum(slept) == 300.0 and run.waited == 300.0 and len(calls) == 1


def test_the_default_policy_is_the_security_bars() -> None:
    policy = RetryPolicy()
    assert (policy.retries + 1, policy.base_seconds, policy.cap_seconds) == (5, 1.0, 60.0)  # bar L8
    assert policy.budget_seconds >= 60.0  # room for one minute-long Retry-After, Plaid's per-minute limits
    assert policy.budget_seconds <= policy.run_budget_seconds <= 300.0  # one call's worth fits; a run stays minutes


def test_a_real_sync_keeps_under_plaids_50_pages_a_minute_per_item_and_the_demo_bank_is_not_paced() -> None:
    """Plaid allows 50 /transactions/sync calls a minute per item and does not say when to come back: a first sync
    of 400 pages went at network speed into 429s its few seconds of retries could not outwait (the run failed, and
    the next started over). Paced, no 60 seconds hold more than 45 calls, and the waits are spent only when due."""
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    policy = RetryPolicy(pages_per_minute=default_policy("production").pages_per_minute, clock=lambda: clock[0],
                         sleep=sleep)  # fmt: skip
    pacer, calls = Pacer(policy), []
    for _ in range(400):
        pacer.wait()
        calls.append(clock[0])
        clock[0] += 0.25  # a page at network speed
    assert max(sum(1 for t in calls if start <= t < start + 60.0) for start in calls) == 45
    assert 60.0 * (400 // 45) <= calls[-1] < 60.0 * (400 // 45 + 1)  # 400 pages take 9 minutes, not 2 plus 429s
    assert all(s > 0 for s in slept) and len(slept) == 400 // 45  # one wait a window, when the 46th comes
    assert default_policy("demo").pages_per_minute is None and default_policy("sandbox").pages_per_minute == 45
