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
from collections.abc import Callable
from datetime import date, datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from typing import Any, Final, Literal

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
_GROUP_SPACES: Final = " \u00a0\u202f"
"""Thousands separators that are spaces: plain, no-break (U+00A0), narrow no-break (U+202F)."""
_COMMA_NUMBER_RE: Final = re.compile(
    r"[+-]?(?:(?:[1-9][0-9]{0,2}(?:[" + _GROUP_SPACES + r"][0-9]{3})+"
    r"|[1-9][0-9]{0,2}(?:\.[0-9]{3})+|[0-9]+)(?:,[0-9]*)?|,[0-9]+)"
)
"""An amount written with a decimal comma: digits grouped by three with spaces or dots
(one kind per value; no leading zero group), or not grouped at all."""
_UNGROUP: Final = str.maketrans({" ": None, "\u00a0": None, "\u202f": None, ".": None, ",": "."})
_NOT_FINITE: Final = frozenset({"nan", "snan", "inf", "infinity"})


OMIT: Final[Any] = object()
"""What a converter returns for a value left out of the payload (blank optional text)."""


class InvalidValue(ValueError):
    """A source value that cannot become a Leanpay value; `reason` says why.

    `value`: the record's value the reason is about, when it is not the field's own
    (a client code read from clientExternalId); None means the field's value.
    """

    def __init__(self, reason: str, value: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


class NotACalendarDate(InvalidValue):
    """A date written in a known format whose day does not exist (2024-02-30)."""


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
            if _COMMA_NUMBER_RE.fullmatch(text) is not None:
                raise InvalidValue(
                    f"{show(value)} is not a decimal number with a decimal point; for amounts "
                    "written with a decimal comma (1 234,50), set decimal_separator to ,"
                )
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


DecimalSeparator = Literal[".", ","]


def _comma_decimal(value: object) -> Decimal:
    """Read an amount written with a decimal comma (``1 234,50``, ``1.234,50``, ``1234,5``);
    anything but text is read as `_decimal` reads it."""
    if not isinstance(value, str):
        return _decimal(value)
    text = value.strip()
    if _COMMA_NUMBER_RE.fullmatch(text) is None:
        if text.lower().lstrip("+-") in _NOT_FINITE:
            raise InvalidValue(f"{show(value)} is not a finite number")
        raise InvalidValue(
            f"{show(value)} is not an amount written with a decimal comma "
            "(1234,50, 1 234,50 or 1.234,50: groups of three digits)"
        )
    return Decimal(text.translate(_UNGROUP))  # at most digits, a sign and one point


def _scaled_amount(value: object, places: int, read: Callable[[object], Decimal] = _decimal) -> int:
    """`value` * 10**places as an exact non-negative int, or why that is impossible."""
    amount = read(value)
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


def amount_converter(unit_places: int, separator: DecimalSeparator) -> Callable[[object], int]:
    """The amount converter for a unit (0: cents, 2: euros) and a decimal separator.

    With the default "." it is `to_minor_units` / `major_to_minor_units` themselves, so
    the common path pays nothing for the choice; with "," only text takes the other road.
    """
    plain = major_to_minor_units if unit_places else to_minor_units
    if separator == ".":
        return plain
    if separator != ",":
        raise ValueError(f'decimal_separator must be "." or ",", not {show(separator)}')

    def comma(value: object) -> int:
        if isinstance(value, str):
            return _scaled_amount(value, unit_places, _comma_decimal)
        return plain(value)

    return comma


def amount_shown(unit_places: int, separator: DecimalSeparator) -> Callable[[int], str]:
    """Minor units written back in the source's unit and decimal separator, for messages
    that quote an amount Leanpay holds beside the source's own: 2809219 -> `28092,19`
    (euros, decimal comma); with amounts in cents, the cents themselves."""

    def shown(cents: int) -> str:
        if not unit_places:
            return str(cents)
        whole, part = divmod(cents, 10**unit_places)
        return f"{whole}{separator}{part:0{unit_places}d}"

    return shown


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
        raise InvalidValue(
            f"{not_iso}; to read dates written otherwise, list their formats in "
            "date_formats (e.g. %d/%m/%Y)"
        )
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise NotACalendarDate(f"{show(text)} is not a calendar date") from None
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


_MAX_DATE_TEXT: Final = 64
"""Longer text is no date in any format: strptime is not even tried on it."""
_NO_MATCH: Final = ("time data", "unconverted data remains")
"""How strptime's ValueError begins when the text does not fit the format; any other
ValueError (day is out of range for month) means it fits but names no real day."""
_SAMPLE_DAYS: Final = (date(2024, 1, 2), date(2031, 11, 23), date(1999, 12, 31))


def date_format_problem(fmt: object) -> str | None:
    """Why `fmt` cannot be a date format of `date_formats`, or None.

    A format must be a strptime pattern naming a year, a month and a day: each sample
    day written with it must read back as that same day (this refuses unknown directives,
    ``%d/%m`` without a year, ``%Y-%m`` without a day). Time directives may follow; the
    day is taken as written.
    """
    if not isinstance(fmt, str) or not fmt.strip():
        return "must be a non-empty strptime pattern such as %d/%m/%Y"
    if "%Y" not in fmt and "%y" not in fmt:
        return f"{show(fmt)} names no year (%Y or %y)"
    for day in _SAMPLE_DAYS:
        try:
            read = datetime.strptime(day.strftime(fmt), fmt).date()
        except ValueError as exc:
            return f"{show(fmt)} is not a strptime pattern that can be read back ({exc})"
        if read != day:
            return (
                f"{show(fmt)} does not name a whole day: {day.isoformat()} written with it "
                f"reads back as {read.isoformat()}"
            )
    return None


def date_converter(formats: tuple[str, ...]) -> Callable[[object], str]:
    """The date converter: `to_date` (ISO 8601) itself when no format is declared, else
    one that reads text with ISO 8601 and every declared format (checked by
    `date_format_problem`) and accepts it only if they agree on one real day."""
    if not formats:
        return to_date
    listed = ", ".join(formats)

    def convert(value: object) -> str:
        if not isinstance(value, str):
            return to_date(value)
        text = str.__str__(value)
        days: dict[str, list[str]] = {}
        impossible: list[str] = []
        try:
            days[to_date(text)] = ["ISO 8601"]
        except NotACalendarDate:
            impossible.append("ISO 8601")
        except InvalidValue:
            pass
        stripped = text.strip()
        if len(stripped) <= _MAX_DATE_TEXT and stripped.isascii():
            for fmt in formats:
                try:
                    day = datetime.strptime(stripped, fmt).date().isoformat()
                except ValueError as exc:
                    if not str(exc).startswith(_NO_MATCH):
                        impossible.append(fmt)
                    continue
                days.setdefault(day, []).append(fmt)
        if len(days) == 1:
            return next(iter(days))
        if days:
            readings = "; ".join(f"{', '.join(how)}: {show(day)}" for day, how in days.items())
            raise InvalidValue(
                f"{show(value)} is ambiguous: date_formats read it as different days ({readings})"
            )
        if impossible:
            raise InvalidValue(f"{show(value)} is not a calendar date ({', '.join(impossible)})")
        raise InvalidValue(
            f"{show(value)} is not a date in date_formats ({listed}) nor ISO 8601 (YYYY-MM-DD)"
        )

    return convert


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
