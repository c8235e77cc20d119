"""In-process token buckets: ``rate`` requests a second sustained, bursts of up to ``burst``; one, or one per sender."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    """Thread-safe; ``clock`` is monotonic seconds (tests pass their own)."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take one token: 0.0 when there was one, else the seconds until one is free (nothing taken)."""
        with self._lock:
            now = self._clock()
            if now > self._at:
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


class KeyedBuckets:
    """One ``TokenBucket`` per key (a client's address), so one sender's flood spends its own budget only; the
    least recently seen key is forgotten past ``max_keys`` (a forgotten sender starts again with a full bucket)."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 4096
    ) -> None:
        TokenBucket(rate, burst)  # the same checks of rate and burst
        self.rate, self.burst, self._clock, self.max_keys = rate, burst, clock, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one of ``key``'s tokens: 0.0 when there was one, else the seconds until one is free."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, clock=self._clock)
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
        return bucket.take()
