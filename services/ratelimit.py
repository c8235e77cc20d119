"""An in-process token bucket: ``rate`` requests a second sustained, bursts of up to ``burst``."""

from __future__ import annotations

import threading
import time
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
