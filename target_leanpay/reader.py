"""Reading Singer messages: the SDK's msgspec reader, plus line numbers and safe stops.

`NumberedReader` is singer-sdk's `MsgSpecReader` (the SDK's own msgspec decoder: JSON
numbers with a fraction become `Decimal`, so money never becomes a float) with two
methods replaced, each for a reason the SDK's cannot serve:

* `deserialize_json`: the SDK's logs the whole line with a traceback and raises a bare
  "Unable to parse"; ours counts lines and raises one paragraph naming the line, and
  refuses what is not a Singer message (not an object, an unknown type) the same way;
* `process_lines`: the SDK's loop has no place where a signal may stop it safely; ours
  marks the blocking read as the place (`interrupt.py`) and reads stdin as bytes (no
  text decoding before msgspec).

A line msgspec refuses only because a string holds a lone UTF-16 surrogate escape
(`"x\\ud800y"`, valid JSON that Python's json reads) is read with Python's json instead:
it is one record that cannot be sent, rejected by the mapping like any other bad value,
not malformed input that stops the run.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import IO, Any

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.contrib.msgspec import decoder as sdk_decoder
from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_leanpay.errors import InputError, TargetLeanpayError, quote
from target_leanpay.interrupt import Interrupt

KNOWN_TYPES = frozenset({"RECORD", "SCHEMA", "STATE", "ACTIVATE_VERSION", "BATCH"})

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
"""A JSON escape of a UTF-16 surrogate (paired ones are fine for msgspec, lone ones not)."""


class NumberedReader(MsgSpecReader):
    """A Singer reader that knows which input line it is on."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0
        self.interrupt = Interrupt()

    def process_lines(
        self,
        file_input: IO[str] | None,
        callbacks: dict[str, Callable[[dict[str, Any]], None]],
    ) -> Counter[str]:
        """Dispatch every line; turn malformed input into an `InputError` naming the line."""
        lines: Iterable[str | bytes] = file_input if file_input is not None else sys.stdin.buffer
        next_line = iter(lines).__next__
        interrupt = self.interrupt
        counts: Counter[str] = Counter()
        try:
            while True:
                interrupt.waiting = True  # the blocking read: a signal may cut it short
                interrupt.check()
                try:
                    line = next_line()
                except StopIteration:
                    break
                interrupt.waiting = False
                message = self.deserialize_json(line)
                kind = message["type"]
                callbacks[kind](message)
                counts[kind] += 1
        except (InvalidInputLine, RecordsWithoutSchemaException) as exc:
            if isinstance(exc, TargetLeanpayError):
                raise
            raise InputError(f"Input line {self.line_number}: {quote(str(exc))}") from exc
        finally:
            interrupt.waiting = False
        return counts

    def deserialize_json(self, line: str | bytes) -> dict[str, Any]:
        """Decode one line; refuse anything that is not a JSON object with a known type."""
        self.line_number += 1
        try:
            message = sdk_decoder.decode(line)
        except msgspec.DecodeError as exc:
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
