"""Delta listing's decisions, against a fake tenant and a fake index: which pages it reads,
what it finds, and each reason it gives for reading every page instead."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from target_leanpay.listings.delta import Delta, FullListing, infer_order, read_delta
from target_leanpay.listings.listing import Listing, Page, created_at
from target_leanpay.store.tenant_index import Row, Watermark

SIZE = 25


def row(n: int, when: int | None = None) -> Row:
    return Row(f"id-{n}", f"INV-{n}", n if when is None else when, "tenant-1")


@dataclass
class FakeTenant:
    """Invoices 0..n-1 created in that order; pages of 25 in `order`; records reads."""

    rows: list[Row]
    order: str = "newest"
    read: list[int] = field(default_factory=list)
    total_shown: int | None = None

    def listed(self) -> list[Row]:
        if self.order == "newest":
            return list(reversed(self.rows))
        if self.order == "id":
            return sorted(self.rows, key=lambda r: hash(r.leanpay_id) % 1000)
        return list(self.rows)

    def page(self, number: int) -> Page:
        everything = self.listed()
        total = len(everything) if self.total_shown is None else self.total_shown
        count = -(-len(everything) // SIZE)
        return Page(number, everything[(number - 1) * SIZE : number * SIZE], total, count)

    def read_pages(self, numbers: Sequence[int]) -> list[Page]:
        self.read.extend(numbers)
        return [self.page(n) for n in numbers]


@dataclass
class FakeIndex:
    ids: set[str]
    mark: Watermark

    def count(self) -> int:
        return len(self.ids)

    def has(self, rows: Sequence[Row]) -> set[str]:
        return {r.leanpay_id for r in rows if r.leanpay_id in self.ids}

    def watermark(self) -> Watermark:
        return self.mark


def synced(rows: list[Row], order: str | None = "newest") -> FakeIndex:
    newest = max((r.created_at for r in rows if r.created_at is not None), default=None)
    return FakeIndex({r.leanpay_id for r in rows}, Watermark(True, newest, len(rows), order))


def delta(tenant: FakeTenant, index: FakeIndex) -> Delta | FullListing:
    return read_delta(tenant.page(1), index, tenant.read_pages, wave=4)


def ids(rows: Sequence[Row]) -> list[str]:
    return sorted(r.leanpay_id for r in rows)


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_every_row_newer_than_the_watermark_is_read_to_the_boundary(order: str) -> None:
    old = [row(n) for n in range(10_000)]  # 400 pages
    tenant = FakeTenant(old + [row(n) for n in range(10_000, 10_100)], order)
    found = delta(tenant, synced(old, order))
    assert isinstance(found, Delta) and found.deleted == 0 and not found.whole
    assert ids(found.new) == sorted(f"id-{n}" for n in range(10_000, 10_100))
    if order == "newest":  # 100 new: pages 1-4; the boundary (id-9999) opens page 5
        assert tenant.read == [2, 3, 4, 5]
    else:  # the last pages, backwards: 10,100 invoices are 404 pages
        assert tenant.read == [404, 403, 402, 401, 400]
    assert found.pages == 1 + len(tenant.read)
    assert found.order == order and found.total == 10_100


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_nothing_new_costs_page_one_and_in_an_oldest_first_list_the_last_page(order: str) -> None:
    rows = [row(n) for n in range(1000)]
    tenant = FakeTenant(rows, order)
    found = delta(tenant, synced(rows, order))
    assert isinstance(found, Delta) and found.new == [] and found.deleted == 0
    assert tenant.read == ([] if order == "newest" else [40])


def batches(first: int, count: int, second: int) -> list[Row]:
    """Invoices imported by this target: a batch of 100 shares one createdAt."""
    return [row(n, second + (n - first) // 100) for n in range(first, first + count)]


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_pages_that_tie_are_compared_with_the_last_page_and_walked(order: str) -> None:
    loaded = batches(0, 2000, 1_000)  # 80 pages whose rows tie, 4 pages per createdAt
    index = synced(loaded, None)
    tenant = FakeTenant(list(loaded), order)
    found = delta(tenant, index)
    assert isinstance(found, Delta) and found.new == [] and found.order == order
    assert tenant.read == [80]  # page 1 against page 80, either order

    # the next run: 110 more loaded (in the index, newer than the watermark), 3 by another
    acknowledged = batches(2000, 110, 2_000)
    theirs = batches(2110, 3, 3_000)
    index.ids |= {r.leanpay_id for r in acknowledged}
    tenant = FakeTenant(loaded + acknowledged + theirs, order)
    found = delta(tenant, index)
    assert isinstance(found, Delta) and found.deleted == 0
    assert ids(found.new) == ids(theirs)
    assert found.pages <= 20
    last = -(-2113 // SIZE)
    if order == "newest":  # page 1 shows two createdAt; 113 newer rows: the boundary on 5
        assert tenant.read == [2, 3, 4, 5]
    else:  # the last page first, then waves of 4 backwards: the boundary is on page 80
        assert tenant.read == [last, *range(last - 1, last - 9, -1)]


def test_a_tenant_in_one_createdat_at_the_watermark_is_proved_by_its_count() -> None:
    # a reload of the whole tenant within one second: no order shows, but nothing newer
    # than the watermark is at either end, where an order by time would put it
    rows = [row(n, 7) for n in range(100)]
    tenant = FakeTenant(rows)
    found = delta(tenant, synced(rows))
    assert isinstance(found, Delta) and found.new == [] and found.deleted == 0
    assert tenant.read == [4] and found.pages == 2

    tenant = FakeTenant([*rows[:50], row(100, 7), *rows[50:]])  # one more in that second
    found = delta(tenant, synced(rows))
    assert isinstance(found, FullListing) and "count does not add up" in found.reason


def test_page_one_and_the_last_page_tying_past_the_watermark_tell_no_order() -> None:
    rows = [row(n, 9) for n in range(100)]
    tenant = FakeTenant(rows)
    found = delta(tenant, synced([row(0, 7)]))
    assert isinstance(found, FullListing)
    assert "page 1 and the last page share one createdAt" in found.reason
    assert tenant.read == [4]


def test_26_created_and_1_deleted_every_new_one_is_found_and_the_deletion_counted() -> None:
    rows = [row(n) for n in range(1000)]
    theirs = [row(n) for n in range(1000, 1026)]
    tenant = FakeTenant([*rows[:500], *rows[501:], *theirs])
    found = delta(tenant, synced(rows))
    assert isinstance(found, Delta)
    assert ids(found.new) == ids(theirs)  # not 25: the walk goes to the boundary
    assert found.deleted == 1


def test_three_created_in_the_last_page_oldest_first_are_all_found() -> None:
    rows = [row(n) for n in range(1010)]  # 41 pages, the last one of 10
    theirs = [row(n) for n in range(1010, 1013)]
    tenant = FakeTenant([*rows[1:], *theirs], "oldest")  # one deleted too
    found = delta(tenant, synced(rows, "oldest"))
    assert isinstance(found, Delta)
    assert ids(found.new) == ids(theirs) and found.deleted == 1
    assert tenant.read == [41]


def test_a_deletion_is_counted_not_a_full_listing() -> None:
    rows = [row(n) for n in range(100)]
    tenant = FakeTenant(rows[:50] + rows[51:])
    found = delta(tenant, synced(rows))
    assert isinstance(found, Delta) and found.new == [] and found.deleted == 1


def test_a_deletion_hidden_by_a_creation_is_an_exact_count() -> None:
    # the documented limit is a deletion offset by a row the walk cannot see; one it
    # reads is found, and the count then shows the deletion
    rows = [row(n) for n in range(100)]
    tenant = FakeTenant([*rows[:-1], row(100)])  # the newest deleted, one created
    found = delta(tenant, synced(rows))
    assert isinstance(found, Delta)
    assert ids(found.new) == ["id-100"] and found.deleted == 1


def test_a_row_that_became_visible_late_makes_the_count_short() -> None:
    rows = [row(n) for n in range(1000)]
    late = Row("id-late", "INV-late", 50, "tenant-1")  # older than the watermark
    tenant = FakeTenant(sorted([*rows, late], key=lambda r: r.created_at or 0))
    found = delta(tenant, synced(rows))
    assert isinstance(found, FullListing)
    assert "the count does not add up: Leanpay lists 1001 invoices, 1 more" in found.reason


def test_a_row_created_in_the_watermarks_second_is_not_read_and_the_count_catches_it() -> None:
    loaded = batches(0, 500, 1_000)  # the last batch shares second 1004: 4 pages
    later = Row("id-later", "INV-later", 1_004, "tenant-1")  # same second, after the listing
    tenant = FakeTenant([*loaded, later], "oldest")
    listed = [*loaded[:410], later, *loaded[410:]]  # ties in no particular order
    tenant.listed = lambda: listed  # type: ignore[method-assign]
    found = delta(tenant, synced(loaded, "oldest"))
    assert isinstance(found, FullListing)
    assert "count does not add up" in found.reason
    assert tenant.read == [21]  # the last page: not every page of that second


def test_a_reset_tenant_refilled_with_more_is_read_whole_and_rebuilds_the_index() -> None:
    before = [row(n) for n in range(100)]
    refilled = [Row(f"new-{n}", f"INV-{n}", 1_000 + n, "tenant-1") for n in range(150)]
    tenant = FakeTenant(refilled)
    found = delta(tenant, synced(before))
    assert isinstance(found, Delta) and found.whole
    assert ids(found.read) == ids(refilled)
    assert tenant.read == [2, 3, 4, 5, 6]


def test_an_order_that_breaks_on_a_later_page_is_a_full_listing() -> None:
    old = [row(n) for n in range(1000)]
    new = [row(n) for n in range(1000, 1060)]
    tenant = FakeTenant(old + new)
    listed = tenant.listed()
    listed[30], listed[60] = listed[60], listed[30]  # page 2 and 3 disagree with time
    tenant.listed = lambda: listed  # type: ignore[method-assign]
    found = delta(tenant, synced(old))
    assert isinstance(found, FullListing)
    assert "newest-first order does not hold on page 2" in found.reason


@pytest.mark.parametrize(
    ("tenant", "verified", "reason"),
    [
        (FakeTenant([row(n) for n in range(100)], "id"), True, "no order of createdAt"),
        (FakeTenant([row(n) for n in range(100)]), False, "no verified index"),
    ],
)
def test_each_reason_for_a_full_listing(tenant: FakeTenant, verified: bool, reason: str) -> None:
    known = synced(tenant.rows)
    if not verified:
        known.mark = Watermark(False, None, 0, None)
    found = delta(tenant, known)
    assert isinstance(found, FullListing)
    assert reason in found.reason, found.reason


def test_a_total_that_changes_between_pages_is_a_full_listing() -> None:
    old = [row(n) for n in range(1000)]
    tenant = FakeTenant(old + [row(n) for n in range(1000, 1060)])
    first = tenant.page(1)
    tenant.rows.append(row(2000))  # another writer between page 1 and page 2
    found = read_delta(first, synced(old), tenant.read_pages, wave=4)
    assert isinstance(found, FullListing)
    assert "changed while it was read" in found.reason


def test_order_and_time_parsing() -> None:
    assert infer_order([row(3), row(2), row(2)]) == "newest"
    assert infer_order([row(1), row(2)]) == "oldest"
    assert infer_order([row(1), row(3), row(2)]) == "unordered"
    assert infer_order([row(1, 5), row(2, 5)]) is None
    assert infer_order([Row("a", None, None)]) == "unordered"
    assert created_at("2023-11-07T05:31:56.001Z") == 1699335116_001000
    assert created_at("2023-11-07") is None  # no time zone: cannot be compared
    assert created_at(None) is None
    listing = Listing(
        "invoices",
        "/invoices",
        lambda path, number: {},
        concurrency=1,
        stopping=threading.Event(),
        keep=lambda obj: f"kept {obj['id']}".encode(),
    )
    page = listing.page(1, {"data": [{"id": "x", "externalId": "", "tenantId": "t"}, "junk"]})
    assert page.rows == [Row("x", None, None, "t", b"kept x")] and page.total is None
