"""Listing: every page once, at most `concurrency` at a time, stopped when the run stops."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from target_leanpay.errors import ApiError, Stopped
from target_leanpay.listing import Listed, Listing


class Pages:
    """A list endpoint of `rows` externalIds, `size` per page, that records its callers."""

    def __init__(self, rows: int, size: int, *, page_count: bool = True) -> None:
        self.ids = [f"E{n}" for n in range(rows)]
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
            if self.page_count:
                body["pageCount"] = -(-len(self.ids) // self.size)
            return body
        finally:
            with self._lock:
                self.on_wire -= 1


def read(pages: Pages, concurrency: int, stopping: threading.Event | None = None) -> list[str]:
    seen: list[str] = []
    lock = threading.Lock()

    def remember(pairs: list[tuple[str, str | None, bytes | None]]) -> None:
        with lock:
            seen.extend(row[0] for row in pairs)

    listing = Listing(
        "invoices",
        "/invoices",
        pages,
        concurrency=concurrency,
        stopping=stopping or threading.Event(),
    )
    listed = listing.read_all(remember)
    assert listed == Listed(pages=-(-len(pages.ids) // pages.size) or 1, rows=len(seen),
                            external_ids=len(seen))  # fmt: skip
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
    seen: list[tuple[str, str | None, bytes | None]] = []
    assert listing.read_all(seen.extend) == Listed(pages=4, rows=5, external_ids=5)
    assert pages.asked == [1, 2, 3, 4]
    assert seen == [(x, x, None) for x in pages.ids]  # each externalId with its Leanpay id


def test_what_keep_makes_of_each_row_comes_with_its_ids() -> None:
    pages = Pages(rows=3, size=2)

    def keep(row: dict[str, Any]) -> bytes:
        return f"kept {row['id']}".encode()

    listing = Listing(
        "invoices", "/invoices", pages, concurrency=2, stopping=threading.Event(), keep=keep
    )
    seen: list[tuple[str, str | None, bytes | None]] = []
    listing.read_all(seen.extend)
    assert sorted(seen) == [(x, x, f"kept {x}".encode()) for x in pages.ids]


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


def test_pages_that_appear_during_the_listing_are_read_too() -> None:
    # newest first: 12 objects created while the listing runs push the oldest 12 onto
    # pages that the first page's count did not have
    pages = Pages(rows=50, size=10)
    grown = False

    def growing(path: str, page: int) -> dict[str, Any]:
        nonlocal grown
        if page == 3 and not grown:
            grown = True
            pages.ids[:0] = [f"N{n}" for n in range(12)]
        return pages(path, page)

    listing = Listing("invoices", "/invoices", growing, concurrency=1, stopping=threading.Event())
    seen: list[tuple[str, str | None, bytes | None]] = []
    listed = listing.read_all(seen.extend)
    assert sorted(pages.asked) == [1, 2, 3, 4, 5, 6, 7]  # 62 objects: 7 pages of 10
    assert listed.pages == 7
    assert {f"E{n}" for n in range(50)} <= {row[0] for row in seen}  # none of the first missed
