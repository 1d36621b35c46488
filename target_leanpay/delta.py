"""Delta listing: read only the pages of `GET /invoices` that can hold invoices the
tenant index lacks, and prove the result against Leanpay's own `total`.

Leanpay documents no list order. The order is inferred from `createdAt` on page 1
(newest first, oldest first, or neither) and verified on every row read after it. Then:

* newest first: the invoices the index lacks are on the first pages; oldest first, on
  the last ones (`pageCount`), read backwards. Either way the rows are walked from the
  newest down, and the walk stops once it has found `total - invoices in the index` of
  them, the count that adds up when nothing was deleted;
* anything that disagrees means a full listing, with the reason: a count below the
  index's (deletions), rows out of order, a `total` that changes between pages, an
  invoice the index lacks that is older than the newest one the last verified listing
  saw, a walk that passes that watermark without finding the count, more new ones than
  the count allows, an order that differs from the one seen last time, or an index so
  far behind that reading every page costs about as much.

This module only decides; it reads pages through the callable it is given, which is
what lets the unit tests drive every case with a fake tenant.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from target_leanpay import changes
from target_leanpay.resources import INVOICES
from target_leanpay.tenant_index import Row, Watermark

Order = Literal["newest", "oldest"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of `GET /invoices`, as the delta needs it."""

    number: int
    rows: list[Row]
    total: int | None
    page_count: int | None


def created_at(value: Any) -> int | None:
    """A `createdAt` date-time in microseconds since the epoch; None if unreadable."""
    return _created_at(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=1024)
def _created_at(value: str) -> int | None:
    """Cached: a batch's items, and a page's rows, mostly share one `createdAt`."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def row_of(obj: Any) -> Row | None:
    """The invoice `obj` as a Row; None without a Leanpay id."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return None
    external_id = obj.get("externalId")
    tenant = obj.get("tenantId")
    return Row(
        obj["id"],
        str(external_id) if external_id not in (None, "") else None,
        created_at(obj.get("createdAt")),
        tenant if isinstance(tenant, str) else None,
        changes.encode(changes.kept(INVOICES, obj)),
    )


def page_of(number: int, body: dict[str, Any]) -> Page:
    """Parse a page's JSON object."""
    rows = [row for row in map(row_of, body.get("data") or []) if row is not None]
    return Page(number, rows, _int(body.get("total")), _int(body.get("pageCount")))


def tenant_of(page: Page) -> str | None:
    """The tenantId the page's invoices carry (None: an empty page, or none given)."""
    return next((row.tenant_id for row in page.rows if row.tenant_id), None)


def infer_order(rows: Sequence[Row]) -> Order | Literal["unordered"] | None:
    """The order of `rows` by createdAt; None when it cannot be told (fewer than two
    distinct times); "unordered" when it holds neither way or a time is missing."""
    times = [row.created_at for row in rows]
    if any(t is None for t in times):
        return "unordered"
    pairs = list(itertools.pairwise(times))
    up = any(a < b for a, b in pairs)  # type: ignore[operator]
    down = any(a > b for a, b in pairs)  # type: ignore[operator]
    if up and down:
        return "unordered"
    return "oldest" if up else "newest" if down else None


class Known(Protocol):
    """What the delta asks of the index (`TenantIndex`, or a fake)."""

    def count(self) -> int:
        """Invoices in the index."""

    def has(self, rows: Sequence[Row]) -> set[str]:
        """The Leanpay ids of these rows the index holds (by createdAt and id)."""

    def watermark(self) -> Watermark:
        """What the last verified listing established."""


@dataclass(frozen=True)
class Delta:
    """A verified delta: the invoices the index lacked; the index plus these is the tenant."""

    new: list[Row]
    pages: int
    order: Order
    total: int


@dataclass(frozen=True)
class FullListing:
    """The delta cannot be trusted: every page must be read."""

    reason: str
    order: Order | None = None
    """The order page 1 showed, if any (recorded with the full listing)."""


PageReader = Callable[[Sequence[int]], list[Page]]
"""Reads these pages (several at once), returned in the order asked."""


def _as_order(value: str | None) -> Order | None:
    return "newest" if value == "newest" else "oldest" if value == "oldest" else None


def read_delta(
    first: Page, known: Known, read_pages: PageReader, *, wave: int
) -> Delta | FullListing:
    """Read, from page 1 already read, what the index lacks; or say why not."""
    planned = _plan(first, known)
    if isinstance(planned, FullListing):
        return planned
    order, expected, needed = planned
    assert first.total is not None and first.page_count is not None
    walk = _Walk(known, known.watermark(), expected, first.total, order)
    sequence = list(range(1, first.page_count + 1))
    if order == "oldest":
        sequence.reverse()
    pages = 1  # page 1, read by the caller
    position, batch = 0, needed
    while position < len(sequence):
        numbers = sequence[position : position + batch]
        position, batch = position + len(numbers), wave
        to_read = [n for n in numbers if n != 1]
        got = {p.number: p for p in read_pages(to_read)} if to_read else {}
        pages += len(to_read)
        got[1] = first
        for number in numbers:
            problem = walk.page(got[number])
            if problem is not None:
                return FullListing(problem, order)
            if walk.done:
                return Delta(list(walk.found.values()), pages, order, first.total)
    return FullListing(walk.short(), order)


def _plan(first: Page, known: Known) -> tuple[Order, int, int] | FullListing:  # noqa: PLR0911
    """The order, how many invoices the index lacks, and how many pages to read first;
    or why a delta cannot be trusted (one return per reason, in the order checked)."""
    seen = infer_order(first.rows)
    shown = _as_order(seen)
    mark = known.watermark()
    if not mark.complete:
        return FullListing("no verified index of this tenant yet", shown)
    total, page_count = first.total, first.page_count
    if total is None or page_count is None:
        return FullListing("the pages carry no total or pageCount", shown)
    expected = total - known.count()
    if expected < 0:
        return FullListing(
            f"Leanpay lists {total} invoices, {-expected} fewer than the index holds "
            "(deleted in Leanpay?)",
            shown,
        )
    if seen == "unordered":
        return FullListing("page 1 is in no order of createdAt")
    order = shown or _as_order(mark.order)
    if order is None:
        if page_count > 1:
            return FullListing("the list order cannot be told from page 1")
        order = "newest"  # one page: read whole either way
    if mark.order is not None and order != mark.order:
        return FullListing(f"the list was {mark.order} first, it is now {order} first", order)
    needed = max(math.ceil(expected / max(len(first.rows), 1)), 1)
    if page_count > 2 and 2 * needed > page_count:
        return FullListing(
            f"{expected} invoices are new since the index was last verified: reading every "
            "page costs about as much",
            order,
        )
    return order, expected, needed


class _Walk:
    """The rows from the newest down, checked one at a time."""

    def __init__(self, known: Known, mark: Watermark, expected: int, total: int, order: Order):
        self._known = known
        self._mark = mark
        self._expected = expected
        self._total = total
        self._order = order
        self._last: int | None = None
        self.found: dict[str, Row] = {}
        self.done = False

    def page(self, page: Page) -> str | None:  # noqa: PLR0911 - one reason per return
        """Check one page; return why the delta fails, if it does."""
        if page.total != self._total:
            return f"the tenant changed while it was read (total {self._total}, then {page.total})"
        rows = page.rows if self._order == "newest" else list(reversed(page.rows))
        held = self._known.has(rows)
        for row in rows:
            if row.created_at is None:
                return f"an invoice on page {page.number} has no readable createdAt"
            if self._last is not None and row.created_at > self._last:
                return f"the {self._order}-first order does not hold on page {page.number}"
            self._last = row.created_at
            if row.leanpay_id in held or row.leanpay_id in self.found:
                continue
            newest = self._mark.newest
            if newest is not None and row.created_at < newest:
                return (
                    f"invoice {row.leanpay_id} (page {page.number}) is older than the newest "
                    "the index holds, yet missing from it"
                )
            self.found[row.leanpay_id] = row
        if len(self.found) > self._expected:
            return (
                f"more invoices are missing from the index ({len(self.found)}) than the "
                f"count allows ({self._expected}): some it holds were deleted in Leanpay?"
            )
        self.done = len(self.found) == self._expected
        newest = self._mark.newest
        if not self.done and newest is not None and self._last is not None and self._last < newest:
            return self.short()
        return None

    def short(self) -> str:
        """The count does not add up."""
        return (
            f"the count does not add up: Leanpay lists {self._total} invoices, the index "
            f"holds {self._total - self._expected} and only {len(self.found)} new ones were "
            "found where new ones are listed"
        )
