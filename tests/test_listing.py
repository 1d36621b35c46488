"""Listing: every page once, at most `concurrency` at a time, stopped when the run stops."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from target_leanpay.leanpay.errors import ApiError, Stopped
from target_leanpay.listings.listing import Listed, Listing
from target_leanpay.store.store import Row


class Pages:
    """A list endpoint of `rows` externalIds, `size` per page, that records its callers."""

    def __init__(self, rows: int, size: int, *, page_count: bool = True) -> None:
        self.ids = [f"E{n}" for n in range(rows)]
        self.total_shown: int | None = None
        self.size = size
        self.page_count = page_count
        self.asked: list[int] = []
        self.on_wire = 0
        self.most_on_wire = 0
        self._lock = threading.Lock()
        self.gate: threading.Barrier | None = None

    def __call__(self, path: str, page: int) -> dict[str, Any]:
        with self._lock:
            self.asked.append(page)
            self.on_wire += 1
            self.most_on_wire = max(self.most_on_wire, self.on_wire)
        try:
            if self.gate is not None and page > 1:
                self.gate.wait(timeout=10)  # proves `parties` pages are on the wire at once
            rows = self.ids[(page - 1) * self.size : page * self.size]
            body: dict[str, Any] = {"data": [{"externalId": x, "id": x} for x in rows]}
            body["total"] = len(self.ids) if self.total_shown is None else self.total_shown
            if self.page_count:
                body["pageCount"] = -(-len(self.ids) // self.size)
            return body
        finally:
            with self._lock:
                self.on_wire -= 1


def read(pages: Pages, concurrency: int, stopping: threading.Event | None = None) -> list[str]:
    seen: list[str] = []
    lock = threading.Lock()

    def remember(rows: list[Row]) -> None:
        with lock:
            seen.extend(row.external_id or "" for row in rows)

    listing = Listing(
        "invoices",
        "/invoices",
        pages,
        concurrency=concurrency,
        stopping=stopping or threading.Event(),
    )
    listed = listing.read_all(remember)
    assert (listed.pages, listed.rows, listed.external_ids) == (
        -(-len(pages.ids) // pages.size) or 1, len(seen), len(seen)
    )  # fmt: skip
    assert listed.seen == frozenset(seen)
    return seen


def test_every_page_is_read_once_with_several_on_the_wire() -> None:
    pages = Pages(rows=1025, size=25)  # 41 pages: the first, then 10 groups of 4
    pages.gate = threading.Barrier(4)  # each group of 4 pages must be in flight together
    pages_read = read(pages, concurrency=4)
    assert sorted(pages_read, key=lambda x: int(x[1:])) == pages.ids
    assert sorted(pages.asked) == list(range(1, 42))
    assert pages.asked[0] == 1  # the first page alone tells the page count
    assert pages.most_on_wire == 4


def test_never_more_pages_on_the_wire_than_allowed() -> None:
    pages = Pages(rows=500, size=10)
    read(pages, concurrency=3)
    assert pages.most_on_wire <= 3
    assert sorted(pages.asked) == list(range(1, 51))


def test_an_empty_tenant_is_one_page() -> None:
    pages = Pages(rows=0, size=25)
    assert read(pages, concurrency=4) == []
    assert pages.asked == [1]


def test_without_a_page_count_pages_are_read_until_an_empty_one() -> None:
    pages = Pages(rows=5, size=2, page_count=False)
    listing = Listing("invoices", "/invoices", pages, concurrency=4, stopping=threading.Event())
    seen: list[Row] = []
    listed = listing.read_all(seen.extend)
    assert listed == Listed(pages=4, rows=5, external_ids=5, seen=frozenset(pages.ids))
    assert pages.asked == [1, 2, 3, 4]
    assert seen == [Row(x, x, None) for x in pages.ids]  # each externalId with its Leanpay id


def test_what_keep_makes_of_each_row_comes_with_its_ids() -> None:
    pages = Pages(rows=3, size=2)

    def keep(row: dict[str, Any]) -> bytes:
        return f"kept {row['id']}".encode()

    listing = Listing(
        "invoices", "/invoices", pages, concurrency=2, stopping=threading.Event(), keep=keep
    )
    seen: list[Row] = []
    listing.read_all(seen.extend)
    assert sorted(seen, key=str) == [
        Row(x, x, None, contents=f"kept {x}".encode()) for x in pages.ids
    ]


def test_a_failing_page_fails_the_listing() -> None:
    pages = Pages(rows=200, size=10)

    def failing(path: str, page: int) -> dict[str, Any]:
        if page == 7:
            raise ApiError("GET /invoices?page=7: HTTP 500", status=500)
        return pages(path, page)

    listing = Listing("invoices", "/invoices", failing, concurrency=4, stopping=threading.Event())
    with pytest.raises(ApiError, match="page=7"):
        listing.read_all(lambda ids: None)


def test_no_page_is_asked_for_once_the_run_stops() -> None:
    stopping = threading.Event()
    pages = Pages(rows=1000, size=10)

    def stop_after_page_3(path: str, page: int) -> dict[str, Any]:
        if page == 3:
            stopping.set()
        return pages(path, page)

    listing = Listing("invoices", "/invoices", stop_after_page_3, concurrency=1, stopping=stopping)
    with pytest.raises(Stopped):
        listing.read_all(lambda ids: None)
    assert pages.asked == [1, 2, 3]


def test_a_creation_during_the_listing_makes_it_read_again() -> None:
    # newest first: 12 objects created while the listing runs push the oldest 12 onto
    # pages that page 1's count did not have: the totals disagree, every page is read again
    pages = Pages(rows=50, size=10)
    grown = False
    restarts: list[int] = []

    def growing(path: str, page: int) -> dict[str, Any]:
        nonlocal grown
        if page == 3 and not grown:
            grown = True
            pages.ids[:0] = [f"N{n}" for n in range(12)]
        return pages(path, page)

    listing = Listing("invoices", "/invoices", growing, concurrency=1, stopping=threading.Event())
    seen: list[Row] = []
    listed = listing.read_all(seen.extend, restart=lambda: restarts.append(len(pages.asked)))
    assert pages.asked == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6, 7]  # 62 objects: 7 pages of 10
    assert restarts == [5]
    assert listed.pages == 7 and listed.rows == 62 and len(listed.seen) == 62


def test_a_deletion_during_the_listing_that_hides_a_row_makes_it_read_again() -> None:
    # page 2 is read after E5 was deleted: E19 moves to page 1 (already read) and is never
    # seen in this reading; the totals on pages 1 and 2 disagree
    pages = Pages(rows=30, size=10)
    deleted = False

    def deleting(path: str, page: int) -> dict[str, Any]:
        nonlocal deleted
        if page == 2 and not deleted:
            deleted = True
            pages.ids.remove("E5")
        return pages(path, page)

    listing = Listing("invoices", "/invoices", deleting, concurrency=1, stopping=threading.Event())
    seen: list[Row] = []
    listed = listing.read_all(seen.extend)
    assert pages.asked == [1, 2, 3, 1, 2, 3]
    assert listed.seen == frozenset(pages.ids) and "E19" in listed.seen


def test_distinct_rows_that_do_not_add_up_are_read_again_then_the_run_stops() -> None:
    # a total that never matches the rows: a bounded number of readings, then one line
    pages = Pages(rows=30, size=10)
    pages.total_shown = 31
    listing = Listing("invoices", "/invoices", pages, concurrency=2, stopping=threading.Event())
    with pytest.raises(ApiError) as failed:
        listing.read_all(lambda rows: None)
    assert sorted(pages.asked) == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # MAX_ATTEMPTS readings
    assert str(failed.value) == (
        "Replay safety: Leanpay's list of invoices changed under each of 3 listings (the "
        "last: 30 distinct rows were read where Leanpay lists 31), so which invoices it "
        "holds cannot be proved; nothing was sent. Run again once the tenant is quiet"
    )


def test_rows_lacking_the_field_objects_are_listed_under_are_told_apart() -> None:
    rows = [
        {"id": "i1", "creditNoteLinks": [{"externalId": "L1"}]},
        {"id": "i2"},  # the field is absent: its links cannot be told
        {"id": "i3", "creditNoteLinks": []},
    ]

    def one_page(path: str, page: int) -> dict[str, Any]:
        return {"data": rows, "total": 3, "pageCount": 1}

    listing = Listing(
        "links",
        "/invoices",
        one_page,
        concurrency=1,
        stopping=threading.Event(),
        inside="creditNoteLinks",
    )
    seen: list[Row] = []
    listed = listing.read_all(seen.extend)
    assert [(row.leanpay_id, row.external_id) for row in seen] == [(None, "L1")]
    assert listed.blind == frozenset({"i2"}) and listing.blind == frozenset({"i2"})
