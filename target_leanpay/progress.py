"""Counters per stream, a progress line every few seconds, and the end-of-run summary."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger("target-leanpay")

PROGRESS_INTERVAL_SECONDS = 5.0


@dataclass(eq=False)  # compared and hashed by identity: one object per stream
class StreamStats:
    """What happened to one stream's records."""

    stream: str
    resource: str
    read: int = 0
    acknowledged: int = 0
    already_present: int = 0
    rejected: int = 0
    unresolved: int = 0
    """Of the rejected: a reference by externalId that could not be resolved."""
    requests: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to counters from any thread."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def summary(self) -> str:
        """One line for the end-of-run summary."""
        elapsed = time.monotonic() - self.started
        return (
            f"stream '{self.stream}' -> {self.resource}: {self.read} records read, "
            f"{self.acknowledged} acknowledged, {self.already_present} already present, "
            f"{self.rejected} rejected, {self.requests} requests, {self.retries} retries, "
            f"{elapsed:.1f} s"
        )


class Progress:
    """Logs totals at most every PROGRESS_INTERVAL_SECONDS, from whichever thread asks."""

    def __init__(self, interval: float = PROGRESS_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.streams: dict[str, StreamStats] = {}
        self._started = time.monotonic()
        self._next_log = self._started + interval
        self._lock = threading.Lock()

    def stats_for(self, stream: str, resource: str) -> StreamStats:
        """The counters of `stream`, created on first use."""
        stats = self.streams.get(stream)
        if stats is None:
            stats = self.streams[stream] = StreamStats(stream, resource)
        return stats

    def maybe_log(self) -> None:
        """Log a progress line if the interval has passed."""
        now = time.monotonic()
        if now < self._next_log or not self._lock.acquire(blocking=False):
            return
        try:
            self._next_log = now + self.interval
            read = sum(s.read for s in self.streams.values())
            done = sum(s.acknowledged + s.already_present for s in self.streams.values())
            rate = done / max(now - self._started, 1e-9)
            logger.info(
                "Progress: %d records read, %d acknowledged or present, %.0f records/s",
                read,
                done,
                rate,
            )
        finally:
            self._lock.release()

    def log_summary(self) -> None:
        """One line per stream: records, requests, retries, rejected, elapsed."""
        for stats in self.streams.values():
            logger.info("Summary: %s", stats.summary())
