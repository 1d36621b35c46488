"""The stand-in's `createdAt` / `updatedAt` clock: wall time in ms, but strictly increasing.

Leanpay writes these as JavaScript dates ("2024-03-01T12:34:56.789Z", millisecond
precision) and documents no list order, so a client may infer the order from them; for
that to be testable, ordering by `createdAt` must equal creation order, even within one
batch. So every timestamp is at least one millisecond after the previous one: the
clock follows the wall clock, never goes back when it jumps, and runs ahead of it while
more than 1,000 objects a second are created (a throughput benchmark), catching up
once creation slows down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def _format(first_ms: int, count: int) -> list[str]:
    """`count` consecutive milliseconds from `first_ms` as Leanpay date-times."""
    stamps: list[str] = []
    second_shown, prefix = -1, ""
    for ms in range(first_ms, first_ms + count):
        second, milli = divmod(ms, 1000)
        if second != second_shown:  # strftime once per second, not once per object
            second_shown = second
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        stamps.append(f"{prefix}{milli:03d}Z")
    return stamps


class Clock:
    """Thread-safe; one per stand-in, shared by every resource, never reset."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._last_ms = 0

    def stamps(self, count: int, *, ending_now: bool = False) -> list[str]:
        """`count` timestamps, 1 ms apart, all after every timestamp given before.

        `ending_now`: the last one is now (or as soon after the previous ones as
        possible), for objects stored "as if imported earlier" (seeded tenants).
        """
        with self._lock:
            now_ms = int(self._now() * 1000)
            earliest = now_ms - count + 1 if ending_now else now_ms
            first = max(self._last_ms + 1, earliest)
            self._last_ms = first + count - 1
        return _format(first, count)

    def stamp(self) -> str:
        """One timestamp (an update's `updatedAt`)."""
        return self.stamps(1)[0]
