"""Rejected records: into the dead-letter file, or the end of the run.

With `dead_letter_path` set, each rejected record becomes one JSON line (its run:
`runmark.py`, stream, record, payload, reasons, what the API said) and counts as
settled, so STATE may move past it; up to `WARN_LIMIT` per run are also logged one by
one. Without it, the first rejection stops the run with a message that names the
stream, the record and the field.

Lines wait in memory (the rejections between two STATEs) until the run writes a STATE,
just before which they are written, or ends well. A run that fails or is stopped drops
the lines still waiting: no STATE covered their records, so the run that resumes sets
them aside itself, and a re-run adds each rejection once. The exception is a run stopped
by `max_rejections`: its rejections are the reason it failed, and they are all written.
A problem an earlier run already wrote is not written again (`reported.py`); a dry
run's file is its own, emptied at each start, and a plan writes nothing.
"""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from target_leanpay.leanpay.errors import DeadLetterError, RejectedRecord, TooManyRejections, quote
from target_leanpay.output.progress import plural
from target_leanpay.output.reported import Reported, Written, problem_key, since
from target_leanpay.output.runmark import RunMark
from target_leanpay.records.mapping import Problem, Reference
from target_leanpay.records.values import encodable

logger = logging.getLogger("target-leanpay")

WARN_LIMIT = 20
"""Rejected records logged one by one per run; the rest are counted in the summary."""


@dataclass(frozen=True)
class RejectedItem:
    """Everything a human needs to fix and replay one record."""

    stream: str
    ident: str
    record: dict[str, Any]
    payload: dict[str, Any] | None
    problems: tuple[Problem, ...]
    http_status: int | None = None
    api_message: str | None = None

    def describe(self) -> str:
        """One paragraph: stream, record, fields, reasons, and what the API said."""
        reasons = "; ".join(f"{p.field}: {p.reason}" for p in self.problems)
        text = f"stream '{self.stream}', record {self.ident}: {reasons}"
        if self.http_status is not None:
            text += f" (Leanpay answered HTTP {self.http_status}: {quote(self.api_message or '')})"
        return text

    def headline(self) -> str:
        """One short line: stream, record and the first reason."""
        first = self.problems[0] if self.problems else Problem("(item)", "rejected")
        more = len(self.problems) - 1
        text = f"stream '{self.stream}', record {self.ident}: {first.field}: {first.reason}"
        if more:
            text += f" (and {plural(more, 'more problem')})"
        if self.http_status is not None:
            text += f" (Leanpay answered HTTP {self.http_status})"
        return text


def _json_default(value: Any) -> Any:
    """Keep the source's exact values: Decimal and dates as their text; a reference by
    externalId that could not be resolved as what it names."""
    if isinstance(value, decimal.Decimal | datetime.date | datetime.datetime):
        return str(value) if isinstance(value, decimal.Decimal) else value.isoformat()
    if isinstance(value, Reference):
        return {"resource": value.resource, "externalId": value.external_id}
    return repr(value)


class DeadLetters:
    """Writes rejected records, or raises when there is nowhere to write them."""

    def __init__(
        self,
        path: str | None,
        max_rejections: int | None,
        *,
        dry_run: bool = False,
        counted_by: Callable[[RejectedItem], None] | None = None,
        run: RunMark | None = None,
        fresh: bool = False,
    ) -> None:
        """`dry_run`: messages speak of what a real run would do, not of STATE.
        `counted_by`: a plan's tally, which takes every rejection instead (no file is
        written, and the run does not stop). `run`: the mark of the lines (a new one
        when None). `fresh`: the file is emptied now (a dry run's own file, which holds
        the last dry run only) instead of appended to."""
        self.path = path
        self.max_rejections = max_rejections
        self.dry_run = dry_run
        self._counted_by = counted_by
        self._run = run or RunMark.new()
        self.count = 0
        """Records rejected by this run (written or waiting)."""
        self.changed_count = 0
        """Records changed in the source that Leanpay cannot update (`changed`)."""
        self.repeated = {"rejected": 0, "changed": 0}
        """Of those, the problems an earlier run wrote: not written again, counted in the
        summary (`still_set_aside`)."""
        self._repeated_since: str | None = None  # the earliest first report among them
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._waiting: list[_Line] = []
        self._waiting_changed = 0  # of the lines waiting, those of `changed`
        self._reported: Reported | None = None
        if fresh and path is not None and counted_by is None:
            with self._lock:
                self._open("wb")
        elif path is not None and counted_by is None:
            self._reported = Reported(path, run_started=self._run.started)

    def reject(self, item: RejectedItem) -> None:
        """Record `item` as rejected; raise if the run must stop because of it."""
        if self._counted_by is not None:
            self._counted_by(item)
            return
        if self.path is None:
            if self.dry_run:
                fate = "A real run would not send it either"
            else:
                fate = "Leanpay refused it" if item.http_status is not None else "It was not sent"
                fate += ", and STATE stops before it"
            raise RejectedRecord(
                f"Rejected {item.describe()}. {fate}. Fix the record, or set "
                "dead_letter_path to set such records aside and load the rest."
            )
        key = self._already_reported(item, changed=False)
        line = None if key is None else _Line(self._line(item), key, item.stream)
        with self._lock:
            self.count += 1
            count = self.count
            if line is not None:
                self._waiting.append(line)
            new = count - self.repeated["rejected"]
        if key is not None and new <= WARN_LIMIT:
            logger.warning("Rejected %s; set aside in %s", item.headline(), self.path)
        if self.max_rejections is not None and count > self.max_rejections:
            self.commit()  # the reason the run fails: the user reads them there
            raise TooManyRejections(
                f"{count} records were rejected, more than max_rejections "
                f"({self.max_rejections}); the last: {item.describe()}. "
                f"All of them are in {self.path}."
            )

    def changed(self, item: RejectedItem, changes: list[dict[str, Any]]) -> None:
        """A record that changed in the source, which Leanpay's API cannot update
        (updates.py): a WARNING (up to WARN_LIMIT per run) and, with a file, a line with
        both values (`changes`: field, leanpay, source) and the reason. Not a rejection:
        it never counts towards max_rejections and never stops the run; a plan lists it
        in its report instead."""
        if self._counted_by is not None:
            return
        key = self._already_reported(item, changed=True)
        with self._lock:
            self.changed_count += 1
            new = self.changed_count - self.repeated["changed"]
        if key is None:
            return  # written by an earlier run: counted in the summary only
        if new <= WARN_LIMIT:
            reasons = "; ".join(p.reason for p in item.problems)
            where = f" (noted in {self.path})" if self.path is not None else ""
            logger.warning(
                "Not updated: stream '%s', record %s: %s%s", item.stream, item.ident, reasons, where
            )
        if self.path is None:
            return
        line = self._line(item, outcome="changed, not updatable", changes=changes)
        with self._lock:
            self._waiting.append(_Line(line, key, item.stream))
            self._waiting_changed += 1

    def _already_reported(self, item: RejectedItem, *, changed: bool) -> str | None:
        """The key to remember `item`'s problem by, or None when an earlier run wrote it
        (then it is counted in `repeated`, and written nowhere)."""
        if self._reported is None:
            return ""
        outcome = "changed, not updatable" if changed else "rejected"
        reasons = "; ".join(
            f"{p.field}: {_ITEM_PATH.sub(_ANY_ITEM, p.reason)}" for p in item.problems
        )
        reason = f"{outcome}: {reasons} (HTTP {item.http_status})"
        key = problem_key(item.stream, _record_key(item), reason, item.record, _json_default)
        earlier = self._reported.earlier(key)
        if earlier is None:
            return key
        with self._lock:
            self.repeated["changed" if changed else "rejected"] += 1
            if self._repeated_since is None or earlier.first < self._repeated_since:
                self._repeated_since = earlier.first  # one format (RunMark): text order
        return None

    def _line(self, item: RejectedItem, **outcome: Any) -> str:
        """One line of the file: the run, the record, what happened to it and why; readable
        text where it can be, JSON escapes where it must (a lone surrogate)."""
        entry = {
            "run_id": self._run.id,
            "run_started": self._run.started,
            "stream": item.stream,
            "record_id": item.ident,
            "record": item.record,
            "payload": item.payload,
            **outcome,
            "reasons": [{"field": p.field, "reason": p.reason} for p in item.problems],
            "http_status": item.http_status,
            "api_message": item.api_message,
            "rejected_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        line = json.dumps(entry, default=_json_default, ensure_ascii=False)
        if not encodable(line):
            line = json.dumps(entry, default=_json_default, ensure_ascii=True)
        return line

    def commit(self) -> None:
        """Write the waiting lines and put them on disk (fsync): a STATE covering their
        records is about to be written (or the run ends well), and after a crash they must
        still be here. One write and one fsync per STATE, however many lines. Raises
        `DeadLetterError` if the file cannot take them: that STATE must not be written
        then."""
        with self._lock:
            if not self._waiting:
                return
            try:
                if self._file is None:
                    self._open("ab")
                assert self._file is not None
                at = self._file.seek(0, os.SEEK_END)
                lines = [waiting.text.encode("utf-8") for waiting in self._waiting]
                self._file.write(b"".join(line + b"\n" for line in lines))
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise DeadLetterError(
                    f"Cannot write the dead-letter file {self.path} ({exc.strerror}); "
                    f"the {len(self._waiting)} rejected records waiting for it stay unsettled"
                ) from None
            written = []
            for waiting, line in zip(self._waiting, lines, strict=True):
                if waiting.key:
                    written.append(Written(waiting.key, waiting.stream, at, line))
                at += len(line) + 1
            self._waiting.clear()
            self._waiting_changed = 0
            if self._reported is not None:  # after the lines are on disk, never before
                self._reported.written(written)

    def _open(self, mode: str) -> None:
        assert self.path is not None
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, mode)  # noqa: SIM115 - close()
        except OSError as exc:
            raise DeadLetterError(
                f"Cannot open the dead-letter file {self.path} ({exc.strerror})"
            ) from None

    def log_summary(self) -> None:
        """The end of the run: how many records were set aside, and where; at a failure,
        how many will not be (no STATE covered them: the next run reads them again)."""
        with self._lock:
            waiting = len(self._waiting) - self._waiting_changed
            new = self.count - self.repeated["rejected"]
            new_changed = self.changed_count - self.repeated["changed"]
            repeated, first = dict(self.repeated), self._repeated_since
        written = new - waiting
        if new > WARN_LIMIT:
            where = "" if waiting else f", all in {self.path}"
            logger.warning("… %d more rejected records%s", new - WARN_LIMIT, where)
        if new_changed > WARN_LIMIT:
            more = new_changed - WARN_LIMIT
            where = "" if self.path is None else f" (see {self.path})"
            logger.warning("… %d more records changed in the source, not updatable%s", more, where)
        if written:
            logger.warning(
                "Summary: %s set aside in the dead-letter file %s",
                plural(written, "rejected record"),
                self.path,
            )
        if waiting:
            them = "it" if waiting == 1 else "them"
            logger.warning(
                "Summary: %s of this run not written to %s: the run stopped before a STATE "
                "covered %s, so the run that resumes reads %s again",
                plural(waiting, "rejected record"),
                self.path,
                them,
                them,
            )
        if first is not None:
            logger.warning("Summary: %s", still_set_aside(repeated, first, self.path))

    def close(self, *, keep_waiting: bool = True, streams_read: Iterable[str] = ()) -> None:
        """Write the waiting lines (the run ended well), or drop them (it failed or was
        stopped: no STATE covers them), then close the file. `streams_read`: the streams
        a run that ended well read; the memory forgets their problems it did not meet
        again (reported.py)."""
        if keep_waiting:
            self.commit()
            if self._reported is not None:
                self._reported.forget_unmet(streams_read)
        with self._lock:
            self._waiting.clear()
            self._waiting_changed = 0
            if self._file is not None:
                self._file.close()
                self._file = None


@dataclass(frozen=True, slots=True)
class _Line:
    """A line waiting for the next STATE, and the problem the memory keeps it under ("":
    none, the run has no memory)."""

    text: str
    key: str
    stream: str


_ITEM_PATH = re.compile(r"^(\w+)(?:\.|\[)\d+\]?")
"""`invoices.3.amount …`: Leanpay names an item by its place in the batch, which another
run's batch may change; the memory keys it as `invoices.*.amount …`."""
_ANY_ITEM = r"\1.*"
_LINE_OF = re.compile(r"\s*\(?(?:at )?input line .*$")


def _record_key(item: RejectedItem) -> str:
    """The record's own key: its externalId, else its key properties (its line number,
    which a re-sent input may shift, left out: the contents digest tells records apart)."""
    external_id = item.record.get("externalId", item.record.get("external_id"))
    if external_id not in (None, ""):
        return f"externalId {external_id}"
    return _LINE_OF.sub("", item.ident)


def still_set_aside(repeated: dict[str, int], first: str, path: str | None) -> str:
    """`11 records still set aside, unchanged since 2026-12-03T09:00Z (8 rejected, 3
    changed, not updatable); see the dead-letter file rejected.jsonl`: the problems an
    earlier run wrote (`repeated`: rejected, changed), first reported at `first`."""
    rejected, changed = repeated["rejected"], repeated["changed"]
    parts = [f"{rejected} rejected"] if rejected else []
    parts += [f"{changed} changed, not updatable"] if changed else []
    count = rejected + changed
    return (
        f"{plural(count, 'record')} still set aside, unchanged since "
        f"{since([first])} ({', '.join(parts)}); see the dead-letter file {path}"
    )
