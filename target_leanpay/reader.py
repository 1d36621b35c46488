"""Reading Singer messages: msgspec decoding, line numbers, one-paragraph input errors.

msgspec decodes JSON several times faster than the standard library and reads JSON
numbers with a fraction as `Decimal` (money never becomes a float). NaN and Infinity are
not JSON and are refused here, with the line number.
"""

from __future__ import annotations

import decimal
import sys
from collections import Counter
from collections.abc import Callable
from typing import IO, Any

import msgspec
from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.singerlib.encoding.base import GenericSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_leanpay.errors import InputError, TargetLeanpayError, quote

_decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode

KNOWN_TYPES = frozenset({"RECORD", "SCHEMA", "STATE", "ACTIVATE_VERSION", "BATCH"})


class NumberedReader(GenericSingerReader[str]):
    """A Singer reader that knows which input line it is on."""

    def __init__(self) -> None:
        super().__init__()
        self.line_number = 0

    @property
    def default_input(self) -> IO[str]:
        """Standard input, read at call time so tests can replace it."""
        return sys.stdin

    def process_lines(
        self,
        file_input: IO[str] | None,
        callbacks: dict[str, Callable[[dict[str, Any]], None]],
    ) -> Counter[str]:
        """Process every line; turn malformed input into an `InputError` naming the line."""
        try:
            return super().process_lines(file_input, callbacks)
        except TargetLeanpayError:
            raise
        except (InvalidInputLine, RecordsWithoutSchemaException, KeyError, TypeError) as exc:
            raise InputError(f"Input line {self.line_number}: {quote(str(exc))}") from exc

    def deserialize_json(self, line: str) -> dict[str, Any]:
        """Decode one line; refuse anything that is not a JSON object with a known type."""
        self.line_number += 1
        try:
            message = _decode(line)
        except msgspec.DecodeError as exc:
            raise InputError(
                f"Input line {self.line_number} is not valid JSON ({exc}): {quote(line, 120)}"
            ) from None
        if not isinstance(message, dict):
            raise InputError(
                f"Input line {self.line_number} is not a JSON object: {quote(line, 120)}"
            )
        kind = message.get("type")
        if kind not in KNOWN_TYPES:
            raise InputError(
                f"Input line {self.line_number} has an unknown message type "
                f"{quote(repr(kind), 80)}; "
                f"a Singer tap sends only {', '.join(sorted(KNOWN_TYPES))}"
            )
        return message
