"""What the stand-in has "created", per resource, with Leanpay's duplicate semantics.

Rows are tuples (id, createdAt, *field values in table order) rather than dicts, so a
tenant of a million invoices stays a few hundred MB; the full Leanpay-shaped object is
rebuilt when it is shown. The externalId index makes duplicate checks O(1).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from leanpay_standin.api import BATCHES, Batch

DuplicateMode = Literal["accept", "refuse", "ignore"]
DUPLICATE_MODES: tuple[DuplicateMode, ...] = ("accept", "refuse", "ignore")

Row = tuple[Any, ...]
_ID, _CREATED = 0, 1
_FIRST_FIELD = 2

_SEED_CHUNK = 10_000
_DATETIME_RESOURCES = frozenset({"invoices"})
"""Resources whose responses show dates as date-times (only invoices are documented so)."""


@dataclass(frozen=True)
class _Presentation:
    """What Leanpay adds to a stored item when showing it (only invoices are documented)."""

    constants: tuple[tuple[str, Any], ...] = ()
    copies: tuple[tuple[str, str], ...] = ()
    """(shown field, source field): e.g. remainingAmount starts as amount."""
    empty_lists: tuple[str, ...] = ()


_PRESENTATIONS: dict[str, _Presentation] = {
    "invoices": _Presentation(
        constants=(
            ("status", "due"),
            ("paidAmount", 0),
            ("offsetAmount", 0),
            ("upcomingPaymentDate", None),
        ),
        copies=(("remainingAmount", "amount"),),
        empty_lists=("dueDates", "payments", "creditNoteLinks"),
    ),
    "credit_notes": _Presentation(constants=(("status", "available"),)),
}


def utc_timestamp() -> str:
    """Now, as Leanpay writes createdAt ("2024-03-01T12:34:56.789Z")."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class IdFactory:
    """Valid, unique uuid4 strings at a fraction of `uuid.uuid4()`'s cost.

    A random uuid4 prefix per instance plus a counter in the last 12 hex digits:
    generating 100 ids per request with `uuid.uuid4()` would cost a noticeable share of
    the request budget.
    """

    def __init__(self) -> None:
        head = f"{random.getrandbits(80):020x}"
        variant = "89ab"[int(head[15], 16) & 3]
        self._prefix = f"{head[:8]}-{head[8:12]}-4{head[13:16]}-{variant}{head[17:20]}-"
        self._counter = itertools.count(random.getrandbits(32))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"

    def many(self, count: int) -> list[str]:
        """`count` new ids at once (one call per batch, not per item)."""
        prefix, counter = self._prefix, self._counter
        return [f"{prefix}{next(counter) & 0xFFFFFFFFFFFF:012x}" for _ in range(count)]


@dataclass(frozen=True)
class Conflict:
    """A batch refused because of duplicate externalIds (mode "refuse")."""

    messages: list[str]


class ResourceStore:
    """The objects of one resource, in creation order."""

    def __init__(self, batch: Batch, tenant_id: str, new_id: IdFactory) -> None:
        self.batch = batch
        self._tenant_id = tenant_id
        self._new_id = new_id
        self._names = tuple(batch.items)
        self._ext_pos = (
            self._names.index("externalId") + _FIRST_FIELD if "externalId" in self._names else None
        )
        datetime_fields = batch.name in _DATETIME_RESOURCES
        self._date_names = tuple(
            name for name, prop in batch.items.items() if datetime_fields and prop.type == "date"
        )
        presentation = _PRESENTATIONS.get(batch.name, _Presentation())
        self._keys = ("id", "createdAt", *self._names)
        self._constants = dict(presentation.constants, tenantId=tenant_id)
        self._copies = presentation.copies
        self._empty_lists = presentation.empty_lists
        self._lock = threading.Lock()
        self._rows: list[Row] = []
        self._by_external_id: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        """Forget every object."""
        with self._lock:
            self._rows = []
            self._by_external_id = {}

    def commit(
        self, items: Sequence[dict[str, Any]], mode: DuplicateMode
    ) -> list[dict[str, Any]] | Conflict:
        """Store a validated batch atomically; return the objects to answer with."""
        rows = self.add(items, mode)
        if isinstance(rows, Conflict):
            return rows
        return [self.present(row) for row in rows]

    def add(self, items: Sequence[dict[str, Any]], mode: DuplicateMode) -> list[Row] | Conflict:
        """Store a validated batch atomically; return one row per item (existing if ignored)."""
        names, ext_pos = self._names, self._ext_pos
        created_at = utc_timestamp()
        with self._lock:
            index = self._by_external_id
            if mode == "refuse":
                messages = self._conflicts(items)
                if messages:
                    return Conflict(messages)
            rows = self._rows
            shown: list[Row] = []
            for item, new_id in zip(items, self._new_id.many(len(items)), strict=True):
                row = (new_id, created_at, *map(item.get, names))
                external_id = None if ext_pos is None else row[ext_pos]
                if external_id is not None:
                    position = index.get(external_id)
                    if position is None:
                        index[external_id] = len(rows)
                    elif mode == "ignore":
                        shown.append(rows[position])
                        continue
                rows.append(row)
                shown.append(row)
        return shown

    def _conflicts(self, items: Iterable[dict[str, Any]]) -> list[str]:
        key = self.batch.body_key
        index = self._by_external_id
        in_batch: set[str] = set()
        messages = []
        for position, item in enumerate(items):
            external_id = item.get("externalId")
            if external_id is None:
                continue
            if external_id in index or external_id in in_batch:
                messages.append(f"{key}.{position}.externalId already exists")
            in_batch.add(external_id)
        return messages

    def present(self, row: Row) -> dict[str, Any]:
        """The Leanpay-shaped object of a row (a fresh dict: callers may keep or change it)."""
        obj = dict(zip(self._keys, row, strict=True))
        obj["updatedAt"] = row[_CREATED]
        obj.update(self._constants)
        for name in self._date_names:
            value = obj[name]
            if value is not None:
                obj[name] = value + "T00:00:00.000Z"
        for shown, source in self._copies:
            obj[shown] = obj[source]
        for name in self._empty_lists:
            obj[name] = []
        return obj

    def objects(self, start: int = 0, stop: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """Objects in creation order (a slice of them), and how many exist in all."""
        with self._lock:
            rows = self._rows[start:stop]
            total = len(self._rows)
        return [self.present(row) for row in rows], total


class Store:
    """The stores of every batch resource of the API table, sharing one tenant."""

    def __init__(self) -> None:
        self.new_id = IdFactory()
        self.tenant_id = str(uuid.uuid4())
        self.resources: dict[str, ResourceStore] = {
            name: ResourceStore(batch, self.tenant_id, self.new_id)
            for name, batch in BATCHES.items()
        }
        self._seeded = 0

    def __getitem__(self, resource_name: str) -> ResourceStore:
        return self.resources[resource_name]

    def clear(self) -> None:
        """Forget every object of every resource."""
        for resource_store in self.resources.values():
            resource_store.clear()
        self._seeded = 0

    def seed_invoices(self, count: int, client_id: str | None = None) -> list[str]:
        """Bulk-create invoices `seed-000001`, ... as if imported earlier; return externalIds.

        Numbering continues after invoices seeded before, so seeding twice adds new ones.
        """
        invoices = self["invoices"]
        client = client_id or self.new_id()
        first = self._seeded + 1
        self._seeded += count
        external_ids: list[str] = []
        for start in range(first, first + count, _SEED_CHUNK):
            items = [
                {
                    "clientId": client,
                    "reference": f"SEED-{number:06d}",
                    "amount": 10_000 + number,
                    "issueDate": "2024-01-15",
                    "dueDate": "2024-02-15",
                    "externalId": f"seed-{number:06d}",
                }
                for number in range(start, min(start + _SEED_CHUNK, first + count))
            ]
            invoices.add(items, "accept")
            external_ids.extend(str(item["externalId"]) for item in items)
        return external_ids
