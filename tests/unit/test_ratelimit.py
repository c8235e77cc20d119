"""The token bucket behind the webhook flood limit: refill, cap, wait, and no double spend across threads."""

from __future__ import annotations

import threading

import pytest

from services.ratelimit import KeyedBuckets, TokenBucket
from tests.factories import Ticker


def test_burst_then_refill_at_the_rate_never_above_the_burst() -> None:
    ticker = Ticker()
    bucket = TokenBucket(20.0, 5, clock=ticker)
    assert [bucket.take() for _ in range(5)] == [0.0] * 5
    assert bucket.take() == pytest.approx(0.05)  # one token is 1/20 s away
    ticker.now = 0.5  # ten tokens' worth of time, but the bucket holds five
    assert [bucket.take() == 0.0 for _ in range(6)] == [True] * 5 + [False]
    ticker.now = 0.4  # a clock that steps back adds nothing
    assert bucket.take() > 0.0


def test_threads_never_take_more_than_the_bucket_holds() -> None:
    bucket = TokenBucket(1.0, 100, clock=Ticker())
    taken: list[bool] = []
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        results = [bucket.take() == 0.0 for _ in range(50)]
        taken.extend(results)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 800 and sum(taken) == 100


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 10), (-1.0, 10), (5.0, 0)])
def test_a_bucket_that_could_never_serve_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(rate, burst)


def test_each_sender_has_its_own_bucket_and_the_least_recent_is_forgotten_past_the_cap() -> None:
    ticker = Ticker()
    buckets = KeyedBuckets(1.0, 2, clock=ticker, max_keys=2)
    assert [buckets.take("a") == 0.0 for _ in range(3)] == [True, True, False]  # a's burst is spent
    assert buckets.take("b") == 0.0  # b is not held up by a
    assert buckets.take("a") > 0  # a is still waiting (and now the most recent)
    assert buckets.take("c") == 0.0  # a third sender: b, least recently seen, is forgotten
    assert [buckets.take("b") == 0.0 for _ in range(3)] == [True, True, False]  # b starts again, full
    with pytest.raises(ValueError, match="positive rate"):
        KeyedBuckets(0.0, 1)
