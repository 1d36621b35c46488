"""The invoices of one tenant, listed at the cost of what is new, and what that proves.

Page 1 names the tenant, hence its index (`tenant_index.py`) and its lock
(`tenant_gate.py`); `delta.py` then walks what is newer than the watermark, or says why
every page is read (once per reason). Invoices acknowledged in this run join the index
at once and move its watermark, for the next run; this run's walks keep the boundary of
what it listed. An index found to hold more than Leanpay lists is marked unverified at
once (a killed run leaves nothing that looks verified) until a full listing, or 404s
that explain every missing invoice (finds.py), make it whole; else the next run lists
every page (a deficit left unexplained would cost finds on every later run). A tenant
that lists nothing has no id yet: its index is made from the first acknowledgement, when
the first listing saw it empty.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from target_leanpay.leanpay.client import Created
from target_leanpay.leanpay.errors import Stopped
from target_leanpay.listings.delta import Delta, read_delta, tenant_of
from target_leanpay.listings.listing import Listed, Listing, Page, Rows, created_at
from target_leanpay.listings.tenant_gate import TenantGate
from target_leanpay.store import changes
from target_leanpay.store.store import InvoiceCache, Row, Store, TenantKey

logger = logging.getLogger("target-leanpay.replay")


class TenantListing:
    """`Listing.read_all`'s contract, through the tenant index."""

    def __init__(
        self,
        listing: Listing,
        *,
        api_url: str,
        store: Store,
        gate: TenantGate,
        writable: bool,
    ) -> None:
        """`writable` False (a plan): the index is read, never written (and `gate` takes
        no lock: a plan sends nothing)."""
        self.name = listing.name
        self._listing = listing
        self._api_url = api_url
        self._store = store
        self._gate = gate
        self._writable = writable
        self.index: InvoiceCache | None = None
        """The tenant's index, once the tenant is known."""
        self._first_done = False
        self._empty_at_start = False
        self._guard = threading.Lock()
        self._reasons: set[str] = set()
        self._order: str | None = None
        self._loaded = False
        """A delta of this run loaded the index's invoices as held."""
        self._deleted = 0
        """How many invoices the index holds that Leanpay no longer lists (at least)."""
        self._walked_ids: set[str] = set()
        """Invoices the walks of this run read: each proved present."""
        self._listed: frozenset[str] | None = None
        """After a delta, a full listing of this run: the invoices it saw."""
        self._budget = 0
        self._finds = 0
        self._closed = False
        self._newest: int | None = None
        """The boundary of this run's walks: the newest row a listing of this run read
        (the index's own watermark also moves past what this run acknowledged, for the
        next run; a batch stored while its answer was lost may be older than those)."""
        self._acknowledged: int | None = None
        """The newest `createdAt` Leanpay acknowledged in this run."""
        self._floors: dict[int, int | None] = {}
        """Per POST on the wire: `_acknowledged` when it was sent. Leanpay creates it later,
        so its rows are not older: the watermark stays below the oldest floor."""

    def read_all(self, remember: Rows) -> Listed:
        """List the tenant (a delta when the index allows), handing what the index lacked,
        or every page, to `remember`."""
        first = self._first_page()
        page = self._listing.page(1, first)
        index = self.index
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
            self.index = None
            index.close()
            return self._listing.read_all(remember, first=first)

    def _through(
        self, index: InvoiceCache, page: Page, first: dict[str, Any], remember: Rows
    ) -> Listed:
        """A delta when the index allows, else every page; the index verified after."""
        found = read_delta(
            page, index, self._read_pages, wave=self._listing.concurrency, newest=self._newest
        )
        if isinstance(found, Delta):
            return self._walked(index, found, page, remember)
        reason = found.reason
        if self._deleted > 0:  # distrusted by this run's own delta
            reason = f"the index holds {self.name} Leanpay deleted, which finds did not settle"
        self._say_once(f"Replay safety: every page of {self.name} is read: {reason}")
        index.begin_full_listing()
        listed = self._listing.read_all(
            remember,
            first=first,
            objects=index.add,
            restart=index.begin_full_listing,
        )
        reread = self._listing.reread is not None
        self._listed_in_full(index, index.count(), listed.seen, found.order, reread=reread)
        return listed

    def _walked(self, index: InvoiceCache, found: Delta, page: Page, remember: Rows) -> Listed:
        """Bring the index up to date with a walk, and note what the count says of the rest."""
        before = index.watermark().newest if self._newest is None else self._newest
        remember(found.read)
        with_ids = sum(1 for r in found.new if r.external_id)
        if found.whole:  # every page, adding up: the index is rebuilt from it
            index.begin_full_listing()
            index.add(found.read)
            seen = frozenset(r.leanpay_id for r in found.read if r.leanpay_id)
            self._listed_in_full(index, found.total, seen, found.order)
            return Listed(found.pages, found.total, sum(1 for r in found.read if r.external_id))
        index.add(found.new)
        index.verified(total=found.total, order=found.order)
        times = [r.created_at for r in found.read] + [before]
        self._newest = max((t for t in times if t is not None), default=None)
        if found.deleted:
            index.distrust()
            self._say_once(
                f"Replay safety: the tenant index holds {found.deleted} {self.name} more than "
                f"Leanpay lists (deleted in Leanpay?): the {self.name} of this input it holds "
                f"are checked by id (at most {page.page_count} finds), else every page is read"
            )
        with self._guard:
            self._deleted = found.deleted
            self._walked_ids.update(r.leanpay_id for r in found.read if r.leanpay_id)
            self._budget = page.page_count or 0
            self._order = found.order
            self._loaded = True
        return Listed(found.pages, found.total, with_ids, new=len(found.new))

    def _listed_in_full(
        self,
        index: InvoiceCache,
        total: int,
        seen: frozenset[str],
        order: str | None,
        *,
        reread: bool = False,
    ) -> None:
        """Every page was read and proved itself: the index is verified, and nothing it
        holds is in doubt. After a delta of this run (or a reading that did not prove
        itself), the ids handed over include any Leanpay deleted since: from now on, only
        those this listing saw are held."""
        index.verified(total=total, order=order)
        self._newest = index.watermark().newest
        with self._guard:
            self._deleted = 0
            self._order = order
            if self._loaded or reread:
                self._listed = seen

    # -- re-proving what the index holds (finds.py asks) ---------------------------------

    @property
    def doubts(self) -> bool:
        """Whether some invoice the index holds may be gone (finds.py asks first)."""
        with self._guard:
            return self._listed is not None or self._deleted > 0

    def in_doubt(self, leanpay_ids: Sequence[str]) -> tuple[set[str], list[str]]:
        """Of these invoices the index holds: those a full listing of this run did not
        see (gone), and those to find by id because the count did not add up."""
        with self._guard:
            if self._listed is not None:
                return {i for i in leanpay_ids if i not in self._listed}, []
            if self._deleted <= 0:
                return set(), []
            return set(), [i for i in leanpay_ids if i not in self._walked_ids]

    def may_find(self, count: int) -> bool:
        """Whether `count` more finds keep this run's finds within the pages of a full
        listing (past that, listing costs less: the caller lists in full)."""
        with self._guard:
            if self._finds + count > self._budget:
                return False
            self._finds += count
            return True

    def found_gone(self, leanpay_ids: Sequence[str]) -> bool:
        """Finds answered 404 for these: the index forgets them; once they explain every
        invoice the count missed, the index is whole again. False, forgetting nothing,
        when they are more than the count allows: the finds cannot be believed (a path
        Leanpay does not serve answers 404 too), and every page must be read instead."""
        index = self.index
        if index is None or not leanpay_ids:
            return True
        with self._guard:
            if len(leanpay_ids) > self._deleted:
                self._finds = self._budget  # no more finds in this run
                return False
            self._deleted -= len(leanpay_ids)
            whole_again = self._deleted == 0
        index.forget(leanpay_ids)  # a plan's index forgets them in memory only
        if whole_again:
            index.verified(total=index.count(), order=self._order)
        return True

    def sending(self, post: int) -> None:
        """POST `post` of invoices starts: until it ends, the watermark stays below what
        this run had acknowledged by now (a kill leaves its rows above the watermark,
        for the next run's walk, however the answers of later POSTs came first)."""
        with self._guard:
            self._floors[post] = self._acknowledged

    def stored(self, rows: Sequence[Row]) -> None:
        """Leanpay acknowledged these invoices: the index holds them from now on."""
        if not rows or not self._writable:
            return
        try:
            with self._guard:
                if self._closed:
                    return
                if self.index is None:
                    tenant = next((r.tenant_id for r in rows if r.tenant_id), None)
                    if tenant is None or not self._empty_at_start:
                        return
                    self.index = self._open(tenant)
                    self.index.begin_full_listing()
                    self.index.verified(total=0, order=None)  # empty when the run began
            self.index.add(rows)
            times = [r.created_at for r in rows if r.created_at is not None]
            if times:
                with self._guard:
                    self._acknowledged = max(self._acknowledged or 0, *times)
        except sqlite3.Error as failed:  # the next listing finds the count short: a full one
            self._say_once(f"Replay safety: the tenant index cannot be written ({failed})")

    def ended(self, post: int) -> None:
        """POST `post` ended (answered or not): the watermark moves up to what this run
        acknowledged, strictly below the floor of every POST still on the wire (rows
        created in a floor's own second are read again: a batch shares one `createdAt`,
        and batches sent within a second do)."""
        with self._guard:
            self._floors.pop(post, None)
            newest = self._acknowledged
            if self._closed or self.index is None or newest is None or not self._writable:
                return
            floors = self._floors.values()
            if None in floors:  # sent before this run's first acknowledgement: stay put
                return
            if floors:
                newest = min(newest, min(f for f in floors if f is not None) - 1)
            try:  # under the guard: a POST that starts now is after this moves, or counted
                self.index.advance(newest)
            except sqlite3.Error as failed:
                self._say_once(f"Replay safety: the tenant index cannot be written ({failed})")

    def close(self) -> None:
        """Close the index (a listing nobody waits for then ends quietly); the lock is the
        gate's to release."""
        self._closed = True
        if self.index is not None:
            self.index.close()

    # -- page 1, the tenant and its index ---------------------------------------------

    def _first_page(self) -> dict[str, Any]:
        """Page 1; the first time, with the tenant's lock held and its index open."""
        if self._first_done:
            return self._listing.read_page(1)
        body = self._gate.first_page(self._listing)
        if self._gate.unusable:  # said by the gate: every page, as without an index
            self._writable = False
            return body
        tenant = tenant_of(self._listing.page(1, body))
        if tenant is not None:
            try:
                self.index = self._open(tenant)
            except (OSError, sqlite3.Error) as unusable:  # a full disk: as without an index
                self._writable = False
                logger.warning(
                    "Replay safety: the tenant index in %s cannot be used (%s): every page "
                    "is read in each run; set store to a writable folder",
                    self._store.where,
                    unusable,
                )
        return body

    def _open(self, tenant: str) -> InvoiceCache:
        self._gate.tenant = tenant
        index = self._store.cache(TenantKey.of(self._api_url, tenant), writable=self._writable)
        if index.problem is not None:
            self._say_once(f"Replay safety: {index.problem}; every page is read once")
        return index

    def _read_pages(self, numbers: Sequence[int]) -> list[Page]:
        got: dict[int, Page] = {}
        self._listing.read_pages(
            numbers, lambda n, body: got.update({n: self._listing.page(n, body)})
        )
        return [got[n] for n in numbers]

    def _say_once(self, message: str) -> None:
        if message not in self._reasons:
            self._reasons.add(message)
            logger.info("%s", message)


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
