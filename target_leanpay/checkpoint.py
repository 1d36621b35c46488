"""Checkpoints: STATE goes to stdout only behind data that is safe.

Every record that will be sent gets a sequence number when it is read. A STATE message
covers every record read before it, so it may be written once each of those records is
*settled*: acknowledged by Leanpay, found already present, or written to the dead-letter
file. Settling happens out of order (several requests in flight, several streams); the
newest STATE whose records are all settled is written as soon as the last of them
settles, and older ones are skipped. A record that never settles (its request failed)
holds back every later STATE, so stdout never runs ahead of the data.

Memory is bounded by the records in flight, not by the input: only open sequence
numbers and the STATE messages waiting behind them are kept.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from target_leanpay.errors import OutputClosed

State = dict[str, Any]


_encode = msgspec.json.Encoder(decimal_format="number").encode
"""The reader turns JSON numbers with a fraction into Decimal: write them back as numbers."""


def write_to_stdout(state: State) -> None:
    """Write one STATE line; stdout is the STATE channel and nothing else goes there.

    If the reader of stdout has gone (`target-leanpay ... | head -c 10`), no STATE can be
    kept any more: stdout is pointed at /dev/null (so that no later flush fails again)
    and the run stops with `OutputClosed`.
    """
    try:
        sys.stdout.write(encode_state(state) + "\n")
        sys.stdout.flush()
    except OSError as exc:
        if exc.errno not in (errno.EPIPE, errno.EBADF, errno.ECONNRESET):
            raise
        _discard_stdout()
        raise OutputClosed(
            "stdout was closed by the program reading it, so STATE can no longer be "
            "written; the run stops. Records Leanpay acknowledged stay loaded; run the tap "
            "again from its last saved STATE (replay safety skips what is already loaded)."
        ) from None


def _discard_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's StringIO): nothing to do
        pass


def encode_state(state: State) -> str:
    """STATE as one JSON line, exactly as the tap sent it.

    msgspec cannot encode a string holding a lone surrogate (Python's json reads one from
    `"\\ud800"`); such strings are written as JSON escapes instead, so the tap reads back
    the very same value.
    """
    try:
        return _encode(state).decode()
    except UnicodeEncodeError:
        literals: dict[str, str] = {}
        text = _encode(_with_placeholders(state, literals)).decode()
        for placeholder, literal in literals.items():
            text = text.replace(f'"{placeholder}"', literal)
        return text


def _with_placeholders(value: Any, literals: dict[str, str]) -> Any:
    """`value` with each unencodable string swapped for a unique ASCII placeholder."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            placeholder = f"target-leanpay-escaped-{uuid.uuid4().hex}"
            literals[placeholder] = json.dumps(value)  # ASCII, with \uXXXX escapes
            return placeholder
        return value
    if isinstance(value, dict):
        return {
            _with_placeholders(k, literals): _with_placeholders(v, literals)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_with_placeholders(item, literals) for item in value]
    return value


class Checkpoints:
    """Tracks open records and writes the newest STATE none of them holds back."""

    def __init__(self, write: Callable[[State], None] = write_to_stdout) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._next_seq = 0
        self._open: set[int] = set()
        self._low = 0  # every seq below this is settled
        self._waiting: collections.deque[tuple[int, State]] = collections.deque()
        self._last_written: State | None = None
        self._closed = False

    def open(self) -> int:
        """A record will be sent: reserve its place in the order."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            self._open.add(seq)
            return seq

    def settle(self, seqs: Iterable[int]) -> None:
        """These records are safe (acknowledged, present, or dead-lettered)."""
        with self._lock:
            self._open.difference_update(seqs)
            self._advance()

    def state_received(self, state: State) -> None:
        """The tap sent STATE: it covers every record opened so far."""
        with self._lock:
            self._waiting.append((self._next_seq, state))
            self._advance()

    def close(self) -> None:
        """Write nothing more (the process is stopping); waits for a write in progress."""
        with self._lock:
            self._closed = True

    @property
    def open_count(self) -> int:
        """Records read but not yet settled."""
        with self._lock:
            return len(self._open)

    @property
    def waiting_count(self) -> int:
        """STATE messages held back by unsettled records."""
        with self._lock:
            return len(self._waiting)

    def _advance(self) -> None:
        while self._low < self._next_seq and self._low not in self._open:
            self._low += 1
        newest: State | None = None
        while self._waiting and self._waiting[0][0] <= self._low:
            newest = self._waiting.popleft()[1]
        if newest is None or self._closed or newest == self._last_written:
            return
        self._write(newest)
        self._last_written = newest
