"""Plan: what a real run would do, from the real tenant, without sending anything.

`plan: true` lists what Leanpay holds (GET only), maps and checks every record, and
writes the requests a real run would send to `dry_run_path`, as a dry run does. Instead
of stopping at a rejection, it counts them, and ends with a one-line verdict a user can
act on (the first line of its end, before the run's summary), then one report per
stream. The counts are those of the real run that follows, as long as the tenant and
the input do not change in between.

The report names what to fix: every problem is counted under its reason (a record with
two bad fields counts under both, so the counts of a stream's reasons may add up to more
than its rejected records), with the first `EXAMPLES` values and records of each; the
client codes missing from client_ids are listed; the requests file is named. The values
quoted are the records' own (a problem's `value`), never the config's.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from target_leanpay.output.deadletter import RejectedItem
from target_leanpay.output.progress import StreamStats, plural
from target_leanpay.records.mapping import Problem, unmapped_client
from target_leanpay.records.values import show

logger = logging.getLogger("target-leanpay")

EXAMPLES = 3
"""Records quoted per reason."""
MAX_REASONS = 20
"""Reasons listed per stream; the rest are counted in one line."""
MAX_CHANGES = 20
"""Changed records listed per stream; the rest are counted."""
MAX_CLIENT_CODES = 50
"""Unmapped client codes listed; the rest are counted."""

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_GOT = re.compile(r"\bgot .*?(?=[;,)]|$)")


def reason_kind(field: str, reason: str) -> str:
    """A rejection reason with the record's own values blanked, so that alike rejections
    are counted together (`amount: must be >= 0, got …`)."""
    return f"{field}: {_GOT.sub('got …', _QUOTED.sub('…', reason))}"


def example(problem: Problem, ident: str) -> str:
    """One record of a reason: the value it is about (if any) and where the record is."""
    if problem.value is None:
        return ident
    return f"{show(problem.value)} in {ident}"


@dataclass
class _Reason:
    """How many problems share one reason, and the first few of them."""

    count: int = 0
    examples: list[str] = field(default_factory=list)


class Plan:
    """Collects the rejections of a plan; prints the report and the verdict."""

    def __init__(self, dead_letter_path: str | None) -> None:
        self.dead_letter_path = dead_letter_path
        self._reasons: dict[str, dict[str, _Reason]] = {}
        self._unmapped: Counter[str] = Counter()
        self._changes: dict[str, list[str]] = {}
        self._first_rejected: RejectedItem | None = None
        self._lock = threading.Lock()

    def rejected(self, item: RejectedItem) -> None:
        """A record a real run would reject (dead-letter, or stop at): each of its
        problems counts under its own reason."""
        with self._lock:
            reasons = self._reasons.setdefault(item.stream, {})
            for problem in item.problems:
                kind = reason_kind(problem.field, problem.reason)
                reason = reasons.get(kind)
                if reason is None:
                    reason = reasons[kind] = _Reason()
                reason.count += 1
                if len(reason.examples) < EXAMPLES:
                    reason.examples.append(example(problem, item.ident))
                code = unmapped_client(problem)
                if code is not None:
                    self._unmapped[code] += 1
            if self._first_rejected is None:
                self._first_rejected = item

    def report(self, streams: dict[str, StreamStats], requests: int, path: str) -> None:
        """The verdict, then one block per stream and the unmapped client codes."""
        for line in self.lines(streams, requests, path):
            logger.info("Plan: %s", line)

    def lines(self, streams: dict[str, StreamStats], requests: int, path: str) -> list[str]:
        """The report, line by line (without the `Plan: ` each is logged with)."""
        lines = [self.verdict(streams, requests, path)]
        for stats in streams.values():
            lines.append(
                f"stream '{stats.stream}' -> {stats.resource}: "
                f"{plural(stats.read, 'record')} read, {stats.acknowledged} would be sent, "
                f"{stats.already_present - stats.repeated} already in Leanpay, "
                + (
                    f"{stats.repeated} repeating an earlier record of the input, "
                    if stats.repeated
                    else ""
                )
                + (
                    f"{stats.updated} would be updated, {stats.changed} changed but cannot be "
                    "updated, "
                    if stats.updated or stats.changed
                    else ""
                )
                + f"{stats.rejected} would be rejected ({stats.unresolved} with an unresolved "
                "reference)"
            )
            lines += self._change_lines(self._changes.get(stats.stream, []))
            lines += self._reason_lines(self._reasons.get(stats.stream, {}))
        if self._unmapped:
            lines.append(self._unmapped_line())
        return lines

    def changed(self, stream: str, ident: str, what: str) -> None:
        """A record Leanpay holds that changed in the source: what a real run would do
        about it (updates.py), listed in the report."""
        with self._lock:
            self._changes.setdefault(stream, []).append(f"{ident}: {what}")

    @staticmethod
    def _change_lines(changes: list[str]) -> list[str]:
        """The differences, in input order, the first MAX_CHANGES of them."""
        lines = [f"    {change}" for change in changes[:MAX_CHANGES]]
        if len(changes) > MAX_CHANGES:
            lines.append(f"    … and {len(changes) - MAX_CHANGES} more changed records")
        return lines

    @staticmethod
    def _reason_lines(reasons: dict[str, _Reason]) -> list[str]:
        """Every reason, most frequent first, each with its first records."""
        ranked = sorted(reasons.items(), key=lambda kv: -kv[1].count)  # stable: first seen
        lines = []
        for kind, reason in ranked[:MAX_REASONS]:
            lines.append(f"    {reason.count} x {kind}")
            lines.append(f"        e.g. {'; '.join(reason.examples)}")
        rest = ranked[MAX_REASONS:]
        if rest:
            problems = sum(reason.count for _, reason in rest)
            lines.append(
                f"    … and {plural(len(rest), 'other reason')} ({plural(problems, 'problem')})"
            )
        return lines

    def _unmapped_line(self) -> str:
        """The client codes no mapping names, most frequent first: what to add."""
        ranked = sorted(self._unmapped.items(), key=lambda kv: (-kv[1], kv[0]))
        listed = ", ".join(
            f"{show(code)} ({plural(count, 'record')})" for code, count in ranked[:MAX_CLIENT_CODES]
        )
        more = len(ranked) - MAX_CLIENT_CODES
        if more > 0:
            listed += f" and {more} more"
        return (
            f"{plural(len(ranked), 'client code')} with no Leanpay id in client_ids / "
            f"client_ids_file: {listed}"
        )

    def verdict(self, streams: dict[str, StreamStats], requests: int, path: str) -> str:
        """The one line a user acts on, first in the plan's end; it names the requests file.

        Nothing *new* to send (every record already in Leanpay, changed but not updatable,
        or set aside: a scheduled tap's usual second run, which exits 0) is told apart from
        nothing that *could* be sent (every record rejected: something to fix).
        """
        send = sum(s.acknowledged for s in streams.values())
        present = sum(s.already_present - s.repeated for s in streams.values())
        repeated = sum(s.repeated for s in streams.values())
        rejected = sum(s.rejected for s in streams.values())
        updated = sum(s.updated for s in streams.values())
        changed = sum(s.changed for s in streams.values())
        held = f"; {present} already in Leanpay" if present else ""
        if changed:
            held += f"; {changed} changed but cannot be updated (listed below)"
        updates = f" and {plural(updated, 'update')}" if updated else ""
        sending = f"{plural(send, 'record')}{updates} in {plural(requests, 'request')}"
        if rejected and not (send or updated or present or repeated or changed):
            return (
                f"NOT READY: no record could be sent ({plural(rejected, 'rejected record')}); "
                f"fix the reasons below. The requests file {path} is empty"
            )
        if rejected and self.dead_letter_path is None:
            first = self._first_rejected
            where = f" (the first: stream '{first.stream}', {first.ident})" if first else ""
            return (
                f"NOT READY: a real run would stop at the first of "
                f"{plural(rejected, 'rejected record')}{where}; fix them, or set "
                f"dead_letter_path to set them aside. The requests file {path} holds the "
                f"other {sending}"
            )
        if not send and not updated:
            where = _nothing_new(present, repeated, changed, rejected, self.dead_letter_path)
            return (
                f"NOTHING NEW TO SEND: {where}; a real run would send nothing and exit 0. "
                f"The requests file {path} is empty"
            )
        if rejected:
            return (
                f"READY WITH REJECTIONS: a real run would send {sending}{held} and set "
                f"{rejected} aside in {self.dead_letter_path}; the requests are written to "
                f"{path}"
            )
        return f"READY: a real run would send {sending}{held}; they are written to {path}"


def _nothing_new(
    present: int, repeated: int, changed: int, rejected: int, dead_letter_path: str | None
) -> str:
    """Where every record of a plan with nothing new to send goes, the counts beside."""
    outcomes = [
        (present, f"already in Leanpay ({present})"),
        (repeated, f"repeating an earlier record of the input ({repeated})"),
        (changed, f"changed but cannot be updated ({changed}, listed below)"),
        (rejected, f"would be set aside ({rejected}, in {dead_letter_path})"),
    ]
    named = [outcome for count, outcome in outcomes if count]
    if not named:
        return "the input holds no record"
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} or {named[-1]}"
    return f"every record is {listed}"
