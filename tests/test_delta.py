"""Delta listing's decisions, against a fake tenant and a fake index: which pages it reads,
what it finds, and each reason it gives for reading every page instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from target_leanpay.delta import (
    Delta,
    FullListing,
    Page,
    created_at,
    infer_order,
    page_of,
    read_delta,
)
from target_leanpay.tenant_index import Row, Watermark

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


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_the_pages_holding_new_invoices_are_read_and_nothing_else(order: str) -> None:
    old = [row(n) for n in range(10_000)]  # 400 pages
    tenant = FakeTenant(old + [row(n) for n in range(10_000, 10_100)], order)
    found = delta(tenant, synced(old, order))
    assert isinstance(found, Delta)
    assert sorted(r.leanpay_id for r in found.new) == sorted(
        f"id-{n}" for n in range(10_000, 10_100)
    )
    if order == "newest":
        assert tenant.read == [2, 3, 4]  # page 1 was read already
    else:  # the last pages, backwards: 10,100 invoices are 404 pages
        assert tenant.read == [404, 403, 402, 401]
    assert found.pages == (4 if order == "newest" else 5)  # with page 1
    assert found.order == order and found.total == 10_100


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_nothing_new_costs_page_one_and_in_an_oldest_first_list_the_last_page(order: str) -> None:
    rows = [row(n) for n in range(1000)]
    tenant = FakeTenant(rows, order)
    found = delta(tenant, synced(rows, order))
    assert isinstance(found, Delta) and found.new == []
    assert tenant.read == ([] if order == "newest" else [40])


def test_acknowledged_invoices_in_the_index_are_walked_past() -> None:
    old = [row(n) for n in range(1000)]
    mine = [row(n) for n in range(1000, 1100)]  # acknowledged last run: in the index
    theirs = [row(n) for n in range(1100, 1103)]  # another writer, since
    index = synced(old)
    index.ids |= {r.leanpay_id for r in mine}
    tenant = FakeTenant(old + mine + theirs)
    found = delta(tenant, index)
    assert isinstance(found, Delta)
    assert [r.leanpay_id for r in found.new] == ["id-1102", "id-1101", "id-1100"]
    assert tenant.read == []  # all three on page 1


def test_a_deletion_is_a_full_listing() -> None:
    rows = [row(n) for n in range(100)]
    tenant = FakeTenant(rows[:50] + rows[51:])
    found = delta(tenant, synced(rows))
    assert isinstance(found, FullListing)
    assert "1 fewer than the index holds" in found.reason


def test_a_deletion_hidden_by_a_creation_is_caught_when_the_new_one_is_read() -> None:
    rows = [row(n) for n in range(100)]
    tenant = FakeTenant([*rows[:-1], row(100)])  # the newest deleted, one created
    found = delta(tenant, synced(rows))
    assert isinstance(found, FullListing)
    assert "than the count allows (0)" in found.reason


def test_an_unknown_invoice_older_than_the_watermark_is_a_full_listing() -> None:
    rows = [row(n) for n in range(100)]
    stray = Row("id-stray", "INV-stray", 50, "tenant-1")
    tenant = FakeTenant(sorted([*rows, stray], key=lambda r: r.created_at or 0))
    found = delta(tenant, synced(rows))
    assert isinstance(found, FullListing)
    assert "count does not add up" in found.reason or "older than the newest" in found.reason


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
    ("tenant", "index", "reason"),
    [
        (FakeTenant([row(n) for n in range(100)], "id"), None, "no order of createdAt"),
        (FakeTenant([row(n) for n in range(100)], "oldest"), "newest", "now oldest first"),
        (FakeTenant([row(n, 7) for n in range(100)]), None, "cannot be told from page 1"),
        (FakeTenant([row(n) for n in range(100)]), "unverified", "no verified index"),
        (FakeTenant([row(n) for n in range(1000)]), "stale", "reading every page costs"),
    ],
)
def test_each_reason_for_a_full_listing(tenant: FakeTenant, index: str | None, reason: str) -> None:
    rows = tenant.rows
    known = synced(rows, None if index in (None, "unverified") else index)
    if index == "unverified":
        known.mark = Watermark(False, None, 0, None)
    if index == "stale":
        known = synced(rows[:100])
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
    page = page_of(1, {"data": [{"id": "x", "externalId": "", "tenantId": "t"}, "junk"]})
    assert page.rows == [Row("x", None, None, "t", b"{}")] and page.total is None
