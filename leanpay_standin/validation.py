"""Batch-body checks, built once per resource from the stand-in's API table (`api`).

The messages copy what a NestJS `ValidationPipe` (whitelist + forbidNonWhitelisted,
class-validator decorators) would answer, so the target's error handling is exercised
against realistic 400 bodies. Checks are precomputed closures and plain type tests:
the throughput benchmark pushes ~80,000 items per second through here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leanpay_standin.api import MAX_BATCH_ITEMS, Batch, Prop, Update

Check = Callable[[object], str | None]
"""Returns None when the value is acceptable, else the message tail ("must be a UUID")."""

_MISSING: Any = object()
_CACHE_LIMIT = 65_536
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _remembering(is_valid: Callable[[str], bool], message: str) -> Check:
    """A string check that caches accepted values: ids and dates repeat across a load."""
    seen: set[str] = set()

    def check(value: object) -> str | None:
        if type(value) is not str:
            return message
        if value in seen:
            return None
        if not is_valid(value):
            return message
        if len(seen) >= _CACHE_LIMIT:
            seen.clear()
        seen.add(value)
        return None

    return check


def _is_uuid(value: str) -> bool:
    return _UUID_RE.fullmatch(value) is not None


def _is_calendar_date(value: str) -> bool:
    match = _DATE_RE.fullmatch(value)
    if match is None:
        return False
    try:
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def _string_check(max_length: int | None) -> Check:
    too_long = f"must be shorter than or equal to {max_length} characters"

    def check(value: object) -> str | None:
        if type(value) is not str:
            return "must be a string"
        if max_length is not None and len(value) > max_length:
            return too_long
        return None

    return check


def _money_check(value: object) -> str | None:
    if type(value) is not int:  # also refuses bool, whose type is bool
        return "must be an integer number"
    if value < 0:
        return "must not be less than 0"
    return None


def _boolean_check(value: object) -> str | None:
    return None if type(value) is bool else "must be a boolean value"


def check_for(prop: Prop) -> Check:
    """The value check of one property, by type."""
    if prop.type == "uuid":
        return _remembering(_is_uuid, "must be a UUID")
    if prop.type == "date":
        return _remembering(_is_calendar_date, "must be a valid ISO 8601 date string")
    if prop.type == "integer":
        return _money_check
    if prop.type == "boolean":
        return _boolean_check
    return _string_check(prop.max_length)


@dataclass(frozen=True)
class ItemSchema:
    """Everything needed to check one resource's batch body, computed once."""

    body_key: str
    allowed: frozenset[str]
    fields: tuple[tuple[str, bool, bool, Check], ...]
    """(name, required, nullable, check) per property, in table order."""


def schema_for(endpoint: Batch | Update) -> ItemSchema:
    """Precompute the checks of a batch's items, or of an update's body."""
    props = endpoint.items if isinstance(endpoint, Batch) else endpoint.body
    return ItemSchema(
        body_key=endpoint.body_key if isinstance(endpoint, Batch) else "",
        allowed=frozenset(props),
        fields=tuple(
            (name, prop.required, prop.nullable, check_for(prop)) for name, prop in props.items()
        ),
    )


def item_problems(schema: ItemSchema, item: dict[str, Any]) -> list[str]:
    """Message tails for one item ("amount must not be less than 0"); empty when valid.

    The caller adds the "invoices.3." prefix, only for the rare invalid item.
    """
    problems: list[str] = []
    if not schema.allowed.issuperset(item):
        problems.extend(f"{name} should not exist" for name in item if name not in schema.allowed)
    for name, required, nullable, check in schema.fields:
        value = item.get(name, _MISSING)
        if value is None or value is _MISSING:
            if required or (value is None and not nullable):
                problems.append(f"{name} should not be null or undefined")
            continue
        message = check(value)
        if message is not None:
            problems.append(f"{name} {message}")
    return problems


def check_body(schema: ItemSchema, body: object) -> tuple[list[dict[str, Any]], list[str]]:
    """Split a parsed request body into (items, problems); any problem refuses the batch."""
    key = schema.body_key
    if type(body) is not dict:
        return [], [f"{key} must be an array"]
    problems = [f"property {name} should not exist" for name in body if name != key]
    items = body.get(key)
    if type(items) is not list:
        return [], [*problems, f"{key} must be an array"]
    if len(items) > MAX_BATCH_ITEMS:
        return [], [*problems, f"{key} must contain no more than {MAX_BATCH_ITEMS} elements"]
    if not items:
        return [], [*problems, f"{key} must contain at least 1 elements"]
    for index, item in enumerate(items):
        if type(item) is not dict:
            problems.append(f"{key}.{index} must be an object")
            continue
        found = item_problems(schema, item)
        if found:
            problems.extend(f"{key}.{index}.{tail}" for tail in found)
    return items, problems


def body_problems(schema: ItemSchema, body: object) -> list[str]:
    """Messages for a one-object body (an update), worded as NestJS does at the top level."""
    if type(body) is not dict:
        return ["an object is expected as the request body"]
    unknown = [f"property {name} should not exist" for name in body if name not in schema.allowed]
    known = {name: value for name, value in body.items() if name in schema.allowed}
    return unknown + item_problems(schema, known)
