"""Changes: what the target would send for a record, compared with what Leanpay holds.

A record whose externalId Leanpay already holds is not created again; but the source may
have changed it since (a corrected amount, a new due date). What Leanpay holds is known
from the invoice listing (each listed row keeps its compared fields, `kept`), or, for
what cannot be listed, from the receipts this target wrote when it created the object
(receipts.py: each line keeps the fields sent). Pure functions, no I/O.

How values compare, whatever form Leanpay echoes them in:

* dates as calendar dates: `2024-03-05` == `2024-03-05T00:00:00Z` == `...T00:00:00.000Z`;
  any other instant Leanpay echoes (`2024-03-04T23:00:00Z`) is kept as that instant, and
  names a day in the tenant's time zone, an input of the comparison (date_zone.py): until
  that zone is known, a day UTC or Europe/Paris would give "cannot tell" (no change);
* money as integers (`12000` == `Decimal("12000")`);
* absent and null alike;
* references by externalId by the Leanpay id they resolve to (the wire payload holds it);
* only the fields of the batch item: what Leanpay computes (status, remainingAmount, ...)
  is never compared; `externalId` is the key itself. A deprecated field Leanpay may fill
  on its own (an invoice's `sentDate`) is compared only when the record carries it.

Unknown (a receipt written before receipts kept the fields sent) is never a change.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from target_leanpay.records.resources import Kind, Resource
from target_leanpay.store import date_zone

DERIVED: dict[str, frozenset[str]] = {"invoices": frozenset({"sentDate"})}
"""Fields compared only when the record carries them: Leanpay may fill them itself."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


class Change(NamedTuple):
    """One field whose value differs: what Leanpay holds (`old`) and what the source says."""

    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.old)} → {_show(self.new)}"


def kept(resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    """The compared fields of `obj` (a wire payload or a listed row), normalised; null and
    absent fields are left out, so that they compare alike. Run for every acknowledged
    and listed invoice: values already in their compared form (a date as `YYYY-MM-DD`,
    money as an int) skip `_normal`."""
    found: dict[str, Any] = {}
    for name, kind in _kinds(resource):
        value = obj.get(name)
        if value is None:
            continue
        if kind is not None and not (
            type(value) is str and len(value) == 10 if kind is Kind.DATE else type(value) is int
        ):
            value = _normal(kind, value)
            if value is None:
                continue
        found[name] = value
    return found


@functools.cache
def _kinds(resource: Resource) -> tuple[tuple[str, Kind | None], ...]:
    """The compared fields, with their kind where `_normal` may change a value (a date
    as a 10-character string, or money as an int, is already as it compares)."""
    changing = (Kind.DATE, Kind.MONEY)
    return tuple(
        (f.name, f.kind if f.kind in changing else None)
        for f in resource.fields
        if f.name != "externalId"
    )


def encode(fields: dict[str, Any]) -> bytes:
    """`kept` fields as stored beside a Leanpay id."""
    return _encode(fields)


def decode(stored: bytes) -> dict[str, Any]:
    """`kept` fields back from `encode`."""
    return _decode(stored)


def differences(
    resource: Resource, held: dict[str, Any], wire: dict[str, Any], zone: str | None = None
) -> list[Change]:
    """The fields whose value Leanpay holds (`held`: its fields in any form, e.g. a payload
    as sent or `kept`) differs from what the target would send (`wire`, references
    resolved), in the resource's field order; both compared in their `kept` form, an
    echoed instant as its day in the tenant's time zone `zone` (None: not known)."""
    held, sent = kept(resource, held), kept(resource, wire)
    derived = DERIVED.get(resource.name, frozenset())
    changes = []
    for name, _ in _kinds(resource):
        if name in derived and name not in sent:
            continue
        old, new = held.get(name), sent.get(name)
        if old != new and not date_zone.same_day(old, new, zone):
            changes.append(Change(name, date_zone.shown(old, zone), new))
    return changes


def describe(changes: list[Change]) -> str:
    """`amount: 249623 → 254623; dueDate: '2024-03-31' → '2024-04-30'`."""
    return "; ".join(str(change) for change in changes)


def _normal(kind: Kind, value: Any) -> Any:
    """One value in the form it compares in (see the module's docstring); never None."""
    if kind is Kind.DATE and isinstance(value, str):
        return date_zone.compared(value)
    if kind is Kind.MONEY:
        if isinstance(value, Decimal) and value == value.to_integral_value():
            return int(value)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
    return value


def _show(value: Any) -> str:
    """A value as a message shows it; a reference by externalId (as read, or as data) by
    its resource and externalId."""
    if value is None:
        return "(none)"
    resource, external_id = getattr(value, "resource", None), getattr(value, "external_id", None)
    if isinstance(value, dict) and set(value) == {"resource", "externalId"}:
        resource, external_id = value["resource"], value["externalId"]
    if isinstance(resource, str) and isinstance(external_id, str):
        return f"{resource} {external_id!r}"
    return repr(value)
