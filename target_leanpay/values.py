"""Per-kind value converters: one source value in, one JSON-ready Leanpay value out.

Each converter returns the converted value or raises `InvalidValue` with a reason meant to be
read after the field name (``amount: must be >= 0, got -1``). They are pure and cheap on the
common types (the mapper calls them for every field of every record), and they never echo a
huge source value: `show` truncates what a reason quotes.

Money never goes through `float`: amounts are `int` or `decimal.Decimal` end to end, and the
euros -> cents scaling runs in a decimal context that cannot round (the default context keeps
28 digits and would silently round ``1.0000000000000000000000000000001 * 100`` to ``100``).
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from typing import Any, Final

MAX_AMOUNT: Final = 2**53 - 1
"""Largest amount sent (in minor units): the largest integer a JSON API is sure to keep exactly."""

MAJOR_UNIT_PLACES: Final = 2
"""Decimal places of a major unit (euros -> cents)."""

SHOW_LIMIT: Final = 40
"""Characters of a source value quoted in a reason; longer values are cut and end with '…'."""

_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])
"""A decimal context that never rounds: scaling by a power of ten stays exact."""

_HEX = "[0-9a-fA-F]"
_UUID_RE: Final = re.compile(f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}")
_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE_PREFIX_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_NOT_FINITE: Final = frozenset({"nan", "snan", "inf", "infinity"})


OMIT: Final[Any] = object()
"""What a converter returns for a value left out of the payload (blank optional text)."""


class InvalidValue(ValueError):
    """A source value that cannot become a Leanpay value; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def show(value: object) -> str:
    """Quote `value` for a reason, cut to `SHOW_LIMIT` characters so a 100 kB value stays short."""
    if isinstance(value, str):
        text = value if len(value) <= SHOW_LIMIT else value[:SHOW_LIMIT] + "…"
        return repr(text)
    try:
        text = str(value)
    except ValueError:  # an int too long for str() (sys.int_info.default_max_str_digits)
        return f"<an integer of {value.bit_length() if isinstance(value, int) else '?'} bits>"
    return text if len(text) <= SHOW_LIMIT else text[:SHOW_LIMIT] + "…"


def _got(value: object) -> str:
    return f"got {type(value).__name__} {show(value)}"


def is_uuid(value: object) -> bool:
    """True for a canonical 8-4-4-4-12 hexadecimal UUID string, in any letter case."""
    return type(value) is str and len(value) == 36 and _UUID_RE.fullmatch(value) is not None


def to_uuid(value: object) -> str:
    """A UUID string, returned as given (a `uuid.UUID` object becomes its canonical string)."""
    if type(value) is str:
        if is_uuid(value):
            return value
        raise InvalidValue(f"{show(value)} is not a UUID (8-4-4-4-12 hexadecimal digits)")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise InvalidValue(f"must be a UUID string, {_got(value)}")


def encodable(text: str) -> bool:
    """True unless `text` holds a lone UTF-16 surrogate, which no UTF-8 JSON can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_text(value: object, max_length: int | None) -> str:
    """A string sent as is; an integer (ERP ids often are) becomes its decimal digits.

    The mapper's text converter inlines the plain-str case (with its blank check): keep
    them alike.
    """
    if type(value) is str:
        text = value
    elif isinstance(value, str):
        text = str.__str__(value)  # a str subclass (e.g. a StrEnum): send the plain string
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            text = str(value)
        except ValueError:  # more digits than str() converts; far beyond any length limit
            raise InvalidValue(f"is an integer too long to send ({show(value)})") from None
    else:
        raise InvalidValue(f"must be a string, {_got(value)}")
    if max_length is not None and len(text) > max_length:
        raise InvalidValue(
            f"is {len(text)} characters long; the limit is {max_length} ({show(text)})"
        )
    if "\x00" in text:
        raise InvalidValue(f"contains a NUL character ({show(text)})")
    if not text.isascii() and not encodable(text):
        raise InvalidValue(
            f"holds a lone UTF-16 surrogate, which is not text and cannot be sent ({show(text)})"
        )
    return text


def _decimal(value: object) -> Decimal:
    """Read an amount as an exact Decimal; refuse floats, booleans and non-numbers."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise InvalidValue(f"must be an amount, {_got(value)}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise InvalidValue(
            f"is a binary float ({show(value)}); send amounts as integers, decimal.Decimal or "
            "numeric strings so that no cent is lost to float rounding"
        )
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER_RE.fullmatch(text) is None:
            if text.lower().lstrip("+-") in _NOT_FINITE:
                raise InvalidValue(f"{show(value)} is not a finite number")
            raise InvalidValue(f"{show(value)} is not a decimal number")
        try:
            return Decimal(text)
        except InvalidOperation:  # an exponent beyond what Decimal represents
            raise InvalidValue(f"{show(value)} is out of range") from None
    raise InvalidValue(
        f"must be an amount (integer, decimal.Decimal or numeric string), {_got(value)}"
    )


_MAX_DIGITS: Final = len(str(MAX_AMOUNT))
_ZERO: Final = Decimal(0)
_MAX_DECIMAL: Final = Decimal(MAX_AMOUNT)
_MAX_WHOLE_MAJOR: Final = MAX_AMOUNT // 10**MAJOR_UNIT_PLACES


def _scaled_amount(value: object, places: int) -> int:
    """`value` * 10**places as an exact non-negative int, or why that is impossible."""
    amount = _decimal(value)
    if not amount.is_finite():
        raise InvalidValue(f"{show(value)} is not a finite number")
    if amount.is_signed() and amount:
        raise InvalidValue(f"must be >= 0, got {show(value)}")
    if not amount:
        return 0
    # Bound the magnitude before any arithmetic: 1E+999999999 must not build a huge int.
    if amount.adjusted() + places >= _MAX_DIGITS:
        raise InvalidValue(_too_large(value, places))
    scaled = amount.scaleb(places, _EXACT)
    if scaled != scaled.to_integral_value(context=_EXACT):
        if places:
            raise InvalidValue(
                f"{show(value)} has more than {places} decimal places; "
                "it cannot be converted to cents exactly"
            )
        raise InvalidValue(
            f"{show(value)} is not a whole number of minor units (cents); "
            'if the source holds major units (euros), set amount_unit to "major"'
        )
    result = int(scaled)
    if result > MAX_AMOUNT:
        raise InvalidValue(_too_large(value, places))
    return result


def _too_large(value: object, places: int) -> str:
    unit = " (major units)" if places else ""
    return f"{show(value)}{unit} is too large: at most {MAX_AMOUNT} minor units can be sent"


def to_minor_units(value: object) -> int:
    """An amount already in minor units (cents): it must be a whole number.

    `fastmap` inlines the first test below: keep the two alike.
    """
    if type(value) is int:
        if 0 <= value <= MAX_AMOUNT:
            return value
    elif type(value) is Decimal and value.is_finite() and _ZERO <= value <= _MAX_DECIMAL:
        cents = int(value)
        if value == cents:
            return cents
    return _scaled_amount(value, 0)  # the exact, checked path; it also says what is wrong


def major_to_minor_units(value: object) -> int:
    """An amount in major units (euros) converted exactly to minor units (cents)."""
    if type(value) is int:
        if 0 <= value <= _MAX_WHOLE_MAJOR:
            return value * 10**MAJOR_UNIT_PLACES
    elif type(value) is Decimal and value.is_finite():
        scaled = value.scaleb(MAJOR_UNIT_PLACES, _EXACT)  # exact: _EXACT never rounds
        if _ZERO <= scaled <= _MAX_DECIMAL:
            cents = int(scaled)
            if scaled == cents:
                return cents
    return _scaled_amount(value, MAJOR_UNIT_PLACES)  # the exact, checked path


def to_date(value: object) -> str:
    """A calendar day as YYYY-MM-DD: the day as written or held, never shifted to UTC."""
    if type(value) is str:
        if len(value) == 10 and value[4] == "-" and value[7] == "-":
            try:
                date.fromisoformat(value)  # with the dashes checked, accepts only YYYY-MM-DD
            except ValueError:
                pass  # _date_from_string says why
            else:
                return value
        return _date_from_string(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return _date_from_string(str.__str__(value))
    raise InvalidValue(f"must be a date (YYYY-MM-DD string, date or datetime), {_got(value)}")


def _date_from_string(text: str) -> str:
    not_iso = f"{show(text)} is not an ISO 8601 date (YYYY-MM-DD) or date-time"
    match = _DATE_PREFIX_RE.match(text)
    if match is None:
        raise InvalidValue(not_iso)
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise InvalidValue(f"{show(text)} is not a calendar date") from None
    if len(text) > 10:
        if text[10] not in "Tt ":
            raise InvalidValue(not_iso)
        if text[-1] == "z":  # RFC 3339 allows a lower-case Z; fromisoformat does not
            text = text[:-1] + "Z"
        try:
            datetime.fromisoformat(text)
        except ValueError:
            raise InvalidValue(not_iso) from None
    return day.isoformat()


_BOOLEAN_STRINGS: Final = {"true": True, "false": False}


def to_boolean(value: object) -> bool:
    """A JSON boolean; the strings "true" / "false" (any case) are read as one (CSV sources)."""
    if value is True or value is False:
        return value
    if isinstance(value, str):
        parsed = _BOOLEAN_STRINGS.get(value.lower())
        if parsed is not None:
            return parsed
    raise InvalidValue(f"must be true or false, {_got(value)}")


def to_currency(value: object) -> str:
    """A three-letter ISO 4217 code, upper-cased."""
    if isinstance(value, str):
        if len(value) == 3 and value.isascii() and value.isalpha():
            return value.upper()
        raise InvalidValue(f"{show(value)} is not a three-letter currency code (e.g. EUR)")
    raise InvalidValue(f"must be a three-letter currency code, {_got(value)}")
