"""Reading Singer messages: the SDK's msgspec reader, plus line numbers and safe stops.

`NumberedReader` is singer-sdk's `MsgSpecReader` (JSON numbers with a fraction become
`Decimal`, so money never becomes a float) with two methods replaced: `deserialize_json`
counts lines and refuses a malformed one in a paragraph naming it (the SDK's logs the
whole line with a traceback and raises a bare "Unable to parse"); `process_lines` reads
the input on a thread of its own (`_Blocks`) and waits for it with a timeout, so that a
slow tap's partial batch goes out `batch_wait_limit_seconds` after its first record
(`due`), and so that the wait is where a signal may stop the reading safely.

A line msgspec refuses only for a lone UTF-16 surrogate escape (`"x\\ud800y"`, valid
JSON that Python's json reads) is read with Python's json: one record that cannot be
sent, rejected by the mapping like any other bad value, not input that stops the run.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import IO, Any

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.contrib.msgspec import decoder as sdk_decoder
from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_leanpay.leanpay.errors import InputError, TargetLeanpayError, quote
from target_leanpay.source.interrupt import Interrupt

KNOWN_TYPES = frozenset({"RECORD", "SCHEMA", "STATE", "ACTIVATE_VERSION", "BATCH"})

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
"""A JSON escape of a UTF-16 surrogate (paired ones are fine for msgspec, lone ones not)."""


_END: list[Any] = []
"""What `_Blocks` hands over at the end of the input (every other block holds a line)."""
BLOCK_BYTES = 1 << 16
BLOCKS_AHEAD = 16
"""Blocks read ahead of the reading thread at most: memory stays flat whatever the input."""


def _nothing_due() -> float | None:
    """No partial batch waits for a deadline."""
    return None


class NumberedReader(MsgSpecReader):
    """A Singer reader that knows which input line it is on."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.interrupt = Interrupt()
        self.due: Callable[[], float | None] = _nothing_due
        """Sends what is due and returns the seconds until the next partial batch is due
        (None: none waits); called between blocks and when the input has been silent that
        long. The target sets it."""

    def process_lines(
        self,
        file_input: IO[str] | None,
        callbacks: dict[str, Callable[[dict[str, Any]], None]],
    ) -> Counter[str]:
        """Dispatch every line; turn malformed input into an `InputError` naming the line."""
        interrupt = self.interrupt
        counts: Counter[str] = Counter()
        decode = self.deserialize_json
        blocks = _Blocks(file_input)
        wait: float | None = None
        try:
            while True:
                interrupt.waiting = True  # the blocking wait: a signal may cut it short
                interrupt.check()
                block = blocks.next(wait)
                interrupt.waiting = False
                if block is None:  # silent for `wait` seconds: a partial batch is due
                    wait = self.due()
                    continue
                if not block:  # _END
                    break
                for line in block:
                    message = decode(line)
                    if message is None:
                        continue
                    kind = message["type"]
                    callbacks[kind](message)
                    counts[kind] += 1
                wait = self.due()
        except (InvalidInputLine, RecordsWithoutSchemaException) as exc:
            if isinstance(exc, TargetLeanpayError):
                raise
            raise InputError(f"Input line {self.line_number}: {quote(str(exc))}") from exc
        finally:
            interrupt.waiting = False
        return counts

    def deserialize_json(self, line: str | bytes) -> dict[str, Any] | None:  # type: ignore[override]
        """Decode one line; None for a blank one; refuse anything that is not a JSON object
        with a known type."""
        self.line_number += 1
        try:
            message = sdk_decoder.decode(line)
        except RecursionError:
            raise InputError(
                f"Input line {self.line_number} nests objects or arrays too deeply to be read "
                f"(Python's limit is about {sys.getrecursionlimit()} levels): {_excerpt(line)}"
            ) from None
        except msgspec.DecodeError as exc:
            if not line.strip():
                return None
            message = _with_lone_surrogates(line)
            if message is None:
                raise InputError(
                    f"Input line {self.line_number} is not valid JSON ({exc}): {_excerpt(line)}"
                ) from None
        if not isinstance(message, dict):
            raise InputError(
                f"Input line {self.line_number} is not a JSON object: {_excerpt(line)}"
            )
        kind = message.get("type")
        if kind not in KNOWN_TYPES:
            raise InputError(
                f"Input line {self.line_number} has an unknown message type "
                f"{quote(repr(kind), 80)}; "
                f"a Singer tap sends only {', '.join(sorted(KNOWN_TYPES))}"
            )
        return message


class _Blocks:
    """The input's lines, a block at a time, read by a thread of its own.

    stdin is read with `os.read` (whatever the pipe holds, up to 64 KiB) and cut into
    lines; a line split between two reads is joined. Another input (a file object given
    to `listen`, as tests do) is handed over line by line.
    """

    def __init__(self, file_input: IO[str] | IO[bytes] | None) -> None:
        self._queue: queue.Queue[list[Any] | BaseException] = queue.Queue(BLOCKS_AHEAD)
        source = self._stdin if file_input is None else partial(self._lines, file_input)
        feeder = threading.Thread(target=self._feed, args=(source,), name="leanpay-stdin")
        feeder.daemon = True  # it may be parked on a read when the run exits
        feeder.start()

    def next(self, timeout: float | None) -> list[Any] | None:
        """The next block of lines, `_END`, or None when nothing came for `timeout` s."""
        try:
            block = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(block, BaseException):
            raise block
        return block

    def _feed(self, source: Callable[[], Iterator[list[Any]]]) -> None:
        put = self._queue.put
        try:
            for block in source():
                put(block)
            put(_END)
        except BaseException as failure:  # raised in the reading thread by `next`
            put(failure)

    @staticmethod
    def _stdin() -> Iterator[list[bytes]]:
        if sys.stdin is None:  # closed (`<&-`): an empty input
            return
        yield from split_lines(partial(os.read, sys.stdin.fileno(), BLOCK_BYTES))

    @staticmethod
    def _lines(file_input: IO[str] | IO[bytes]) -> Iterator[list[Any]]:
        for line in file_input:  # a line to a block: the next one may be long in coming
            yield [line]


def split_lines(read: Callable[[], bytes]) -> Iterator[list[bytes]]:
    """The lines of what `read` returns (b"" at the end), a block per read that ends one.

    Each byte is scanned once and copied once: a line longer than a read is kept as the
    list of its pieces and joined when its newline comes, so a 60 MB line costs four times
    a 15 MB one (joining what is left over to every read would cost sixteen times).
    """
    pieces: list[bytes] = []  # the start of a line no read has ended yet
    while data := read():
        lines = data.split(b"\n")
        if len(lines) == 1:
            pieces.append(data)
            continue
        if pieces:
            pieces.append(lines[0])
            lines[0] = b"".join(pieces)
            pieces = []
        if last := lines.pop():
            pieces.append(last)
        yield lines
    if pieces:
        yield [b"".join(pieces)]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _with_lone_surrogates(line: str | bytes) -> Any:
    """The line read by Python's json, if it holds a surrogate escape and reads; else None.

    Numbers are read as msgspec reads them (fractions as Decimal); NaN and Infinity,
    which Python's json accepts and JSON does not, are still refused.
    """
    raw = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    if _SURROGATE_ESCAPE.search(raw) is None:
        return None
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        return None


def _excerpt(line: str | bytes) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return quote(text, 120)
