"""The common case of `RecordMapper.map` as straight-line code, written once per stream.

Mapping runs for every field of every record, and the generic loop spends most of its
time on the loop itself (unpacking a plan step, looking up both spellings of each name,
the try/except) rather than on the checks. Most records are clean and spell every field
one way, so for each resource and settings this module writes a plain function, one
block per field, for the two spellings (Leanpay names, snake_case aliases) and compiles
it with `exec`, as `dataclasses` does for `__init__`. Records are plain dicts (the reader
and stream maps make them); any other mapping goes to the generic loop.

The contract that keeps it exact: the fast function returns a payload only when every
value passed a check that implies the generic converter would return it unchanged (or
it called that very converter); anything else (a missing required field, a blank
string, both spellings present, any conversion problem) is handed to `map_generic`,
which builds the payload or the rejection with its reasons. So the fast path can only
ever return what the generic path returns; the mapping tests run every case through
both, plus a randomised comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from target_leanpay.resources import Field, Kind
from target_leanpay.values import MAX_AMOUNT, OMIT, InvalidValue, is_uuid

MapFunction = Callable[[Mapping[str, Any]], Any]
Converter = Callable[[Any], Any]


def _inline_check(fld: Field, amount_unit: str) -> str | None:
    """A Python expression on `v`, true only when the converter would return `v` as is.

    The text and money checks mirror the first lines of `to_text` and `to_minor_units`
    (which say so); the randomised test in tests/test_mapping.py fails if they drift apart.
    """
    if fld.kind is Kind.STRING:
        length = "" if fld.max_length is None else f" and len(v) <= {fld.max_length}"
        return f'type(v) is str{length} and v and not v.isspace() and "\\x00" not in v'
    if fld.kind is Kind.UUID:
        return "_is_uuid(v)"  # what to_uuid accepts as given
    if fld.kind is Kind.MONEY and amount_unit == "minor":
        return f"type(v) is int and 0 <= v <= {MAX_AMOUNT}"
    return None  # dates, booleans, currencies, major units: the converter itself


def _field_block(
    index: int, fld: Field, key: str, *, required: bool, fallback: bool, check: str | None
) -> list[str]:
    """The lines that read, check and store one field."""
    name = repr(fld.name)
    lines = [f"    v = get({key!r})", "    if v is None:"]
    if fallback:
        lines += [
            "        try:",
            f"            payload[{name}] = _fallback_{index}(record)",
            "        except InvalidValue:",
            "            return generic(record)",
        ]
    elif required:
        lines.append("        return generic(record)")
    else:
        lines.append("        pass")
    if check is not None:
        lines += [f"    elif {check}:", f"        payload[{name}] = v"]
    lines += [
        "    else:",
        "        try:",
        f"            v = _convert_{index}(v)",
        "        except InvalidValue:",
        "            return generic(record)",
        "        if v is not _OMIT:",
        f"            payload[{name}] = v",
    ]
    return lines


def compile_fast_map(
    fields: tuple[Field, ...],
    *,
    converters: tuple[Converter, ...],
    required: tuple[bool, ...],
    fallbacks: tuple[Callable[[Mapping[str, Any]], Any] | None, ...],
    amount_unit: str,
    generic: MapFunction,
) -> MapFunction:
    """A map function equal to `generic`, faster on clean single-spelling records.

    `converters`, `required` (a missing value rejects the record) and `fallbacks` (read a
    missing value from elsewhere in the record) are per field, as the generic plan has them.
    """
    namespace: dict[str, Any] = {
        "generic": generic,
        "InvalidValue": InvalidValue,
        "_OMIT": OMIT,
        "_is_uuid": is_uuid,
    }
    aliased = [f for f in fields if f.snake_name != f.name]
    namespace["_LEANPAY_NAMES"] = frozenset(f.name for f in aliased)
    namespace["_SNAKE_NAMES"] = frozenset(f.snake_name for f in aliased)
    checks = [_inline_check(fld, amount_unit) for fld in fields]
    for index in range(len(fields)):
        namespace[f"_convert_{index}"] = converters[index]
        namespace[f"_fallback_{index}"] = fallbacks[index]
    source: list[str] = []
    for spelling in ("leanpay", "snake"):
        source += [f"def map_{spelling}(record):", "    get = record.get", "    payload = {}"]
        for index, fld in enumerate(fields):
            source += _field_block(
                index,
                fld,
                fld.name if spelling == "leanpay" else fld.snake_name,
                required=required[index],
                fallback=fallbacks[index] is not None,
                check=checks[index],
            )
        source += ["    return payload", ""]
    source += [
        "def map_record(record):",
        "    if type(record) is not dict:",  # only a dict's get() agrees with its keys
        "        return generic(record)",
        "    if _SNAKE_NAMES.isdisjoint(record):",
        "        return map_leanpay(record)",
        "    if _LEANPAY_NAMES.isdisjoint(record):",
        "        return map_snake(record)",
        "    return generic(record)",
    ]
    exec(compile("\n".join(source), "<target-leanpay fast map>", "exec"), namespace)  # noqa: S102 - our own generated source
    function: MapFunction = namespace["map_record"]
    return function
