"""Delta listing: read only the pages of `GET /invoices` that hold invoices created since
the tenant index was last verified, and say what Leanpay's `total` then proves (the
details: docs/architecture.md, "Exactly once, in detail").

Leanpay documents no list order nor filter, so the order is inferred from distinct
`createdAt` values (page 1, else page 1 against the last page: a batch of 100 shares
one), and the walk stops at the first row not strictly newer than the watermark, never at
a count: a row created in the watermark's own second, like one that became visible late,
is caught by the count. Anything that disagrees (rows out of order, a `total` that
changes, page 1 and the last page tying past the watermark) means a full listing, with
the reason. Pages are read through the callable given, so unit tests drive every case
with a fake tenant.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from target_leanpay.listings.listing import Page
from target_leanpay.store.store import InvoiceCache, Row

Order = Literal["newest", "oldest"]


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


@dataclass(frozen=True)
class Delta:
    """A walk to the boundary: what it read, and what the count then says."""

    new: list[Row]
    """The rows the index lacked."""
    read: list[Row]
    """Every row the walk read: each proves its own presence."""
    pages: int
    order: Order
    total: int
    whole: bool = False
    """The walk read every page and its distinct rows add up to `total`: a full listing."""
    deleted: int = 0
    """The index holds at least this many invoices Leanpay no longer lists (0: adds up)."""


@dataclass(frozen=True)
class FullListing:
    """The delta cannot be trusted: every page must be read."""

    reason: str
    order: Order | None = None
    """The order the pages showed, if any (recorded with the full listing)."""


PageReader = Callable[[Sequence[int]], list[Page]]
"""Reads these pages (several at once), returned in the order asked."""


def read_delta(  # noqa: PLR0911 - one return per reason
    first: Page,
    known: InvoiceCache,
    read_pages: PageReader,
    *,
    wave: int,
    newest: int | None = None,
) -> Delta | FullListing:
    """Read, from page 1 already read, every row newer than the watermark (or `newest`, the
    boundary of this run's walks, once set); or say why every page must be read. `wave`:
    pages read at once past the first estimate."""
    mark = known.watermark()
    if not mark.complete:
        return FullListing("no verified index of this tenant yet")
    boundary = mark.newest if newest is None else newest
    total, page_count = first.total, first.page_count
    if total is None or page_count is None:
        return FullListing("the pages carry no total or pageCount")
    got = {1: first}
    order = infer_order(first.rows)
    if order is None and page_count > 1:  # page 1 ties: compare it with the other end
        (got[page_count],) = read_pages([page_count])
        order = infer_order(first.rows + got[page_count].rows)
        if order is None:
            return _both_ends(first, got[page_count], known, boundary, total)
    if order == "unordered":
        return FullListing("the pages are in no order of createdAt")
    order = order or "newest"  # one page: read whole either way
    sequence = list(range(1, page_count + 1))
    if order == "oldest":
        sequence.reverse()
    walk = _Walk(known, boundary, total, order)
    rows_per_page = max(len(first.rows), 1)
    batch = math.ceil((max(total - known.count(), 0) + 1) / rows_per_page)
    pages, position = len(got), 0
    while position < len(sequence):
        numbers = sequence[position : position + max(batch, 1)]
        position, batch = position + len(numbers), wave
        to_read = [n for n in numbers if n not in got]
        if to_read:
            got.update((p.number, p) for p in read_pages(to_read))
            pages += len(to_read)
        for number in numbers:
            problem = walk.page(got[number])
            if problem is not None:
                return FullListing(problem, order)
            if walk.crossed:
                return walk.result(pages, whole=False)
    return walk.result(pages, whole=True)


def _both_ends(
    first: Page, last: Page, known: InvoiceCache, newest: int | None, total: int
) -> Delta | FullListing:
    """Page 1 and the last page share one createdAt: no order shows. When it is not newer
    than the watermark, nothing newer is at either end, where any order by time puts it,
    and the count decides (the README names the limit); otherwise every page is read."""
    tie = first.rows[0].created_at if first.rows else None
    if tie is None or newest is None or tie > newest:
        return FullListing("page 1 and the last page share one createdAt: no order shows")
    walk = _Walk(known, newest, total, "newest")
    for page in (first, last):
        problem = walk.page(page)
        if problem is not None:
            return FullListing(problem)
    return walk.result(2, whole=False)


class _Walk:
    """The rows from the newest down, checked one at a time."""

    def __init__(self, known: InvoiceCache, newest: int | None, total: int, order: Order) -> None:
        self._known = known
        self._newest = newest
        self._total = total
        self._order: Order = order
        self._last: int | None = None
        self.read: dict[str, Row] = {}
        self.new: dict[str, Row] = {}
        self.crossed = False

    def page(self, page: Page) -> str | None:
        """Check one page; return why the delta fails, if it does."""
        if page.total != self._total:
            return f"the tenant changed while it was read (total {self._total}, then {page.total})"
        rows = page.rows if self._order == "newest" else list(reversed(page.rows))
        held = self._known.has(rows)
        for row in rows:
            leanpay_id = row.leanpay_id
            if leanpay_id is None:  # not an invoice of the list
                continue
            if row.created_at is None:
                return f"an invoice on page {page.number} has no readable createdAt"
            if self._last is not None and row.created_at > self._last:
                return f"the {self._order}-first order does not hold on page {page.number}"
            self._last = row.created_at
            self.read[leanpay_id] = row
            if leanpay_id not in held:
                self.new[leanpay_id] = row
            if self._newest is not None and row.created_at <= self._newest:
                self.crossed = True  # the boundary; the rest of the page comes free
        return None

    def result(self, pages: int, *, whole: bool) -> Delta | FullListing:
        """What the count says once the walk ended (at the boundary, or past page 1)."""
        new, read = list(self.new.values()), list(self.read.values())
        if whole:
            if len(read) != self._total:
                return FullListing(
                    f"every page was read, and its {len(read)} distinct invoices do not add up "
                    f"to the {self._total} Leanpay lists",
                    self._order,
                )
            return Delta(new, read, pages, self._order, self._total, whole=True)
        short = self._total - self._known.count() - len(new)
        if short > 0:
            return FullListing(
                f"the count does not add up: Leanpay lists {self._total} invoices, {short} "
                "more than the index and the rows created since hold (one that became "
                "visible late, or created in the second of the last listing)",
                self._order,
            )
        return Delta(new, read, pages, self._order, self._total, deleted=-short)
