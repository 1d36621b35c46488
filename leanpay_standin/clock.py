"""The stand-in's `createdAt` / `updatedAt` clock: wall time, never going back.

Leanpay writes these as JavaScript dates ("2024-03-01T12:34:56.789Z") and documents
neither their resolution nor a list order. Two resolutions, the `created_at` setting:

- "millisecond" (the default): every timestamp is at least one millisecond after the
  previous one, so ordering by `createdAt` equals creation order, even within one batch.
  The clock follows the wall clock, never goes back when it jumps, and runs ahead of it
  while more than 1,000 objects a second are created (a throughput benchmark), catching
  up once creation slows down.
- "second": a batch is one transaction stamped with the current whole second
  ("...T12:34:56.000Z"), so every object of a batch, and of every batch stored within
  the same wall-clock second, shares one `createdAt`; a page of such rows says nothing
  about their order. Never before an earlier timestamp either (the next whole second
  when the millisecond clock ran ahead).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

Resolution = Literal["millisecond", "second"]
RESOLUTIONS: tuple[Resolution, ...] = ("millisecond", "second")


def _format(first_ms: int, count: int, step_ms: int = 1) -> list[str]:
    """`count` times `step_ms` apart from `first_ms` as Leanpay date-times."""
    stamps: list[str] = []
    second_shown, prefix = -1, ""
    for ms in range(first_ms, first_ms + count * step_ms, step_ms):
        second, milli = divmod(ms, 1000)
        if second != second_shown:  # strftime once per second, not once per object
            second_shown = second
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        stamps.append(f"{prefix}{milli:03d}Z")
    return stamps


def _next_second(ms: int) -> int:
    """The first whole second at or after `ms`, in ms."""
    return -(-ms // 1000) * 1000


class Clock:
    """Thread-safe; one per stand-in, shared by every resource, never reset.

    `resolution`: read on each call (the `created_at` setting), so it may change while
    running; the timestamps never go back across a change.
    """

    def __init__(
        self,
        now: Callable[[], float] = time.time,
        resolution: Callable[[], Resolution] = lambda: "millisecond",
    ) -> None:
        self.now = now
        """The wall clock it follows (tests replace it)."""
        self._resolution = resolution
        self._lock = threading.Lock()
        self._last_ms = 0

    def stamps(self, count: int, *, ending_now: bool = False) -> list[str]:
        """The timestamps of `count` objects stored together (one batch).

        By the millisecond: 1 ms apart, all after every timestamp given before;
        `ending_now`: the last one is now (or as soon after the previous ones as
        possible), for objects stored "as if imported earlier" (seeded tenants). By the
        second: `count` times the current second (ending_now changes nothing).
        """
        with self._lock:
            now_ms = int(self.now() * 1000)
            if self._resolution() == "second":
                first = max(_next_second(self._last_ms), now_ms // 1000 * 1000)
                self._last_ms = first
                return _format(first, 1) * count
            earliest = now_ms - count + 1 if ending_now else now_ms
            first = max(self._last_ms + 1, earliest)
            self._last_ms = first + count - 1
        return _format(first, count)

    def batch_stamps(self, batches: int) -> list[str]:
        """One timestamp per batch of objects stored "as if imported earlier", the last
        one now: one tick (ms or second) apart, each after every timestamp given before."""
        if batches == 0:
            return []
        with self._lock:
            now_ms = int(self.now() * 1000)
            if self._resolution() == "millisecond":
                first = max(self._last_ms + 1, now_ms - batches + 1)
                self._last_ms = first + batches - 1
                return _format(first, batches)
            now_second = now_ms // 1000 * 1000
            first = max(_next_second(self._last_ms + 1), now_second - (batches - 1) * 1000)
            self._last_ms = first + (batches - 1) * 1000
        return _format(first, batches, 1000)

    def stamp(self) -> str:
        """One timestamp (an update's `updatedAt`)."""
        return self.stamps(1)[0]
