"""Listing: read every page of a list endpoint, several at a time, and prove that every
row that existed when it began was seen.

`GET /invoices?page=N` has no filter nor documented page size (100k invoices may be
thousands of pages): page 1's `pageCount` lets `concurrency` threads read the others at
once; without it, pages are read one after another until an empty one. Pages shift while
they are read (a deletion moves every later row up, and one row goes unseen), so a listing
proves itself: every page gives page 1's `total`, and the distinct rows add up to it. Else
it is read again, `MAX_ATTEMPTS` times at most, then the run stops (nothing sent).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from target_leanpay.leanpay.errors import ApiError, Stopped
from target_leanpay.store.store import Row

logger = logging.getLogger("target-leanpay.replay")

PageReader = Callable[[str, int], dict[str, Any]]
"""(path, page number from 1) -> the page's JSON object: `{data, pageCount, ...}`."""
Rows = Callable[[list[Row]], None]
"""Receives the rows of each page's objects, from whichever thread read it."""
Keep = Callable[[dict[str, Any]], bytes]
"""What is kept of each listed object besides its ids (the fields a change shows in)."""

PROGRESS_INTERVAL_SECONDS = 5.0
MAX_ATTEMPTS = 3
"""Listings of a tenant that keeps changing under them before the run gives up."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list endpoint, parsed."""

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


def row_of(obj: Any, keep: Keep | None = None) -> Row | None:
    """A listed object as a Row (None: not an object); a link, listed inside its invoice,
    has no Leanpay id of its own."""
    if not isinstance(obj, dict):
        return None
    leanpay_id, external_id, tenant = obj.get("id"), obj.get("externalId"), obj.get("tenantId")
    return Row(
        leanpay_id if isinstance(leanpay_id, str) else None,
        str(external_id) if external_id not in (None, "") else None,
        created_at(obj.get("createdAt")),
        tenant if isinstance(tenant, str) else None,
        None if keep is None else keep(obj),
    )


@dataclass(frozen=True)
class Listed:
    """What one listing saw."""

    pages: int
    rows: int
    external_ids: int
    new: int | None = None
    """A delta (tenant_listing.py): how many invoices the index lacked; None: every page
    was read, `rows` counts them."""
    seen: frozenset[str] = frozenset()
    """The Leanpay ids of the rows a full listing read (each row once)."""
    blind: frozenset[str] = frozenset()
    """Objects listed inside rows (links): the ids of the rows that lack the field, whose
    objects cannot be told (absent is "cannot tell", never "none")."""


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
        """`inside`: the objects are listed inside each row, under that key."""
        self._keep = keep
        self.blind: frozenset[str] = frozenset()
        """The rows of the last complete listing whose inside field was absent."""
        self.reread: frozenset[str] | None = None
        """After a listing read more than once: the rows of the reading that proved itself
        (rows an earlier reading handed over may have been deleted since)."""
        self.name = name
        self.path = path
        self._inside = inside
        self._read_page = read_page
        self.concurrency = concurrency
        self._stopping = stopping

    def read_all(
        self,
        remember: Rows,
        *,
        first: dict[str, Any] | None = None,
        objects: Rows | None = None,
        restart: Callable[[], None] | None = None,
    ) -> Listed:
        """Read every page, handing each page's rows to `remember` (and those with a
        Leanpay id to `objects`); `first`: page 1, already read. A listing that does not
        prove itself is read again (`restart` is called first); ApiError when none does."""
        problem = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if attempt > 1:
                logger.info(
                    "Replay safety: %s are listed again (attempt %d of %d): %s",
                    self.name,
                    attempt,
                    MAX_ATTEMPTS,
                    problem,
                )
                first = None
                if restart is not None:
                    restart()
            listed, problem = self._attempt(remember, first, objects)
            if not problem:
                self.blind = listed.blind
                self.reread = listed.seen if attempt > 1 else None
                return listed
        raise ApiError(
            f"Replay safety: Leanpay's list of {self.name} changed under each of "
            f"{MAX_ATTEMPTS} listings (the last: {problem}), so which {self.name} it holds "
            "cannot be proved; nothing was sent. Run again once the tenant is quiet"
        )

    def _attempt(
        self, remember: Rows, first: dict[str, Any] | None, objects: Rows | None
    ) -> tuple[Listed, str]:
        """One reading of every page, and why it proves nothing ("" when it does)."""
        progress = _Progress(self.name)
        first = self.read_page(1) if first is None else first
        proof = _Proof(first, self._objects, self._inside)

        def take(number: int, body: dict[str, Any]) -> None:
            rows = self.rows(body)
            remember(rows)
            if objects is not None:
                objects([row for row in rows if row.leanpay_id is not None])
            progress.page_read()
            proof.add(number, body)

        take(1, first)
        declared = _int(first.get("pageCount"))
        if declared is None:  # one page after another, until an empty one
            number, body = 1, first
            while body.get("data"):
                number += 1
                body = self.read_page(number)
                take(number, body)
            return proof.listed(number), proof.problem()
        progress.total = declared
        self.read_pages(range(2, declared + 1), take)
        return proof.listed(max(declared, 1)), proof.problem()

    def read_pages(
        self, numbers: Iterable[int], take: Callable[[int, dict[str, Any]], None]
    ) -> None:
        """Read these pages, `concurrency` on the wire at a time, each handed to `take` (in
        this thread) as it arrives; on a failure or a stop, those on the wire are dropped."""
        queue = iter(numbers)
        threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="leanpay-list")
        try:
            pending = {threads.submit(self._numbered, n) for n in islice(queue, self.concurrency)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:  # re-raises the error of a page that failed
                    take(*future.result())
                    pending.update(threads.submit(self._numbered, n) for n in islice(queue, 1))
        finally:
            threads.shutdown(wait=False, cancel_futures=True)

    def _numbered(self, number: int) -> tuple[int, dict[str, Any]]:
        return number, self.read_page(number)

    def read_page(self, page: int) -> dict[str, Any]:
        """One page; Stopped once the run stops."""
        if self._stopping.is_set():
            raise Stopped(f"listing {self.name} stopped before page {page}: the run is stopping")
        return self._read_page(self.path, page)

    def rows(self, body: dict[str, Any]) -> list[Row]:
        """The page's objects of this resource, parsed (the one parser of listed rows)."""
        return [r for r in (row_of(o, self._keep) for o in self._objects(body)) if r is not None]

    def page(self, number: int, body: dict[str, Any]) -> Page:
        """A page's JSON object, parsed."""
        return Page(number, self.rows(body), _int(body.get("total")), _int(body.get("pageCount")))

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


class _Proof:
    """What one reading of every page proves: the same `total` on every page, and as
    many distinct rows as that total."""

    def __init__(
        self,
        first: dict[str, Any],
        objects: Callable[[dict[str, Any]], list[Any]],
        inside: str | None,
    ) -> None:
        self.total = _int(first.get("total"))
        self._objects = objects
        self._inside = inside
        self.blind: set[str] = set()
        self.rows = self.with_ids = 0
        self.seen: set[str] = set()
        self.changed = ""

    def add(self, number: int, body: dict[str, Any]) -> None:
        """Count one page's rows (each page once, from the thread that collects them)."""
        found = self._objects(body)
        self.rows += len(found)
        self.with_ids += sum(1 for o in found if isinstance(o, dict) and o.get("externalId"))
        total = _int(body.get("total"))
        if total != self.total and not self.changed:
            self.changed = f"total {self.total} on page 1, {total} on page {number}"
        for place, row in enumerate(body.get("data") or []):
            leanpay_id = row.get("id") if isinstance(row, dict) else None
            self.seen.add(leanpay_id if isinstance(leanpay_id, str) else f"#{number}.{place}")
            inside = row.get(self._inside) if self._inside and isinstance(row, dict) else []
            if not isinstance(inside, list):
                self.blind.add(str(leanpay_id))  # a documented field absent: cannot tell

    def problem(self) -> str:
        if self.changed:
            return f"the tenant changed while it was read ({self.changed})"
        if self.total is not None and len(self.seen) != self.total:
            return f"{len(self.seen)} distinct rows were read where Leanpay lists {self.total}"
        return ""

    def listed(self, pages: int) -> Listed:
        return Listed(
            pages, self.rows, self.with_ids, seen=frozenset(self.seen), blind=frozenset(self.blind)
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Progress:
    """`listing invoices: page 400/800`, at most every few seconds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.total: int | None = None
        self._read = 0
        self._next_log = time.monotonic() + PROGRESS_INTERVAL_SECONDS

    def page_read(self) -> None:
        self._read += 1
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + PROGRESS_INTERVAL_SECONDS
            logger.info("listing %s: page %d/%s", self.name, self._read, self.total or "?")
