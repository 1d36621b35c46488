"""Counters per stream, a progress line every few seconds, and the end-of-run summary.

A dry run's lines say what it did: records that would be sent and requests written to
its file, never "acknowledged" (nothing was sent, so nothing was acknowledged).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger("target-leanpay")

PROGRESS_INTERVAL_SECONDS = 5.0

_PLURALS = {"retry": "retries", "already present": "already present"}


def plural(count: int, noun: str) -> str:
    """`1 request`, `2 requests`, `0 retries`."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {_PLURALS.get(noun, noun + 's')}"


@dataclass(eq=False)  # compared and hashed by identity: one object per stream
class StreamStats:
    """What happened to one stream's records."""

    stream: str
    resource: str
    read: int = 0
    acknowledged: int = 0
    already_present: int = 0
    updated: int = 0
    """Held by Leanpay, changed in the source, and updated in place (updates.py)."""
    changed: int = 0
    """Held by Leanpay, changed in the source, and not updatable: reported, not sent."""
    rejected: int = 0
    unresolved: int = 0
    """Of the rejected: a reference by externalId that could not be resolved."""
    requests: int = 0
    retries: int = 0
    repeated: int = 0
    """Of the already present: records repeating an earlier record of the input (twins)."""
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to counters from any thread."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def summary(self, *, dry_run: bool = False) -> str:
        """One line for the end-of-run summary."""
        elapsed = time.monotonic() - self.started
        read = f"stream '{self.stream}' -> {self.resource}: {plural(self.read, 'record')} read"
        if dry_run:
            repeated = (
                f", {self.already_present} not sent (already in Leanpay, or repeating an "
                "earlier record's externalId)"
                if self.already_present
                else ""
            )
            return (
                f"{read}, {self.acknowledged} would be sent in {plural(self.requests, 'request')}"
                f"{repeated}, {self.changes(dry_run=True)}{self.rejected} rejected, "
                f"{elapsed:.1f} s"
            )
        return (
            f"{read}, {self.acknowledged} acknowledged, {self.already_present} already present, "
            f"{self.changes()}{self.rejected} rejected, {plural(self.requests, 'request')}, "
            f"{plural(self.retries, 'retry')}, {elapsed:.1f} s"
        )

    def changes(self, *, dry_run: bool = False) -> str:
        """`2 updated, 1 changed, not updatable, ` (nothing when no record changed)."""
        if not (self.updated or self.changed):
            return ""
        updated = "would be updated" if dry_run else "updated"
        return f"{self.updated} {updated}, {self.changed} changed, not updatable, "


class Progress:
    """Logs totals at most every PROGRESS_INTERVAL_SECONDS, from whichever thread asks."""

    def __init__(
        self, *, dry_run: bool = False, interval: float = PROGRESS_INTERVAL_SECONDS
    ) -> None:
        """`dry_run`: the lines say what would be sent (a dry run, a plan)."""
        self.interval = interval
        self.dry_run = dry_run
        self.streams: dict[str, StreamStats] = {}
        self.unowned_retries = 0
        """Retries of requests no stream owns (reading what Leanpay holds: GET /invoices)."""
        self._started = time.monotonic()
        self._next_log = self._started + interval
        self._lock = threading.Lock()

    def stats_for(self, stream: str, resource: str) -> StreamStats:
        """The counters of `stream`, created on first use."""
        stats = self.streams.get(stream)
        if stats is None:
            stats = self.streams[stream] = StreamStats(stream, resource)
        return stats

    def unowned_retry(self, _message: str) -> None:
        """Count one retry of a request no stream owns (the client logged it)."""
        with self._lock:
            self.unowned_retries += 1

    def maybe_log(self) -> None:
        """Log a progress line if the interval has passed."""
        now = time.monotonic()
        if now < self._next_log or not self._lock.acquire(blocking=False):
            return
        try:
            self._next_log = now + self.interval
            read = sum(s.read for s in self.streams.values())
            done = sum(
                s.acknowledged + s.already_present + s.updated + s.changed
                for s in self.streams.values()
            )
            rate = done / max(now - self._started, 1e-9)
            label = "Progress (dry run)" if self.dry_run else "Progress"
            done_as = "would be sent" if self.dry_run else "acknowledged or present"
            records = plural(read, "record")
            logger.info("%s: %s read, %d %s, %.0f records/s", label, records, done, done_as, rate)
        finally:
            self._lock.release()

    def log_summary(self) -> None:
        """One line per stream: records, requests, retries, rejected, elapsed."""
        label = "Summary (dry run)" if self.dry_run else "Summary"
        for stats in self.streams.values():
            logger.info("%s: %s", label, stats.summary(dry_run=self.dry_run))
        if self.unowned_retries:
            logger.info(
                "%s: %s reading what Leanpay holds (GET), counted in no stream's line",
                label,
                plural(self.unowned_retries, "retry"),
            )
