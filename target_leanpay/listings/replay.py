"""Replay safety: never send an externalId that Leanpay already holds.

Singer delivery is at-least-once (a resumed run re-sends what followed the last STATE)
and Leanpay documents no idempotency key: a listable resource (invoices) is listed in the
background when its stream starts, no chunk is sent before that listing is complete, and
each chunk's externalIds are looked up in the tenant index and in what this run learned
beyond it (`KnownIds`). After an ambiguous request only a listing that started after it
ended can say what was stored (`confirm_since`); no POST starts while one is read, since
its objects would shift the pages under it. Records without an externalId, and resources
with no list endpoint, are sent at least once (README, "Exactly once"; the details:
docs/architecture.md, "Exactly once, in detail").
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, Generic, TypeVar

from target_leanpay.leanpay.client import Created
from target_leanpay.leanpay.errors import AuthError, Stopped
from target_leanpay.listings.listing import Listed, Listing, PageReader
from target_leanpay.listings.tenant_gate import TenantGate
from target_leanpay.listings.tenant_listing import TenantListing, acknowledged_rows
from target_leanpay.listings.twins import POLL_SECONDS, Twins
from target_leanpay.output.progress import plural
from target_leanpay.records.resources import INVOICES, Resource
from target_leanpay.store import changes
from target_leanpay.store.store import (
    SEVERAL,
    CacheDamaged,
    Earlier,
    Found,
    InvoiceCache,
    Promises,
    Row,
    Store,
    host_of,
)

logger = logging.getLogger("target-leanpay.replay")

T = TypeVar("T")
Clock = Callable[[], float]
Pause = Callable[[threading.Condition, float], object]
"""Waits on a held condition for up to some seconds (`Condition.wait`; a fake in tests)."""

COALESCE_SECONDS = 1.0
"""Ambiguous requests whose waits end within this long of each other share one listing."""

MAX_QUERY_IDS = 500
"""Ids per statement, far below SQLite's variable limit (999 before SQLite 3.32)."""


class KnownIds:
    """What this run learned of Leanpay beyond the tenant index (a listing without one,
    a delta's rows, the receipts, what it sent), in a private temporary SQLite file.

    It may hold every externalId of a tenant plus every one this run sent: on disk, memory
    stays flat whatever the size (a set of a million strings costs ~100 MB). Ids are
    stored whole: no hash collision can ever hide an invoice. Thread-safe.
    """

    def __init__(self) -> None:
        # "" = a private on-disk temporary database, deleted on close
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None, uri=True)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(
            # held: what Leanpay holds of it (changes.py's kept fields, encoded), from the
            # listing or the receipts; NULL when unknown
            "CREATE TABLE known (external_id TEXT PRIMARY KEY, leanpay_id TEXT, "
            "sent BLOB, held BLOB) WITHOUT ROWID"
        )
        self._lock = threading.Lock()
        # A run closes it; a target driven in-process whose `listen` raised (the SDK's
        # standard tests do that) is closed when collected, not left to the connection's
        # own finaliser (a ResourceWarning since Python 3.13).
        self._close = weakref.finalize(self, self._db.close)

    def add(self, rows: Iterable[Row], *, sent: Mapping[str, bytes] | None = None) -> None:
        """Remember the externalIds of these rows, with their Leanpay ids where known (an
        externalId seen with two different Leanpay ids gets SEVERAL) and their contents,
        what Leanpay holds of them (the newest given wins). `sent`: what this run sent for
        them (encoded), when it created them."""
        get = (sent or {}).get
        values = (
            (r.external_id, r.leanpay_id, get(r.external_id), r.contents)
            for r in rows
            if r.external_id is not None
        )
        with self._lock:  # MAX_QUERY_IDS at a time: every receipt of a host, say, in flat memory
            while part := list(itertools.islice(values, MAX_QUERY_IDS)):
                marks = ",".join(["(?, ?, ?, ?)"] * len(part))
                self._db.execute(
                    f"INSERT INTO known VALUES {marks} ON CONFLICT (external_id) DO UPDATE "  # noqa: S608 - placeholders only
                    "SET leanpay_id = CASE WHEN known.leanpay_id IS NULL THEN "
                    "excluded.leanpay_id WHEN excluded.leanpay_id IS NULL OR "
                    "excluded.leanpay_id = known.leanpay_id THEN known.leanpay_id "
                    f"ELSE '{SEVERAL}' END, "
                    "sent = coalesce(excluded.sent, known.sent), "
                    "held = coalesce(excluded.held, known.held)",
                    [value for row in part for value in row],
                )

    def sent(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The payloads this run sent for those of `ids` it created."""
        query = "SELECT external_id, sent FROM known WHERE {} AND sent IS NOT NULL"
        return dict(self._each(query, ids))

    def holdings(self, ids: Sequence[str]) -> dict[str, tuple[str | None, bytes | None]]:
        """externalId -> (Leanpay id, what Leanpay holds of it or None), those remembered."""
        query = "SELECT external_id, leanpay_id, held FROM known WHERE {}"
        return {e: (i, h) for e, i, h in self._each(query, ids)}

    def forget(self, ids: Sequence[str]) -> None:
        """Leanpay no longer holds these (a find answered 404)."""
        self._each("DELETE FROM known WHERE {}", ids)

    def _each(self, statement: str, ids: Sequence[str]) -> list[Any]:
        """`statement` run for each slice of `ids` its `{}` names; the rows returned."""
        found: list[Any] = []
        with self._lock:
            for start in range(0, len(ids), MAX_QUERY_IDS):
                part = ids[start : start + MAX_QUERY_IDS]
                where = f"external_id IN ({','.join('?' * len(part))})"
                found += self._db.execute(statement.format(where), part).fetchall()
        return found

    def close(self) -> None:
        """Delete the temporary file."""
        with self._lock:
            self._close()


class ReplayGuard(Generic[T]):
    """The externalIds of one resource: those Leanpay holds, and those this run is sending.
    `listing` None (replay safety off, a dry run, no list endpoint): nothing is read from
    Leanpay; twins are still held back, and ids acknowledged in this run count as held."""

    def __init__(
        self,
        resource: Resource,
        listing: Listing | TenantListing | None,
        *,
        stopping: threading.Event,
        clock: Clock = time.monotonic,
        pause: Pause = threading.Condition.wait,
    ) -> None:
        self.resource = resource
        self.listing = listing
        self._stopping = stopping
        self._clock = clock
        self._pause = pause
        self._known = KnownIds()
        self.twins: Twins[T] = Twins(resource.name, stopping=stopping)
        """This run's claims of the resource's externalIds (twins.py)."""
        self._changed = threading.Condition(threading.Lock())
        first = None if resource.listed_first else float("-inf")
        self._listed_from: float | None = clock() if listing is None else first
        """When the newest complete listing started (all that Leanpay held then is known):
        None until the first listing of a resource listed first; -inf for one listed only
        to settle a doubt (links), so that `confirm_since` always lists."""
        self._first_failure: BaseException | None = None
        self._leading = False
        self._listing_now = False
        self._wanted: list[float] = []  # `since` of each thread waiting for a listing
        self._on_wire: set[int] = set()
        self._post_ids = itertools.count()
        self._receipted: Callable[[], Iterable[Earlier]] = tuple
        self.listings = 0

    @property
    def checks_leanpay(self) -> bool:
        """Whether what Leanpay holds can be listed (else: at least once)."""
        return self.listing is not None

    def now(self) -> float:
        """The guard's clock (`time.monotonic`, or a test's)."""
        return self._clock()

    # -- the listing ------------------------------------------------------------------

    def start(self, receipts: Callable[[], Iterable[Earlier]] = tuple) -> None:
        """Begin the first listing in the background; `held` waits for it. `receipts`: those
        of earlier runs, which the listing overrules: those a first listing that read every
        page does not show (deleted in Leanpay, or a reset tenant) are reported once, and
        sent again. Read only then: a delta whose count adds up proved the index, and a run
        does not read every receipt ever written."""
        if self.listing is None or not self.resource.listed_first:
            return
        self._receipted = receipts

        def first_listing() -> None:
            try:
                self.confirm_since(float("-inf"))
            except BaseException as failure:  # raised to the sending threads by `held`
                with self._changed:
                    self._first_failure = failure
                    self._changed.notify_all()

        name = f"leanpay-list-{self.resource.name}"
        threading.Thread(target=first_listing, name=name, daemon=True).start()

    def held(self, external_ids: Sequence[str]) -> set[str]:
        """Which of these externalIds Leanpay is known to hold (after the first listing)."""
        with self._changed:
            while self._listed_from is None:
                if self._first_failure is not None:
                    raise self._first_failure
                self._wait_a_little()
        return set(self.holdings(external_ids))

    def holdings(self, external_ids: Sequence[str]) -> dict[str, tuple[str | None, bytes | None]]:
        """externalId -> (Leanpay id or SEVERAL, what Leanpay holds of it, `changes.kept`
        encoded, or None), for those of `external_ids` this run or the tenant's cache
        knows. Not while a listing is read (a full one empties the cache before refilling
        it), so never inside `posting`, which such a listing waits for."""
        with self._changed:
            while self._listing_now:
                self._wait_a_little()
        cached = self._cached(external_ids)  # first: a damaged cache is listed again
        known = self._known.holdings(external_ids)
        told: list[Row] = []
        for external_id, found in cached.items():
            mine = known.get(external_id)
            if mine is None:
                told.append(Row(found.leanpay_id, external_id, None))
                known[external_id] = (found.leanpay_id, found.contents)
            elif mine[0] is None:
                known[external_id] = (found.leanpay_id, mine[1] or found.contents)
            elif mine[0] != found.leanpay_id:
                known[external_id] = (SEVERAL, mine[1])
            elif mine[1] is None:
                known[external_id] = (mine[0], found.contents)
        if told:  # what a chunk was told stays known to the run: a full listing may empty
            self._known.add(told)  # the cache before its finds or references ask again
        return known

    def _cache(self) -> InvoiceCache | None:
        listing = self.listing
        return listing.index if isinstance(listing, TenantListing) else None

    def _cached(self, external_ids: Sequence[str]) -> dict[str, Found]:
        """What the tenant's cache holds of these. One it cannot trust is marked damaged
        and rebuilt by a full listing before the answer: never a wrong answer."""
        cache = self._cache()
        if cache is None or not external_ids:
            return {}
        try:
            return cache.find(external_ids)
        except CacheDamaged as damaged:
            logger.info("Replay safety: %s; every page of %s is read", damaged, self.resource.name)
            cache.damaged(str(damaged))
            self.confirm_since(self._clock())
            return {}

    @contextmanager
    def posting(self) -> Iterator[None]:
        """Around a POST: a re-listing waits for the POSTs on the wire when it is due, and
        no POST starts while one is read (the listing must not change under its feet)."""
        post = next(self._post_ids)
        listing = self.listing if isinstance(self.listing, TenantListing) else None
        with self._changed:
            while self._listing_now:
                self._wait_a_little()
            self._on_wire.add(post)
            if listing is not None:
                listing.sending(post)
        try:
            yield
        finally:
            if listing is not None:
                listing.ended(post)
            with self._changed:
                self._on_wire.discard(post)
                self._changed.notify_all()

    def confirm_since(self, since: float) -> None:
        """Return once a listing that started after `since` (when the uncertain request
        ended, plus the time Leanpay may still need) has been read whole. One thread at a
        time leads a listing; those it does not cover lead the next one."""
        assert self.listing is not None, "nothing to list"
        with self._changed:
            self._wanted.append(since)
            try:
                while self._listed_from is None or self._listed_from <= since:
                    if self._leading:
                        self._wait_a_little()
                        continue
                    self._leading = True
                    try:
                        self._lead(self.listing)
                    finally:
                        self._leading = False
                        self._changed.notify_all()
            finally:
                self._wanted.remove(since)

    def wait_until(self, moment: float) -> None:
        """Sleep until `moment` (a `clock` reading); Stopped if the run stops meanwhile."""
        with self._changed:
            while (remaining := moment - self._clock()) > 0:
                self._wait_a_little(remaining)

    def _lead(self, listing: Listing | TenantListing) -> None:
        """List for every waiter whose `since` is due within COALESCE_SECONDS of the first.
        Called holding `_changed`; released while sleeping and while listing."""
        earliest = min(self._wanted)
        while True:  # until strictly after the latest `since` due with the earliest
            due = max(s for s in self._wanted if s <= earliest + COALESCE_SECONDS)
            if (remaining := due - self._clock()) < 0:
                break
            self._wait_a_little(max(remaining, 0.001))
        # Close the gate first, then wait for what is on the wire: a POST can no longer
        # start between the snapshot and the closing (it would be unseen by this listing,
        # and its objects would shift the pages under it).
        self._listing_now = True
        try:
            if self._on_wire:  # their outcome may add waiters: let them end first
                logger.debug(
                    "listing %s again once the %s on the wire %s answered",
                    self.resource.name,
                    plural(len(self._on_wire), "request"),
                    "is" if len(self._on_wire) == 1 else "are",
                )
            while self._on_wire:
                self._wait_a_little()
            started = self._clock()
            waiting = len(self._wanted)
            self._changed.release()
            try:
                listed = listing.read_all(self._known.add)
                if not self.listings and listed.new is None:  # before any chunk is sifted:
                    self._report_doubts()  # a short run cannot end before it is said
            except AuthError as refused:
                raise AuthError(
                    f"{refused} (while listing {self.resource.name} for replay safety: the "
                    "key may lack read access; replay_safety: false skips the listing, at "
                    "the cost described in the README)",
                    status=refused.status,
                    body=refused.body,
                ) from None
            finally:
                self._changed.acquire()
        finally:
            self._listing_now = False
            self._changed.notify_all()
        self.listings += 1
        self._listed_from = max(started, self._listed_from or started)
        _log_listing(self.resource.name, listed, self._clock() - started, self.listings, waiting)

    def _wait_a_little(self, seconds: float = POLL_SECONDS) -> None:
        """Wait on `_changed` (held) at most `seconds`; give up if the run is stopping."""
        if self._stopping.is_set():
            raise Stopped(f"the run is stopping: {self.resource.name} not checked")
        self._pause(self._changed, min(seconds, POLL_SECONDS))

    # -- claims and acknowledgements ------------------------------------------------

    def stored(self, created: Sequence[Created], sent: Mapping[str, dict[str, Any]]) -> None:
        """Leanpay's answer listed these objects as created from the items `sent` (by
        externalId): the tenant index keeps them at once, inside `posting` (before a
        re-listing may start); the watermark moves when the POST ends (`TenantListing.ended`)."""
        if isinstance(self.listing, TenantListing):
            self.listing.stored(acknowledged_rows(created, sent))

    def _report_doubts(self) -> None:
        """After a first listing that read every page (each row handed to `_known`): what
        the receipts say and Leanpay does not show."""
        receipted = list(dict.fromkeys(e for e, *_ in self._receipted()))  # objects, not lines
        missing: list[str] = []
        for start in range(0, len(receipted), MAX_QUERY_IDS):  # memory flat
            part = receipted[start : start + MAX_QUERY_IDS]
            held = self._known.holdings(part)
            missing += [e for e in part if e not in held]
        if missing:
            logger.warning(
                "The store's receipts record %s this target created that Leanpay does not list "
                "(first: %r): deleted in Leanpay, or the receipts of another tenant (a reset "
                "stand-in). The listing is believed: they are sent again if the input holds them",
                plural(len(missing), self.resource.name[:-1]),
                missing[0],
            )

    def learn(self, earlier: Iterable[Earlier]) -> None:
        """(externalId, Leanpay id, kept fields) Leanpay holds, from earlier runs' receipts."""
        self._known.add(Row(i, e, None, contents=kept) for e, i, kept in earlier)

    def now_holds(self, external_id: str, kept: bytes) -> None:
        """Leanpay holds these fields for `external_id` now (updated by this run)."""
        self._known.add([Row(None, external_id, None, contents=kept)])

    def acknowledged(
        self, pairs: Iterable[tuple[str, str | None]], sent: Mapping[str, bytes] | None = None
    ) -> list[T]:
        """Leanpay holds these now (externalId, id), created by this run with the payloads
        `sent` (if any); return the twins that were waiting."""
        pairs = list(pairs)
        self._known.add([Row(i, e, None) for e, i in pairs], sent=sent)
        return self.twins.release([external_id for external_id, _ in pairs])

    def sent_earlier(self, external_ids: Sequence[str]) -> dict[str, bytes]:
        """The payloads this run already sent (and Leanpay acknowledged) for these."""
        return self._known.sent(external_ids)

    def settled_id(self, external_id: str) -> str | None:
        """The Leanpay id of the object with `external_id` once this run no longer sends it
        and the first listing is read: None when Leanpay is not known to hold it; SEVERAL
        when more than one object carries it."""
        self.twins.wait_settled(external_id)
        if self.held([external_id]):
            return self.holdings([external_id])[external_id][0]
        return None

    def read_before(self, external_id: str) -> bool:
        """Whether this run has claimed `external_id` or Leanpay is known to hold it: a
        reference to it may then wait for its outcome, else it is parked until the object
        is read (parking.py)."""
        if self.twins.seen(external_id) or self._known.holdings([external_id]):
            return True
        cache = self._cache()  # held before the run: waiting costs nothing
        try:
            return cache is not None and bool(cache.find([external_id]))
        except CacheDamaged:  # parked: settled once a listing has rebuilt the cache
            return False

    def close(self) -> None:
        """Delete the on-disk id store; close the tenant index and release its lock."""
        self._known.close()
        if isinstance(self.listing, TenantListing):
            self.listing.close()

    def forget(self, external_ids: Sequence[str]) -> None:
        """A find answered 404 for these: Leanpay does not hold them (finds.py)."""
        self._known.forget(external_ids)


def _log_listing(name: str, listed: Listed, seconds: float, number: int, waiting: int) -> None:
    if listed.rows and not listed.external_ids and listed.new is None:  # a whole listing
        logger.warning(
            "Replay safety: Leanpay listed %d %s but none carries an externalId; "
            "records already loaded cannot be recognised",
            listed.rows,
            name,
        )
    which = (
        "listed" if number == 1 else f"listed again (for {plural(waiting, 'uncertain request')})"
    )
    if listed.new is not None:
        logger.info(
            "Replay safety: %d %s in Leanpay, %d new since the tenant index was verified, "
            "%s: %s in %.1f s",
            listed.rows,
            name,
            listed.new,
            which,
            plural(listed.pages, "page"),
            seconds,
        )
        return
    logger.info(
        "Replay safety: %d %s %s, %d with an externalId: %s in %.1f s",
        listed.rows,
        name,
        which,
        listed.external_ids,
        plural(listed.pages, "page"),
        seconds,
    )


class ReplayGuards:
    """One guard per resource, made when a stream first loads it."""

    def __init__(
        self,
        read_page: PageReader | None,
        *,
        enabled: bool,
        concurrency: int,
        stopping: threading.Event,
        receipts: Promises,
        api_url: str = "",
        store: Store | None = None,
        writes: bool = True,
    ) -> None:
        """`read_page` None: a dry run, which reads nothing and assumes an empty tenant.
        `store` None: no tenant index; `writes` False (a plan): indexes are only read."""
        self._read_page = read_page
        self._api_url = api_url
        self._store = store
        self._writes = writes
        self._enabled = enabled
        self._concurrency = concurrency
        self._stopping = stopping
        self._receipts = receipts
        self._guards: dict[str, ReplayGuard[Any]] = {}
        self._lock = threading.Lock()
        locks = enabled and read_page is not None and store is not None and writes
        self._gate = TenantGate(
            store.lock(host_of(api_url), stopping=stopping) if locks and store else None,
            api_url=api_url,
            where=store.where if store is not None else "",
            held=receipts.reread,
        )
        """The tenant's lock: taken before anything is sent (tenant_gate.py)."""

    def for_resource(self, resource: Resource) -> ReplayGuard[Any]:
        """The guard of `resource`, made (and its first listing started, in the background)
        when a stream or a reference first names it. For a resource Leanpay cannot list,
        the tenant's lock is held first: its receipts are read behind it."""
        if not resource.listed_first:
            self._hold_tenant(resource)
        with self._lock:  # sinks (reading thread) and references (sending threads) ask
            guard = self._guards.get(resource.name)
            if guard is None:
                guard = self._guards[resource.name] = ReplayGuard(
                    resource, self._listing(resource), stopping=self._stopping
                )
                if resource.listed_first and self._enabled:  # the listing wins (a dry run
                    guard.start(partial(self._earlier, resource))  # assumes it empty)
                else:  # nothing to list first: the receipts are believed
                    guard.learn(self._earlier(resource))
        return guard

    def _earlier(self, resource: Resource) -> Iterable[Earlier]:
        return self._receipts.earlier(resource.name, self.tenant())

    def tenant(self) -> str | None:
        """The tenant this run loads, once named (`TenantGate.tenant`): its receipts alone
        are read."""
        return self._gate.tenant

    def _listing(self, resource: Resource) -> Listing | TenantListing | None:
        if not self._enabled or resource.list_path is None:
            return None
        if self._read_page is None:
            logger.info(
                "Dry run: replay safety assumes an empty tenant for %s (nothing is read "
                "from Leanpay)",
                resource.name,
            )
            return None
        listing = Listing(
            resource.name,
            resource.list_path,
            self._read_page,
            concurrency=self._concurrency,
            stopping=self._stopping,
            inside=resource.listed_inside,
            keep=lambda row: changes.encode(changes.kept(resource, row)),  # updates.py compares it
        )
        if not resource.listed_first or self._store is None:
            return listing  # links: inside their invoices, every page, when in doubt
        return TenantListing(
            listing,
            api_url=self._api_url,
            store=self._store,
            gate=self._gate,
            writable=self._writes,
        )

    def _hold_tenant(self, resource: Resource) -> None:
        """The tenant's lock, before `resource`'s receipts are read and anything is sent:
        page 1 of the invoices names the tenant (each invoice carries `tenantId`)."""
        if self._read_page is None:  # a dry run reads nothing and takes no lock
            return
        assert INVOICES.list_path is not None
        listing = Listing(
            INVOICES.name,
            INVOICES.list_path,
            self._read_page,
            concurrency=1,
            stopping=self._stopping,
        )
        try:
            self._gate.hold(listing)
        except AuthError as refused:
            raise AuthError(
                f"{refused} (while reading page 1 of invoices before loading "
                f"{resource.name}: it names the tenant, whose lock keeps two runs from "
                "sending one object twice; the key may lack read access; replay_safety: "
                "false skips it, at the cost described in the README)",
                status=refused.status,
                body=refused.body,
            ) from None

    def close(self) -> None:
        """Delete every guard's id store; let another run load the tenant."""
        for guard in self._guards.values():
            guard.close()
        self._gate.close()
