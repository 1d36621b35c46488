"""Plan: what a real run would do, from the real tenant, without sending anything.

`plan: true` lists what Leanpay holds (GET only), maps and checks every record, and
writes the requests a real run would send to `dry_run_path`, as a dry run does. Instead
of stopping at a rejection, it counts them, and ends with one report per stream and a
one-line verdict a user can act on. The counts are those of the real run that follows,
as long as the tenant and the input do not change in between.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter

from target_leanpay.deadletter import RejectedItem
from target_leanpay.progress import StreamStats, plural

logger = logging.getLogger("target-leanpay")

TOP_REASONS = 5
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_GOT = re.compile(r"\bgot .*?(?=[;,)]|$)")


def reason_kind(field: str, reason: str) -> str:
    """A rejection reason with the record's own values blanked, so that alike rejections
    are counted together (`amount: must be >= 0, got …`)."""
    return f"{field}: {_GOT.sub('got …', _QUOTED.sub('…', reason))}"


class Plan:
    """Collects the rejections of a plan; prints the report and the verdict."""

    def __init__(self, dead_letter_path: str | None) -> None:
        self.dead_letter_path = dead_letter_path
        self._reasons: dict[str, Counter[str]] = {}
        self._first_rejected: RejectedItem | None = None
        self._lock = threading.Lock()

    def rejected(self, item: RejectedItem) -> None:
        """A record a real run would reject (dead-letter, or stop at)."""
        first = item.problems[0]
        with self._lock:
            self._reasons.setdefault(item.stream, Counter())[
                reason_kind(first.field, first.reason)
            ] += 1
            if self._first_rejected is None:
                self._first_rejected = item

    def report(self, streams: dict[str, StreamStats], requests: int, path: str) -> None:
        """One block per stream, then the verdict."""
        for stats in streams.values():
            logger.info(
                "Plan: stream '%s' -> %s: %s read, %d would be sent, %d already in "
                "Leanpay, %d would be rejected (%d with an unresolved reference)",
                stats.stream,
                stats.resource,
                plural(stats.read, "record"),
                stats.acknowledged,
                stats.already_present,
                stats.rejected,
                stats.unresolved,
            )
            for reason, count in self._reasons.get(stats.stream, Counter()).most_common(
                TOP_REASONS
            ):
                logger.info("Plan:     %d x %s", count, reason)
        logger.info("Plan: %s", self.verdict(streams, requests, path))

    def verdict(self, streams: dict[str, StreamStats], requests: int, path: str) -> str:
        """The one line a user acts on."""
        send = sum(s.acknowledged for s in streams.values())
        present = sum(s.already_present for s in streams.values())
        rejected = sum(s.rejected for s in streams.values())
        held = f"; {present} already in Leanpay" if present else ""
        sending = f"{plural(send, 'record')} in {plural(requests, 'request')}"
        if rejected and self.dead_letter_path is None:
            first = self._first_rejected
            where = f" (the first: stream '{first.stream}', {first.ident})" if first else ""
            return (
                f"NOT READY: a real run would stop at the first of "
                f"{plural(rejected, 'rejected record')}{where}; fix them, or set "
                "dead_letter_path to set them aside"
            )
        if rejected:
            return (
                f"READY WITH REJECTIONS: a real run would send {sending}{held} and set "
                f"{rejected} aside in {self.dead_letter_path}"
            )
        if not send:
            return f"NOTHING TO DO: no record would be sent{held}"
        return f"READY: a real run would send {sending}{held}; they are written to {path}"
