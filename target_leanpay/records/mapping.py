"""Record -> Leanpay batch item, as pure functions (no I/O, no SDK objects).

The sink relies on exactly this contract::

    settings = MappingSettings(amount_unit="minor", client_ids={"C-42": "<uuid>"},
                               require_external_id=False)
    mapper = RecordMapper(resource, settings)     # built once per stream
    result = mapper.map(record)                   # per record
    if isinstance(result, Rejection): ...         # result.problems: tuple[Problem, ...]
    else: payload = result                        # dict ready for JSON (str/int/bool only)

A record is either mapped whole or rejected whole, with every problem found in it (in the
resource's field order), so that one bad record never reaches Leanpay and never sinks the
batch of good records sent with it.

The user-facing rules are the README's (Mapping guide, Rules); the tests hold each one.
What a reader of this module needs besides: a field is read under its Leanpay name or its
snake_case alias, and both set to values that convert differently reject the record; a
blank string counts as null for every field (how CSV files and ERP exports write a missing
value), and nulls are never sent; a client is found only through `client_ids`, by exact
string (the target never guesses); amounts never pass through a binary float; a reason
quotes at most 40 characters of a value (`values.show`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Final, Literal, NamedTuple

from target_leanpay.records.resources import MAX_STRING_LENGTH, Field, Kind, Resource
from target_leanpay.records.values import (
    MAJOR_UNIT_PLACES,
    OMIT,
    DecimalSeparator,
    InvalidValue,
    amount_converter,
    date_converter,
    date_format_problem,
    encodable,
    is_uuid,
    show,
    to_boolean,
    to_currency,
    to_text,
    to_uuid,
)

AmountUnit = Literal["minor", "major"]

CLIENT_FIELD: Final = "clientId"
CLIENT_EXTERNAL_KEYS: Final = ("clientExternalId", "client_external_id")
"""Record keys holding the source's own client id, resolved through `client_ids`."""


_FAILED: Final[Any] = object()
"""A conversion that raised, while comparing the two spellings of a field."""

_Convert = Callable[[Any], Any]
_Fallback = Callable[[Mapping[str, Any]], Any]


class _Step(NamedTuple):
    """How one field is read: a tuple, so the generic loop unpacks it in one go."""

    name: str
    alias: str | None  # the snake_case spelling, if different
    convert: _Convert
    missing: str | None  # why a missing value rejects the record; None: it is omitted
    blank: str | None  # why a blank value rejects it
    fallback: _Fallback | None  # where a missing value is read from instead


@dataclass(frozen=True)
class MappingSettings:
    """What the user told us about their source data (defaults: the settings schema).

    `date_formats` and `decimal_separator` default to what their settings' defaults
    parse to (no format but ISO 8601, a decimal point), so that a mapper built without
    them reads sources exactly as before they existed.
    """

    amount_unit: AmountUnit
    client_ids: Mapping[str, str]
    require_external_id: bool
    date_formats: tuple[str, ...] = ()
    decimal_separator: DecimalSeparator = "."

    @property
    def unit_places(self) -> int:
        """Decimal places of the source's amounts: 2 in euros, 0 in cents."""
        return MAJOR_UNIT_PLACES if self.amount_unit == "major" else 0


@dataclass(frozen=True)
class Problem:
    """Why one field of one record cannot be sent; `reason` reads after the field name.

    `value`: the record's value the problem is about (the field's, or the client code of
    an unmapped client), for reports that list examples; None when there is none. It is
    not part of the problem's identity.
    """

    field: str
    reason: str
    value: Any = dataclass_field(default=None, compare=False, repr=False)


UNMAPPED_CLIENT: Final = "has no Leanpay id in client_ids / client_ids_file"
"""How a clientId problem ends when the record's client code is not mapped."""


def unmapped_client(problem: Problem) -> str | None:
    """The client code a problem says is missing from client_ids, if it says so."""
    if problem.field == CLIENT_FIELD and problem.reason.endswith(UNMAPPED_CLIENT):
        return str(problem.value)
    return None


@dataclass(frozen=True, slots=True)
class Reference:
    """A Leanpay id the record names by the object's externalId (`invoiceExternalId`):
    resolved by the sending thread, once the object is known; never sent as such."""

    resource: str
    external_id: str

    def __str__(self) -> str:
        return f"{self.resource} {self.external_id!r}"


@dataclass(frozen=True)
class Rejection:
    """A record that will not be sent, with every problem found in it."""

    problems: tuple[Problem, ...]


REMEMBERED_VALUES: Final = 4096
"""Distinct accepted strings a UUID or date converter remembers per stream."""


def _text_converter(max_length: int | None, optional: bool) -> _Convert:
    """Text checked by `to_text`. Blank text is absent: omitted here when the field is optional
    (the common case, kept off the exception path), reported by `RecordMapper.map` otherwise."""
    limit = max_length if max_length is not None else float("inf")

    def convert(value: Any) -> Any:
        if (
            type(value) is str
            and 0 < len(value) <= limit
            and "\x00" not in value
            and not value.isspace()
            and (value.isascii() or encodable(value))
        ):
            return value  # what to_text would return, checked without the call
        text = to_text(value, max_length)
        if not text or text.isspace():
            if optional:
                return OMIT
            raise InvalidValue("is blank")
        return text

    return convert


def _remembering(convert: _Convert) -> _Convert:
    """`convert` with a memo of the strings it accepted: client ids and dates repeat
    across a load, and their checks (a regex, a calendar) cost more than a lookup."""
    accepted: dict[str, Any] = {}

    def remembered(value: Any) -> Any:
        if type(value) is not str:
            return convert(value)
        result = accepted.get(value)
        if result is None:
            result = convert(value)  # raises for a value it refuses: never remembered
            if len(accepted) < REMEMBERED_VALUES:
                accepted[value] = result
        return result

    return remembered


def _is_blank(value: Any) -> bool:
    """An empty or whitespace-only string: a null as CSV files and ERP exports spell it."""
    return isinstance(value, str) and (not value or value.isspace())


def _client_uuid(value: Any) -> str:
    """A clientId given in the record: it must already be the Leanpay UUID."""
    try:
        return to_uuid(value)
    except InvalidValue:
        raise InvalidValue(
            f"{show(value)} is not a Leanpay client UUID; put your own client id in "
            "clientExternalId and map it to the Leanpay id with the client_ids / "
            "client_ids_file setting"
        ) from None


class RecordMapper:
    """Maps records of one stream to items of one resource.

    Everything that depends only on the resource and the settings is decided once here,
    as a plan of steps (names, converter, what a missing value means); `map` is then a
    loop of dict lookups and converter calls.
    """

    def __init__(self, resource: Resource, settings: MappingSettings) -> None:
        if settings.amount_unit not in ("minor", "major"):
            raise ValueError(
                f'amount_unit must be "minor" or "major", not {show(settings.amount_unit)}'
            )
        for fmt in settings.date_formats:
            problem = date_format_problem(fmt)
            if problem is not None:
                raise ValueError(f"date_formats: {problem}")
        self._amount = amount_converter(settings.unit_places, settings.decimal_separator)
        self._date = date_converter(settings.date_formats)
        self.resource = resource
        self.settings = settings
        client_ids = {str(k): v for k, v in settings.client_ids.items()}
        self._client_ids = {k: v for k, v in client_ids.items() if is_uuid(v)}
        self._bad_client_ids = {k: v for k, v in client_ids.items() if not is_uuid(v)}
        self._plan: tuple[_Step, ...] = tuple(self._step(f) for f in resource.fields)

    def _step(self, fld: Field) -> _Step:
        """Decide once how one field is read, converted and reported."""
        alias = fld.snake_name if fld.snake_name != fld.name else None
        missing = blank = None
        if fld.required:
            missing, blank = "is required", "is required (it is empty)"
        elif fld.name == "externalId" and self.settings.require_external_id:
            missing = blank = "is required (require_external_id is on)"
        if fld.name == CLIENT_FIELD:
            convert = _remembering(_client_uuid)
            return _Step(fld.name, alias, convert, missing, blank, self._resolve_client)
        if fld.refers_to is not None:
            convert = self._converter(fld, missing is None)
            return _Step(fld.name, alias, convert, missing, blank, _reference_to(fld))
        return _Step(fld.name, alias, self._converter(fld, missing is None), missing, blank, None)

    def _converter(self, fld: Field, optional: bool) -> _Convert:
        """The converter for one field's kind."""
        kind = fld.kind
        if kind is Kind.STRING:
            return _text_converter(fld.max_length, optional)
        if kind is Kind.MONEY:
            return self._amount
        if kind is Kind.DATE:
            return _remembering(self._date)
        if kind is Kind.UUID:
            return _remembering(to_uuid)
        if kind is Kind.BOOLEAN:
            return to_boolean
        if kind is Kind.CURRENCY:
            return to_currency
        raise ValueError(f"no converter for {kind}")  # pragma: no cover - a new Kind

    def map(self, record: Mapping[str, Any]) -> dict[str, Any] | Rejection:  # noqa: PLR0912
        """Return the batch item for `record`, or why it cannot be sent."""
        payload: dict[str, Any] = {}
        problems: list[Problem] | None = None
        get = record.get
        for name, alias, convert, missing, blank, fallback in self._plan:
            value = get(name)
            try:
                if alias is not None:
                    other = get(alias)
                    if other is not None and other is not value:
                        value = (
                            other
                            if value is None
                            else _reconcile(name, value, alias, other, convert)
                        )
                absent = missing  # why a missing value is refused, if it is
                if value is not None:
                    try:
                        result = convert(value)
                    except InvalidValue:
                        if not _is_blank(value):
                            raise
                        value, absent = None, blank
                if value is None:
                    if fallback is not None:
                        result = fallback(record)
                    elif absent is not None:
                        raise InvalidValue(absent)
                    else:
                        continue
            except InvalidValue as exc:
                if problems is None:
                    problems = []
                problems.append(
                    Problem(name, exc.reason, value if exc.value is None else exc.value)
                )
                continue
            if result is not OMIT:
                payload[name] = result
        if problems:
            return Rejection(tuple(problems))
        return payload

    def _resolve_client(self, record: Mapping[str, Any]) -> str:
        """The Leanpay client UUID for the record's clientExternalId, from `client_ids` only."""
        first = CLIENT_EXTERNAL_KEYS[0]
        blank = next((name for name in CLIENT_EXTERNAL_KEYS if name in record), None)
        missing = (
            "is required"
            if blank is None
            else f"is required, and {blank} (the client code it is looked up by) is empty"
        )
        key = _source_key(record, CLIENT_EXTERNAL_KEYS, missing)
        client_id = self._client_ids.get(key)
        if client_id is not None:
            return client_id
        if key in self._bad_client_ids:
            raise InvalidValue(
                f"client_ids maps client {show(key)} to {show(self._bad_client_ids[key])}, "
                "which is not a Leanpay client UUID"
            )
        raise InvalidValue(f"client {show(key)} ({first}) {UNMAPPED_CLIENT}", key)


def _reference_to(fld: Field) -> _Fallback:
    """Read a missing Leanpay id from the record's externalId of the object it refers to."""
    assert fld.refers_to is not None
    resource, names = fld.refers_to, fld.external_names

    def reference(record: Mapping[str, Any]) -> Reference:
        key = _source_key(record, names, f"is required (a Leanpay id, or {names[0]})")
        if len(key) > MAX_STRING_LENGTH or "\x00" in key:
            raise InvalidValue(f"{names[0]} {show(key)} cannot be an externalId")
        return Reference(resource, key)

    return reference


def _source_key(
    record: Mapping[str, Any], keys: tuple[str, str], missing: str = "is required"
) -> str:
    """The source's own id held under either spelling of a key (`clientExternalId`):
    strings as they are, integers as digits; both spellings must agree."""
    first, second = keys
    external = record.get(first)
    other = record.get(second)
    if _is_blank(external):
        external = None
    if _is_blank(other):
        other = None
    if external is None:
        external = other
    elif other is not None and _client_key(other) != _client_key(external):
        raise InvalidValue(
            f"both {first} and {second} are set and differ ({show(external)} vs {show(other)})"
        )
    if external is None:
        raise InvalidValue(missing)
    key = _client_key(external)
    if key is None:
        raise InvalidValue(
            f"{first} must be a string or an integer, "
            f"got {type(external).__name__} {show(external)}"
        )
    return key


def _client_key(value: Any) -> str | None:
    """A source client id as a `client_ids` key: strings as they are, integers as digits."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # more digits than str() converts: no such key can exist
            return show(value)
    return None


def _reconcile(name: str, value: Any, alias: str, other: Any, convert: _Convert) -> Any:
    """Both spellings of a field are set: keep `value` only if both convert to the same value.

    A blank string counts as absent, so the other spelling is used.
    """
    if _is_blank(value):
        return other
    if _is_blank(other):
        return value
    try:
        result = convert(value)
    except InvalidValue:
        result = _FAILED
    try:
        other_result = convert(other)
    except InvalidValue:
        other_result = _FAILED
    if result is _FAILED and other_result is _FAILED:
        return value  # both wrong: report the Leanpay-named value's own problem
    if result is _FAILED or other_result is _FAILED or result != other_result:
        raise InvalidValue(
            f"both {name} and {alias} are set and differ ({show(value)} vs {show(other)})"
        )
    return value
