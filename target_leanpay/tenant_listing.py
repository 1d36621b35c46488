"""The invoices of one tenant, listed at the cost of what is new.

Each listing reads page 1 first: its invoices name the tenant (`tenantId`), which names
its index (`tenant_index.py`) and its lock (`tenant_lock.py`, taken before the first
listing and held to the end of the run). Then `delta.py` reads only the pages that can
hold what the index lacks, or says why every page must be read (logged once per reason
at INFO); either way the index is brought up to date and verified. Invoices Leanpay
acknowledges in this run are added to it as they are acknowledged, so that a
re-listing after an uncertain answer, and the next run, look only past them.

A tenant that lists nothing has no id yet: its index is made from the first
acknowledgement, which names the tenant, when the first listing saw it empty.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from target_leanpay import changes
from target_leanpay.delta import Delta, Page, created_at, page_of, read_delta, row_of, tenant_of
from target_leanpay.errors import Stopped
from target_leanpay.items import Created
from target_leanpay.listing import ExternalIds, Listed, Listing
from target_leanpay.store import InvoiceCache, Row, Store, TenantKey, host_of

logger = logging.getLogger("target-leanpay.replay")


class TenantListing:
    """`Listing.read_all`'s contract, through the tenant index."""

    def __init__(
        self,
        listing: Listing,
        *,
        api_url: str,
        store: Store,
        writable: bool,
        concurrency: int,
        stopping: threading.Event,
    ) -> None:
        """`writable` False (a plan): the index is read, never written, and no lock is
        taken (a plan sends nothing)."""
        self.name = listing.name
        self._listing = listing
        self._api_url = api_url
        self._store = store
        self._writable = writable
        self._concurrency = concurrency
        self._lock = store.lock(host_of(api_url), stopping=stopping) if writable else None
        self._index: InvoiceCache | None = None
        self.tenant: str | None = None
        """The tenant this run loads, once a listing or an acknowledgement named it."""
        self._first_done = False
        self._empty_at_start = False
        self._guard = threading.Lock()
        self._reasons: set[str] = set()
        self._closed = False

    @property
    def index(self) -> InvoiceCache | None:
        """The tenant's index, once the tenant is known."""
        return self._index

    def read_all(self, remember: ExternalIds) -> Listed:
        """List the tenant (a delta when the index allows), handing the externalIds the
        index lacked, or every page's, to `remember`."""
        first = self._first_page()
        page = page_of(1, first)
        index = self._index
        if index is None:  # nothing listed names the tenant: every page (one, mostly)
            if not self._first_done and not page.rows:
                self._empty_at_start = True
            self._first_done = True
            return self._listing.read_all(remember, first=first)
        self._first_done = True
        try:
            return self._through(index, page, first, remember)
        except sqlite3.DatabaseError as damaged:  # past the checks on opening: do without
            if self._closed:  # the run ended under a listing nobody waits for
                raise Stopped("the run is over: the listing is not needed") from None
            self._say_once(
                f"Replay safety: the tenant index in {self._store.where} failed ({damaged})"
            )
            self._index = None
            index.close()
            return self._listing.read_all(remember, first=first)

    def _through(
        self, index: InvoiceCache, page: Page, first: dict[str, Any], remember: ExternalIds
    ) -> Listed:
        """A delta when the index allows, else every page; the index verified after."""
        found = read_delta(page, index, self._read_pages, wave=self._concurrency)
        if isinstance(found, Delta):
            remember(  # the run knows them before the index has them (replay.py)
                [(r.external_id, r.leanpay_id, r.contents) for r in found.new if r.external_id]
            )
            index.add(found.new)
            index.verified(total=found.total, order=found.order)
            with_ids = sum(1 for r in found.new if r.external_id)
            return Listed(found.pages, found.total, with_ids, new=len(found.new))
        self._say_once(f"Replay safety: every page of {self.name} is read: {found.reason}")
        index.begin_full_listing()
        listed = self._listing.read_all(
            remember, first=first, objects=lambda objects: index.add(_rows(objects))
        )
        index.verified(total=index.count(), order=found.order)
        return listed

    def stored(self, rows: Sequence[Row]) -> None:
        """Leanpay acknowledged these invoices (`acknowledged_rows`): the index holds them
        from now on."""
        if not rows or not self._writable:
            return
        try:
            with self._guard:
                if self._index is None:
                    tenant = next((r.tenant_id for r in rows if r.tenant_id), None)
                    if tenant is None or not self._empty_at_start:
                        return
                    self._index = self._open(tenant)
                    self._index.begin_full_listing()
                    self._index.verified(total=0, order=None)  # empty when the run began
            self._index.add(rows)
        except sqlite3.Error as failed:  # the next listing finds the count short: a full one
            if self._closed:
                return
            self._say_once(f"Replay safety: the tenant index cannot be written ({failed})")

    def close(self) -> None:
        """Close the index and let another run load the tenant (a listing still under
        way, that nobody waits for, ends quietly)."""
        self._closed = True
        if self._index is not None:
            self._index.close()
        if self._lock is not None:
            self._lock.release()

    # -- page 1, the tenant and its lock ----------------------------------------------

    def _first_page(self) -> dict[str, Any]:
        """Page 1; the first time, with the tenant's lock held and its index open."""
        body = self._listing.read_page(1)
        if self._first_done:
            return body
        while True:
            tenant = tenant_of(page_of(1, body))
            waited = False
            if self._lock is not None:
                key = TenantKey.of(self._api_url, tenant) if tenant else None
                try:
                    waited = self._lock.hold_tenant(key) if key else self._lock.hold_new_tenant()
                except OSError as unusable:
                    return self._without_folder(body, unusable)
            if waited:  # another run sent meanwhile: what was read is stale
                again = self._listing.read_page(1)
                if tenant_of(page_of(1, again)) != tenant:
                    body = again
                    continue  # the tenant is named now: take its own lock
                body = again
            if tenant is not None:
                try:
                    self._index = self._open(tenant)
                except (OSError, sqlite3.Error) as unusable:
                    return self._without_folder(body, unusable)
            return body

    def _without_folder(self, body: dict[str, Any], unusable: Exception) -> dict[str, Any]:
        """The index folder cannot be used (a read-only home, a full disk): list every
        page, as without an index, and say what is lost."""
        self._lock = None
        self._writable = False
        logger.warning(
            "Replay safety: the tenant index folder %s cannot be used (%s): every page is "
            "read in each run, and another run on this tenant is not waited for; set "
            "store to a writable folder",
            self._store.where,
            unusable,
        )
        return body

    def _open(self, tenant: str) -> InvoiceCache:
        self.tenant = tenant
        index = self._store.cache(TenantKey.of(self._api_url, tenant), writable=self._writable)
        if index.problem is not None:
            self._say_once(f"Replay safety: {index.problem}; every page is read once")
        return index

    def _read_pages(self, numbers: Sequence[int]) -> list[Page]:
        if len(numbers) == 1 or self._concurrency == 1:
            return [page_of(n, self._listing.read_page(n)) for n in numbers]
        with ThreadPoolExecutor(
            min(self._concurrency, len(numbers)), thread_name_prefix="leanpay-list"
        ) as threads:
            bodies = list(threads.map(self._listing.read_page, numbers))
        return [page_of(n, body) for n, body in zip(numbers, bodies, strict=True)]

    def _say_once(self, message: str) -> None:
        if message not in self._reasons:
            self._reasons.add(message)
            logger.info("%s", message)


def _rows(objects: Iterable[Any]) -> list[Row]:
    return [row for row in map(row_of, objects) if row is not None]


def acknowledged_rows(created: Iterable[Created], sent: Mapping[str, dict[str, Any]]) -> list[Row]:
    """Rows of what Leanpay just created: its answer's id, tenantId and createdAt, and the
    fields as sent (compared in `changes.kept` form when read: no work per invoice on the
    path every acknowledged invoice takes)."""
    rows = []
    for c in created:
        if c.id:
            fields = changes.encode(sent.get(c.externalId or "", {}))
            rows.append(Row(c.id, c.externalId, created_at(c.createdAt), c.tenantId, fields))
    return rows
