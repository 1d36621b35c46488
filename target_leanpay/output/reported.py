"""Reported: the problems earlier runs already wrote to the dead-letter file.

A full-table tap sends every row on every run, so the records that were set aside (or
reported as changed, not updatable) come back every hour with the same contents and
the same reason. Written again, they bury what is new. So each problem written to the
dead-letter file is remembered in a sidecar beside it (`<dead_letter_path>.reported`,
JSON lines), keyed by a digest of (stream, record key, reason, contents), with the
time of the run that first reported it; a later run meeting the same key writes no line
and no WARNING, and counts it in one summary line instead. A new problem, or new
contents (a digest of the record without the tap's `_sdc_*` metadata), is reported in
full.

* **Beside the file, checked against it.** Each entry names where its line lies in the
  dead-letter file (offset, size, a digest of the line). At start every entry is checked
  against the file: an entry whose line is gone (the file deleted, emptied, rotated or
  edited) is dropped, so that a record is never hidden once its line cannot be read.
* **Durable like the dead letters.** Entries are appended and fsync'd just after their
  lines (which are fsync'd before the STATE that covers them): a crash between the two
  costs a line written twice, never a problem hidden without its line. A sidecar that
  cannot be written costs a warning; the next run reports those problems again.
* **Bounded, and when entries leave.** A run that ends well (input read to its end, exit
  0) keeps only the entries it met again, wrote, or that belong to streams it did not
  read: a problem not met again by a run that read its stream was fixed, loaded, or is
  no longer sent, and if it ever comes back it is reported in full. So the sidecar holds
  at most the problems of the last complete run of each stream (plus, until the run
  ends, the current run's). A run that fails or is stopped only adds.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from target_leanpay.store.receipts import replace_durably

logger = logging.getLogger("target-leanpay")

SUFFIX = ".reported"
"""The sidecar of `rejected.jsonl` is `rejected.jsonl.reported`."""


def sidecar_of(dead_letter_path: str) -> Path:
    """Where the memory of `dead_letter_path` lives."""
    return Path(dead_letter_path + SUFFIX)


def digest(data: bytes) -> str:
    """A short, collision-safe name for some bytes (128 bits of SHA-256)."""
    return hashlib.sha256(data).hexdigest()[:32]


def problem_key(
    stream: str, record_key: str, reason: str, record: dict[str, Any], encode: Callable[[Any], Any]
) -> str:
    """The digest one problem is remembered by: its stream, the record's key, the reason
    and the record's contents (without the tap's `_sdc_*` metadata, which changes on
    every run). `encode`: turns values JSON cannot hold (Decimal, dates) into text."""
    contents = {k: v for k, v in record.items() if not str(k).startswith("_sdc_")}
    text = json.dumps(
        [stream, record_key, reason, contents], default=encode, sort_keys=True, ensure_ascii=True
    )
    return digest(text.encode("ascii"))


@dataclass(frozen=True)
class Entry:
    """One problem written to the dead-letter file, and where its line is."""

    key: str
    stream: str
    first: str
    """When it was first reported: the start of that run (UTC, ISO 8601)."""
    at: int
    """The offset of its line in the dead-letter file."""
    size: int
    line: str
    """A digest of that line (newline excluded)."""


@dataclass(frozen=True)
class Written:
    """A line just written to the dead-letter file, for the memory to learn."""

    key: str
    stream: str
    at: int
    line: bytes


class Reported:
    """The memory of one dead-letter file; safe to share between threads."""

    def __init__(self, dead_letter_path: str, *, run_started: str) -> None:
        """Read the sidecar and keep the entries whose lines the file still holds."""
        self._dead_letters = Path(dead_letter_path)
        self.path = sidecar_of(dead_letter_path)
        self._run_started = run_started
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._met: set[str] = set()
        self._mine: set[str] = set()  # written by this run: a repeat within it is reported
        self._working = True
        loaded, dirty = self._load()
        self._entries = {e.key: e for e in loaded}
        if dirty:
            self._rewrite(self._entries.values())

    def earlier(self, key: str) -> Entry | None:
        """The entry of a problem an earlier run reported (and noted as met again now),
        or None: a problem to report in full."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and key not in self._mine:
                self._met.add(key)
                return entry
        return None

    def written(self, lines: Iterable[Written]) -> None:
        """These lines are on disk (fsync'd): remember their problems, durably."""
        entries = [
            Entry(w.key, w.stream, self._run_started, w.at, len(w.line), digest(w.line))
            for w in lines
        ]
        with self._lock:
            if not entries or not self._working:
                return
            for entry in entries:
                self._entries.setdefault(entry.key, entry)
                self._met.add(entry.key)
                self._mine.add(entry.key)
            try:
                with open(self.path, "a", encoding="utf-8") as sidecar:
                    sidecar.write("".join(_encode(e) for e in entries))
                    sidecar.flush()
                    os.fsync(sidecar.fileno())
            except OSError as exc:
                self._failed(exc)

    def forget_unmet(self, streams_read: Iterable[str]) -> None:
        """The run ended well: of the streams it read, keep only the problems it met."""
        read = set(streams_read)
        with self._lock:
            kept = {
                k: e for k, e in self._entries.items() if k in self._met or e.stream not in read
            }
            if len(kept) == len(self._entries) or not self._working:
                return
            self._entries = kept
            self._rewrite(kept.values())

    def _load(self) -> tuple[list[Entry], bool]:
        """The entries whose lines are still in the dead-letter file; whether any line of
        the sidecar was dropped (then it is rewritten)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], False
        except OSError as exc:
            self._failed(exc)
            return [], False
        entries, dirty = [], False
        try:
            dead_letters = open(self._dead_letters, "rb")  # noqa: SIM115 - closed below
        except OSError:
            return [], bool(raw)  # no file, no memory: every problem is reported again
        with dead_letters:
            for text in raw.splitlines():
                entry = _decode(text)
                if entry is None or not _still_there(dead_letters, entry):
                    dirty = True
                    continue
                entries.append(entry)
        return entries, dirty

    def _rewrite(self, entries: Iterable[Entry]) -> None:
        """Replace the sidecar whole and durably (`replace_durably`)."""
        try:
            replace_durably(str(self.path), "".join(_encode(e) for e in entries).encode())
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        """Without a sidecar the run goes on; the next run reports everything again."""
        if self._working:
            logger.warning(
                "Cannot write %s (%s): the problems of this run will be reported in full "
                "again by the next run",
                self.path,
                exc.strerror,
            )
        self._working = False


def _encode(entry: Entry) -> str:
    return json.dumps(asdict(entry), separators=(",", ":")) + "\n"


def _decode(text: bytes) -> Entry | None:
    """An entry, or None for a torn or foreign line."""
    try:
        return Entry(**json.loads(text))
    except (ValueError, TypeError):
        return None


def _still_there(dead_letters: Any, entry: Entry) -> bool:
    """Whether the dead-letter file still holds the entry's line where it was written."""
    if entry.at < 0 or entry.size <= 0:
        return False
    dead_letters.seek(entry.at)
    line = dead_letters.read(entry.size + 1)
    return bool(line[-1:] == b"\n" and digest(line[:-1]) == entry.line)


def since(firsts: Iterable[str]) -> str:
    """The earliest of some `Entry.first`, to the minute: `2026-12-03T09:00Z`."""
    first = min(datetime.datetime.fromisoformat(text) for text in firsts)
    return first.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")
