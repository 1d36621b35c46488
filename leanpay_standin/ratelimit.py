"""A token bucket, so tests and benchmarks can meet a rate-limited Leanpay.

Leanpay documents no rate limit; a NestJS `ThrottlerGuard` is the plausible one. The
bucket holds up to `burst` tokens and gains `rate` per second; a request takes one token
or is refused with the whole seconds until one is available (a `Retry-After` value).
Refused requests take nothing, so a client retrying too early does not push its own
turn further away.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


def effective_burst(rate: float, burst: float | None) -> float:
    """The bucket's capacity: `burst`, or one second's worth of requests (at least 1)."""
    return burst if burst is not None else max(1.0, rate)


class TokenBucket:
    """Thread-safe; reads the monotonic clock, so wall-clock jumps change nothing."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._shape: tuple[float, float] | None = None
        self._tokens = 0.0
        self._updated = 0.0

    def refill(self) -> None:
        """Start again with a full bucket at the next request."""
        with self._lock:
            self._shape = None

    def take(self, rate: float, burst: float) -> int | None:
        """Take a token: None if one was there, else the Retry-After seconds (>= 1).

        A new (rate, burst) starts a full bucket, so changing the settings mid-test
        gives exactly the burst configured.
        """
        with self._lock:
            now = self._clock()
            if self._shape != (rate, burst):
                self._shape = (rate, burst)
                self._tokens = burst
            else:
                self._tokens = min(burst, self._tokens + (now - self._updated) * rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return max(1, math.ceil((1 - self._tokens) / rate))
