"""Listing: read every page of a list endpoint, several pages at a time.

`GET /invoices?page=N` has no filter and no documented page size: a tenant of 100k
invoices may be thousands of pages. The first page says how many there are
(`pageCount`); the others are then read by `concurrency` threads at once, so a listing
costs about `pages x latency / concurrency` instead of `pages x latency`. Every page
says the count again: when it grows (objects created meanwhile, which in a newest-first
order push the oldest onto a new page), the new pages are read too. Without a usable
`pageCount`, pages are read one after another until an empty one.

A progress line says where a long listing is. When the run stops (a signal, a failure
elsewhere), no further page is requested; the pages on the wire are abandoned with the
process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from target_leanpay.errors import Stopped

logger = logging.getLogger("target-leanpay.replay")

PageReader = Callable[[str, int], dict[str, Any]]
"""(path, page number from 1) -> the page's JSON object: `{data, pageCount, ...}`."""
Row = tuple[str, str | None, bytes | None]
"""(externalId, Leanpay id, what `keep` made of the row: None without `keep`)."""
ExternalIds = Callable[[list[Row]], None]
"""Receives the rows of each page's objects that carry an externalId, from whichever
thread read it."""
Keep = Callable[[dict[str, Any]], bytes]
"""What is kept of each listed object besides its ids (the fields a change shows in)."""

Objects = Callable[[list[Any]], None]
"""Receives each page's objects whole (the tenant index keeps their ids and times)."""

PROGRESS_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class Listed:
    """What one listing saw."""

    pages: int
    rows: int
    external_ids: int
    new: int | None = None
    """A delta (tenant_listing.py): how many invoices the index lacked; None: every page
    was read, `rows` counts them."""


class Listing:
    """One resource's list endpoint, read whole by `read_all`."""

    def __init__(
        self,
        name: str,
        path: str,
        read_page: PageReader,
        *,
        concurrency: int,
        stopping: threading.Event,
        inside: str | None = None,
        keep: Keep | None = None,
    ) -> None:
        """`inside`: the objects are listed inside each row, under that key. `keep`: what
        is kept of each object beside its ids (changes.py)."""
        self._keep = keep
        self.name = name
        self.path = path
        self._inside = inside
        self._read_page = read_page
        self._concurrency = concurrency
        self._stopping = stopping

    def read_all(
        self,
        remember: ExternalIds,
        *,
        first: dict[str, Any] | None = None,
        objects: Objects | None = None,
    ) -> Listed:
        """Read every page, handing each page's externalIds to `remember` (and its
        objects to `objects`); `first`: page 1, already read."""
        progress = _Progress(self.name)
        if first is None:
            first = self._page(1, remember, progress, objects)
        else:
            self._hand_over(first, remember, objects)
        declared = first.get("pageCount")
        if not isinstance(declared, int) or isinstance(declared, bool):
            return self._one_by_one(first, remember, progress, objects)
        progress.total = last = declared
        rows, ids = self._count(first)
        threads = ThreadPoolExecutor(self._concurrency, thread_name_prefix="leanpay-list")
        try:
            pending: set[Future[dict[str, Any]]] = set()
            page = 2
            while pending or page <= last:
                while page <= last and len(pending) < self._concurrency:
                    pending.add(threads.submit(self._page, page, remember, progress, objects))
                    page += 1
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:  # re-raises the error of a page that failed
                    body = future.result()
                    page_rows, page_ids = self._count(body)
                    rows, ids = rows + page_rows, ids + page_ids
                    # objects created meanwhile may push the last ones onto a new page
                    # (in a newest-first order): read up to the largest count any page gave
                    grown = body.get("pageCount")
                    if isinstance(grown, int) and not isinstance(grown, bool) and grown > last:
                        progress.total = last = grown
        finally:  # on a failure or a stop, pages still on the wire are abandoned
            threads.shutdown(wait=False, cancel_futures=True)
        return Listed(max(last, 1), rows, ids)

    def _one_by_one(
        self,
        first: dict[str, Any],
        remember: ExternalIds,
        progress: _Progress,
        objects: Objects | None,
    ) -> Listed:
        rows, ids = self._count(first)
        page, body = 1, first
        while body.get("data"):
            page += 1
            body = self._page(page, remember, progress, objects)
            page_rows, page_ids = self._count(body)
            rows, ids = rows + page_rows, ids + page_ids
        return Listed(page, rows, ids)

    def _page(
        self, page: int, remember: ExternalIds, progress: _Progress, objects: Objects | None
    ) -> dict[str, Any]:
        body = self.read_page(page)
        self._hand_over(body, remember, objects)
        progress.page_read()
        return body

    def read_page(self, page: int) -> dict[str, Any]:
        """One page; Stopped once the run stops."""
        if self._stopping.is_set():
            raise Stopped(f"listing {self.name} stopped before page {page}: the run is stopping")
        return self._read_page(self.path, page)

    def _hand_over(
        self, body: dict[str, Any], remember: ExternalIds, objects: Objects | None
    ) -> None:
        found = self._objects(body)
        remember(_external_ids(found, self._keep))
        if objects is not None:
            objects(found)

    def _objects(self, body: dict[str, Any]) -> list[Any]:
        """The page's objects of this resource: its rows, or what each row holds inside."""
        rows = body.get("data") or []
        if self._inside is None:
            return list(rows)
        return [
            inner
            for row in rows
            if isinstance(row, dict) and isinstance(row.get(self._inside), list)
            for inner in row[self._inside]
        ]

    def _count(self, body: dict[str, Any]) -> tuple[int, int]:
        objects = self._objects(body)
        return len(objects), sum(1 for o in objects if isinstance(o, dict) and o.get("externalId"))


class _Progress:
    """`listing invoices: page 400/800`, at most every few seconds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.total: int | None = None
        self._read = 0
        self._next_log = time.monotonic() + PROGRESS_INTERVAL_SECONDS
        self._lock = threading.Lock()

    def page_read(self) -> None:
        with self._lock:
            self._read += 1
            now = time.monotonic()
            if now < self._next_log:
                return
            self._next_log = now + PROGRESS_INTERVAL_SECONDS
            read, total = self._read, self.total
        logger.info("listing %s: page %d/%s", self.name, read, total or "?")


def _external_ids(objects: list[Any], keep: Keep | None) -> list[Row]:
    return [
        (
            str(row["externalId"]),
            row["id"] if isinstance(row.get("id"), str) else None,
            None if keep is None else keep(row),
        )
        for row in objects
        if isinstance(row, dict) and row.get("externalId")
    ]
