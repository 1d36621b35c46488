"""What the stand-in has "created", per resource, with Leanpay's duplicate semantics.

Rows are tuples (id, createdAt, updatedAt, *field values in table order) rather than
dicts, so a tenant of a million invoices stays a few hundred MB; the full Leanpay-shaped
object is rebuilt when it is shown. The externalId index makes duplicate checks O(1).

Rows are kept in list order, by (createdAt, id), so a page in "oldest" or "newest" order
is a slice. By the millisecond (see `clock`) that is creation order and a new batch is
appended; by the second, rows of one tick tie on createdAt and list by id, as a database
ordering by createdAt alone might give them, so a batch sharing a tick with stored rows
goes in by bisection. The "id" order (Leanpay ids are random uuid4s,
unrelated to time) keeps a sorted index, built when first listed in that order and
updated by bisection on each creation while that order is in use.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import random
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from leanpay_standin.api import BATCHES, DATETIME_RESOURCES, UPDATES, Batch
from leanpay_standin.clock import Clock, Resolution

DuplicateMode = Literal["accept", "refuse", "ignore"]
DUPLICATE_MODES: tuple[DuplicateMode, ...] = ("accept", "refuse", "ignore")

ListOrder = Literal["oldest", "newest", "id"]
LIST_ORDERS: tuple[ListOrder, ...] = ("oldest", "newest", "id")
"""Orders `GET /invoices` can list in: by `createdAt` either way, or by Leanpay id."""

Row = tuple[Any, ...]
_ID, _CREATED, _UPDATED = 0, 1, 2
_list_key = operator.itemgetter(_CREATED, _ID)
"""The list order: by createdAt, rows created in one tick by id (a database's tie order,
unrelated to the order they were created in)."""
_FIRST_FIELD = 3

_SEED_CHUNK = 10_000
Shape = Callable[[dict[str, Any]], dict[str, Any]]
"""How an object shows inside another (a link inside its invoice), from its fields."""


@functools.lru_cache(maxsize=4096)
def _midnight(day: str, zone: str) -> str:
    """A date as a tenant storing it as midnight in `zone` echoes it: that instant in UTC
    (2024-03-05 in Europe/Paris: 2024-03-04T23:00:00.000Z; 22:00 in summer)."""
    midnight = datetime.combine(date.fromisoformat(day), time(), ZoneInfo(zone))
    return midnight.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


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
        empty_lists=("dueDates", "payments"),  # creditNoteLinks: the links store's
    ),
    "credit_notes": _Presentation(constants=(("status", "available"),)),
}


_MASK48 = (1 << 48) - 1


def _scramble(counter: int) -> int:
    """A bijection on 48 bits that scatters consecutive counters: ids must not sort in
    creation order, or listing "by id" would be listing oldest first in disguise."""
    mixed = (counter * 0x9E3779B97F4B) & _MASK48
    mixed ^= mixed >> 24
    mixed = (mixed * 0xBF58476D1CE5) & _MASK48
    return mixed ^ (mixed >> 24)


class IdFactory:
    """Valid, unique uuid4 strings at a fraction of `uuid.uuid4()`'s cost.

    A random uuid4 prefix per instance plus a scrambled counter in the last 12 hex
    digits: generating 100 ids per request with `uuid.uuid4()` would cost a noticeable
    share of the request budget. Unique below 2**48 ids; their order is unrelated to
    creation order, as Leanpay's random uuid4s are.
    """

    def __init__(self) -> None:
        head = f"{random.getrandbits(80):020x}"
        variant = "89ab"[int(head[15], 16) & 3]
        self._prefix = f"{head[:8]}-{head[8:12]}-4{head[13:16]}-{variant}{head[17:20]}-"
        self._counter = itertools.count(random.getrandbits(32))

    def __call__(self) -> str:
        return self.many(1)[0]

    def many(self, count: int) -> list[str]:
        """`count` new ids at once (one call per batch, not per item)."""
        prefix, counter = self._prefix, self._counter
        return [f"{prefix}{_scramble(next(counter)):012x}" for _ in range(count)]


@dataclass(frozen=True)
class Conflict:
    """A batch refused because of duplicate externalIds (mode "refuse")."""

    messages: list[str]


class Options(Protocol):
    """The settings the store follows (`state.Settings`), read when used."""

    created_at: Resolution
    date_zone: str | None


class ResourceStore:
    """The objects of one resource, in list order (by createdAt, then id).

    `parent_fields` (links: "invoiceId" and "creditNoteId") keep, per parent id, the ids
    of the objects naming it, so the parent can show them (an invoice's
    `creditNoteLinks[]`, a credit note's `invoiceLinks[]` and `paybacks[]`).
    """

    def __init__(
        self,
        batch: Batch,
        tenant_id: str,
        new_id: IdFactory,
        clock: Clock,
        options: Options,
        *,
        parent_fields: tuple[str, ...] = (),
    ) -> None:
        self.batch = batch
        self._options = options
        self._tenant_id = tenant_id
        self._new_id = new_id
        self._clock = clock
        self._names = tuple(batch.items)
        self._ext_pos = self._position("externalId")
        self._parent_pos = {name: self._names.index(name) + _FIRST_FIELD for name in parent_fields}
        datetime_fields = batch.name in DATETIME_RESOURCES
        self._date_names = tuple(
            name for name, prop in batch.items.items() if datetime_fields and prop.type == "date"
        )
        presentation = _PRESENTATIONS.get(batch.name, _Presentation())
        self._keys = ("id", "createdAt", "updatedAt", *self._names)
        self._constants = dict(presentation.constants, tenantId=tenant_id)
        self._copies = presentation.copies
        self._empty_lists = presentation.empty_lists
        self._nested: tuple[tuple[str, ResourceStore, str, Shape], ...] = ()
        self._lock = threading.Lock()
        self._rows: list[Row] = []
        """Every object, sorted by (createdAt, id): the list order, oldest first."""
        self._by_external_id: dict[str, Row] = {}
        """externalId -> the first row holding it."""
        self._by_id: dict[str, Row] | None = None
        """id -> row, built when first needed (a find, an update, a parent showing this
        resource's objects) and kept up to date from then on (memory)."""
        self._children: dict[str, dict[str, list[str]]] = {name: {} for name in parent_fields}
        """parent field -> parent id -> ids of the objects naming it, in creation order."""
        self._id_order: list[Row] | None = None
        self._late: list[Row] = []
        """Rows stored by a writer whose transaction has not committed yet: invisible to
        everything (lists, totals, finds, duplicate checks) until revealed."""

    def _position(self, name: str) -> int | None:
        return self._names.index(name) + _FIRST_FIELD if name in self._names else None

    def __len__(self) -> int:
        return len(self._rows)

    def show_inside(self, key: str, source: ResourceStore, parent_field: str, shape: Shape) -> None:
        """Show under `key`, in each object, the objects of `source` naming it in
        `parent_field`, each as `shape` makes it (an invoice's links)."""
        self._nested = (*self._nested, (key, source, parent_field, shape))

    def clear(self) -> None:
        """Forget every object, late ones too."""
        with self._lock:
            self._rows = []
            self._late = []
            self._reindex()

    def add_late(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store validated items invisibly, stamped now, as a writer's long transaction
        would; return them as its answer will show them."""
        with self._lock:
            stamps = self._clock.stamps(len(items))
            rows = [
                (new_id, stamp, stamp, *map(item.get, self._names))
                for item, new_id, stamp in zip(
                    items, self._new_id.many(len(items)), stamps, strict=True
                )
            ]
            self._late.extend(rows)
        return [self.present(row) for row in rows]

    def reveal(self) -> list[tuple[str, str | None]]:
        """Make every late row visible, in its createdAt's place; return (id, externalId)
        of each."""
        with self._lock:
            late, self._late = self._late, []
            ext_pos = self._ext_pos
            if ext_pos is not None:
                for row in late:
                    if row[ext_pos] is not None:
                        self._by_external_id.setdefault(row[ext_pos], row)
            self._insert(late)
        return [(row[_ID], None if ext_pos is None else row[ext_pos]) for row in late]

    def commit(
        self, items: Sequence[dict[str, Any]], mode: DuplicateMode
    ) -> list[dict[str, Any]] | Conflict:
        """Store a validated batch atomically; return the objects to answer with."""
        rows = self.add(items, mode)
        if isinstance(rows, Conflict):
            return rows
        return [self.present(row) for row in rows]

    def add(
        self,
        items: Sequence[dict[str, Any]],
        mode: DuplicateMode,
        created: Sequence[str] | None = None,
    ) -> list[Row] | Conflict:
        """Store a validated batch atomically; return one row per item (existing if ignored).

        `created`: the items' createdAt (seeding); by default the clock's next ones.
        """
        names, ext_pos = self._names, self._ext_pos
        with self._lock:
            index = self._by_external_id
            if mode == "refuse":
                messages = self._conflicts(items)
                if messages:
                    return Conflict(messages)
            stamps = self._clock.stamps(len(items)) if created is None else created
            new_rows: list[Row] = []
            shown: list[Row] = []
            for item, new_id, stamp in zip(
                items, self._new_id.many(len(items)), stamps, strict=True
            ):
                row = (new_id, stamp, stamp, *map(item.get, names))
                external_id = None if ext_pos is None else row[ext_pos]
                if external_id is not None:
                    first = index.get(external_id)
                    if first is None:
                        index[external_id] = row
                    elif mode == "ignore":
                        shown.append(first)
                        continue
                new_rows.append(row)
                shown.append(row)
            self._insert(new_rows)
        return shown

    def _insert(self, new_rows: list[Row]) -> None:
        """Put new rows in list order and in every index (caller holds the lock).

        Usually they all come after every stored row (one append); rows sharing a
        createdAt with stored ones, or older (a late row), go in by bisection.
        """
        rows = self._rows
        new_rows.sort(key=_list_key)
        if not rows or not new_rows or _list_key(new_rows[0]) > _list_key(rows[-1]):
            rows.extend(new_rows)
        else:
            for row in new_rows:
                bisect.insort(rows, row, key=_list_key)
        self._index(new_rows)

    def _index(self, new_rows: Iterable[Row]) -> None:
        """Bring the id, parent and id-order indexes up to date with new rows."""
        if self._by_id is not None:
            self._by_id.update((row[_ID], row) for row in new_rows)
        for name, position in self._parent_pos.items():
            children = self._children[name]
            for row in new_rows:
                children.setdefault(row[position], []).append(row[_ID])
        if self._id_order is not None:
            for row in new_rows:
                bisect.insort(self._id_order, row)

    def _reindex(self) -> None:
        """Rebuild every index from the rows (after a deletion)."""
        self._by_external_id = {}
        ext_pos = self._ext_pos
        if ext_pos is not None:
            for row in self._rows:
                if row[ext_pos] is not None:
                    self._by_external_id.setdefault(row[ext_pos], row)
        self._by_id = None
        self._children = {name: {} for name in self._parent_pos}
        self._id_order = None
        self._index(self._rows)

    def _ids(self) -> dict[str, Row]:
        """id -> row (caller holds the lock); built on first use."""
        if self._by_id is None:
            self._by_id = {row[_ID]: row for row in self._rows}
        return self._by_id

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
        obj.update(self._constants)
        zone = self._options.date_zone
        for name in self._date_names:
            value = obj[name]
            if value is not None:
                obj[name] = value + "T00:00:00.000Z" if zone is None else _midnight(value, zone)
        for shown, copied in self._copies:
            obj[shown] = obj[copied]
        for name in self._empty_lists:
            obj[name] = []
        for key, inner, parent_field, shape in self._nested:
            obj[key] = inner.children(parent_field, row[_ID], shape)
        return obj

    def objects(self, start: int = 0, stop: int | None = None) -> tuple[list[dict[str, Any]], int]:
        """Objects in list order, oldest first (a slice of them), and how many exist in all."""
        with self._lock:
            rows = self._rows[start:stop]
            total = len(self._rows)
        return [self.present(row) for row in rows], total

    def page(self, start: int, stop: int, order: ListOrder) -> tuple[list[dict[str, Any]], int]:
        """Objects `start` to `stop` (excluded) in `order`, and how many exist in all."""
        with self._lock:
            total = len(self._rows)
            if order == "oldest":
                rows = self._rows[start:stop]
            elif order == "newest":
                rows = self._rows[max(0, total - stop) : max(0, total - start)][::-1]
            else:
                if self._id_order is None:
                    self._id_order = sorted(self._rows)  # ids are unique: rows never tie
                rows = self._id_order[start:stop]
            if order != "id":
                self._id_order = None  # no upkeep for an order nobody lists in
        return [self.present(row) for row in rows], total

    def end(self, which: str) -> str | None:
        """The id of the "oldest" or "newest" object in list order; None if none."""
        with self._lock:
            if not self._rows:
                return None
            return str(self._rows[0 if which == "oldest" else -1][_ID])

    def children(self, parent_field: str, parent_id: str, shape: Shape) -> list[dict[str, Any]]:
        """The objects naming `parent_id` in `parent_field`, in creation order, each made by
        `shape` from a dict of its fields by name (with id, createdAt, updatedAt)."""
        if not self._children[parent_field].get(parent_id):  # most objects: no lock taken
            return []
        with self._lock:
            by_id = self._ids()
            rows = [by_id[i] for i in self._children[parent_field].get(parent_id, ())]
        return [shape(dict(zip(self._keys, row, strict=True))) for row in rows]

    def find(self, object_id: str) -> dict[str, Any] | None:
        """The object with this Leanpay id, as the API shows it; None if not stored."""
        with self._lock:
            row = self._ids().get(object_id)
        return None if row is None else self.present(row)

    def external_id_of(self, object_id: str) -> str | None:
        """The externalId of the object with this id (None if it has none or is gone)."""
        if self._ext_pos is None:
            return None
        with self._lock:
            row = self._ids().get(object_id)
        return None if row is None else row[self._ext_pos]

    def update(self, object_id: str, changes: Mapping[str, Any]) -> dict[str, Any] | None:
        """Replace fields of a stored object (validated `changes`); None if the id is unknown.

        Its `updatedAt` moves to the clock's next time; `createdAt` and the order stay.
        """
        if self.batch.name not in UPDATES:
            raise ValueError(f"{self.batch.name} cannot be updated")
        with self._lock:
            by_id = self._ids()
            old = by_id.get(object_id)
            if old is None:
                return None
            values = list(old)
            values[_UPDATED] = self._clock.stamp()
            for name, value in changes.items():
                values[self._names.index(name) + _FIRST_FIELD] = value
            row = tuple(values)
            self._rows[bisect.bisect_left(self._rows, _list_key(old), key=_list_key)] = row
            by_id[object_id] = row
            if self._id_order is not None:
                self._id_order[bisect.bisect_left(self._id_order, (object_id,))] = row
            ext_pos = self._ext_pos
            if ext_pos is not None and row[ext_pos] != old[ext_pos]:
                self._reindex()
            elif ext_pos is not None and self._by_external_id.get(row[ext_pos]) is old:
                self._by_external_id[row[ext_pos]] = row
        return self.present(row)

    def delete(
        self, ids: Collection[str], external_ids: Collection[str]
    ) -> list[tuple[str, str | None]]:
        """Remove the objects with these ids and every object holding these externalIds;
        return (id, externalId) of each removed, in list order.

        All or nothing: ValueError naming the unknown ones if any is not stored.
        """
        ids, external_ids = set(ids), set(external_ids)
        with self._lock:
            rows = self._rows
            known_ids = {row[_ID] for row in rows if row[_ID] in ids} if ids else set()
            unknown = [f"id {i!r}" for i in sorted(ids - known_ids)]
            unknown += [
                f"externalId {e!r}" for e in sorted(external_ids - self._by_external_id.keys())
            ]
            if unknown:
                raise ValueError(f"no such {self.batch.name}: {', '.join(unknown)}")
            ext_pos = self._ext_pos
            gone = [
                row
                for row in rows
                if row[_ID] in known_ids or (ext_pos is not None and row[ext_pos] in external_ids)
            ]
            if gone:
                gone_ids = {row[_ID] for row in gone}
                self._rows = [row for row in rows if row[_ID] not in gone_ids]
                self._reindex()
        return [(row[_ID], None if ext_pos is None else row[ext_pos]) for row in gone]


def _nested(
    item: dict[str, Any],
    other_key: str | None = None,
    other: ResourceStore | None = None,
    other_id: str | None = None,
) -> dict[str, Any]:
    """A link or payback as its document shows it (`date, amount, defaultCurrencyAmount,
    externalId`), with the link's other document as `{id, externalId}` under `other_key`."""
    shown = {
        "date": item["date"],
        "amount": item["amount"],
        "defaultCurrencyAmount": item["amount"],
        "externalId": item["externalId"],
    }
    if other_key is not None and other is not None and other_id is not None:
        shown[other_key] = {"id": other_id, "externalId": other.external_id_of(other_id)}
    return shown


class Store:
    """The stores of every batch resource of the API table, sharing one tenant and clock."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.new_id = IdFactory()
        self.clock = Clock(resolution=lambda: options.created_at)
        self.tenant_id = str(uuid.uuid4())
        parents = {"links": ("invoiceId", "creditNoteId"), "paybacks": ("creditNoteId",)}
        self.resources: dict[str, ResourceStore] = {
            name: ResourceStore(
                batch,
                self.tenant_id,
                self.new_id,
                self.clock,
                options,
                parent_fields=parents.get(name, ()),
            )
            for name, batch in BATCHES.items()
        }
        invoices, credit_notes = self["invoices"], self["credit_notes"]
        links, paybacks = self["links"], self["paybacks"]
        invoices.show_inside(
            "creditNoteLinks",
            links,
            "invoiceId",
            lambda link: _nested(link, "creditNote", credit_notes, link["creditNoteId"]),
        )
        credit_notes.show_inside("paybacks", paybacks, "creditNoteId", _nested)
        credit_notes.show_inside(
            "invoiceLinks",
            links,
            "creditNoteId",
            lambda link: _nested(link, "invoice", invoices, link["invoiceId"]),
        )
        self._seeded = 0

    def __getitem__(self, resource_name: str) -> ResourceStore:
        return self.resources[resource_name]

    def clear(self) -> None:
        """Forget every object of every resource, and restart the seed numbering."""
        self.empty()
        self._seeded = 0

    def empty(self) -> dict[str, int]:
        """Forget every object of every resource, as a tenant emptied in Leanpay; return how
        many each had. The tenant id stays, the clock goes on (it never goes back), and
        seeding goes on numbering after the invoices seeded before."""
        emptied = {}
        for name, resource_store in self.resources.items():
            emptied[name] = len(resource_store)
            resource_store.clear()
        return emptied

    def seed_invoices(
        self, count: int, client_id: str | None = None, batch: int | None = None
    ) -> list[str]:
        """Bulk-create invoices `seed-000001`, ... as if imported earlier; return externalIds.

        Without `batch`, their createdAt are one clock tick each (1 ms apart; all one
        second by the second), in seed order, the last one now (or just after anything
        created before). With `batch`, as a target filling the tenant would: each run of
        `batch` invoices shares one createdAt, one tick (ms or second) after the previous
        batch's, the last one now. Numbering continues after invoices seeded before, so
        seeding twice adds new ones.
        """
        if batch is not None and batch < 1:
            raise ValueError("batch must be a positive integer")
        invoices = self["invoices"]
        client = client_id or self.new_id()
        first = self._seeded + 1
        self._seeded += count
        if batch is None:
            created = self.clock.stamps(count, ending_now=True)
        else:
            stamps = self.clock.batch_stamps(-(-count // batch))
            created = [stamps[n // batch] for n in range(count)]
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
            invoices.add(items, "accept", created[start - first : start - first + len(items)])
            external_ids.extend(str(item["externalId"]) for item in items)
        return external_ids
