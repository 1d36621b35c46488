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
import threading
from collections.abc import Callable, Iterable
from typing import Any

State = dict[str, Any]


def _nothing_to_sync() -> None:
    """Nothing was set aside in a file that a STATE must wait for."""


class Checkpoints:
    """Tracks open records and writes the newest STATE none of them holds back."""

    def __init__(
        self, write: Callable[[State], None], *, make_durable: Callable[[], None] = _nothing_to_sync
    ) -> None:
        """`write`: puts a STATE on its way (`StateOutput.put`); `make_durable`: called just
        before, so that what settled records by being set aside (the dead-letter file) is on
        disk before a STATE moves past them."""
        self._write = write
        self._make_durable = make_durable
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
        """Write nothing more (the process is stopping). Takes no lock: a thread that holds
        it may be stuck, and the exit must not wait for it."""
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
        self._make_durable()
        self._write(newest)
        self._last_written = newest
