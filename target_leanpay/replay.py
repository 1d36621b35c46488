"""Replay safety: never send an externalId that Leanpay already holds.

Singer delivery is at-least-once: a resumed run re-sends records after the last STATE,
and some of them may already be in Leanpay. Leanpay documents no idempotency key and no
behaviour for a repeated externalId, so the target does not rely on one:

* before the first record of a listable resource (invoices: `GET /invoices?page=N`) is
  sent, every page is read once and the externalIds kept (`KnownIds`, on disk);
* each record's externalId is *claimed* when it is read; a later record with the same
  externalId waits for the first one's outcome (acknowledged -> "already present";
  refused -> refused too, pointing at the first);
* just before a chunk is sent, the ids Leanpay holds are sifted out ("already present");
* after an ambiguous request (sent, but no answer), the pages are read again and only the
  items still missing are re-sent.

Records without an externalId, and resources with no list endpoint, cannot be checked:
they are sent at least once (README, "Exactly once").
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Literal, TypeVar

from target_leanpay.errors import AuthError
from target_leanpay.resources import Resource

logger = logging.getLogger("target-leanpay.replay")

T = TypeVar("T")
Verdict = Literal["send", "parked"]
PageReader = Callable[[str, int], dict[str, Any]]

MAX_QUERY_IDS = 500
"""Ids per statement, far below SQLite's variable limit (999 before SQLite 3.32)."""


class KnownIds:
    """The externalIds Leanpay holds, in a private temporary SQLite file.

    Replay safety must remember every externalId of the tenant plus every one this run
    sent: a Python set of a million strings costs ~100 MB and grows with the input. A
    SQLite table keeps them on disk (deleted when the run ends) behind a small page cache,
    so memory stays flat whatever the tenant or input size, and a chunk of 100 is checked
    in one query and recorded in one multi-row INSERT. The ids are stored whole: no hash,
    no collision can ever hide an invoice. Safe to share between threads.
    """

    def __init__(self) -> None:
        # "" = a private on-disk temporary database, deleted on close
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE known (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._lock = threading.Lock()

    def add(self, ids: Iterable[str]) -> None:
        """Remember these ids."""
        parts = _in_parts(list(ids))
        with self._lock:
            for part in parts:
                rows = ",".join(["(?)"] * len(part))
                self._db.execute(f"INSERT OR IGNORE INTO known VALUES {rows}", part)  # noqa: S608 - placeholders only

    def among(self, ids: Sequence[str]) -> set[str]:
        """The ids of `ids` that are remembered."""
        found: set[str] = set()
        with self._lock:
            for part in _in_parts(ids):
                query = f"SELECT id FROM known WHERE id IN ({','.join('?' * len(part))})"  # noqa: S608 - placeholders only
                found.update(row[0] for row in self._db.execute(query, part))
        return found

    def close(self) -> None:
        """Delete the temporary file."""
        with self._lock:
            self._db.close()


def _in_parts(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """`ids` in slices of at most MAX_QUERY_IDS: one statement each."""
    for start in range(0, len(ids), MAX_QUERY_IDS):
        yield ids[start : start + MAX_QUERY_IDS]


class ReplayGuard(Generic[T]):
    """The externalIds Leanpay holds, and those this run is sending, for one resource."""

    def __init__(self, resource: Resource, read_page: PageReader | None) -> None:
        """`read_page` None: a dry run, which reads nothing and assumes an empty tenant."""
        if resource.list_path is None:
            raise ValueError(f"{resource.name} has no list endpoint")
        self.resource = resource
        self._read_page = read_page
        self._known = KnownIds()
        self._lock = threading.Lock()
        self._claims: dict[str, list[T]] = {}  # claimant's externalId -> waiting twins
        self._refresh_lock = threading.Lock()
        self._listing_started: float | None = None
        self.list_requests = 0

    def load(self, since: float | None = None) -> None:
        """Read every page of the list endpoint and remember its externalIds.

        With `since` (a `time.monotonic()` reading), a listing that another thread
        *started* at or after that moment is reused instead of listing again: it saw
        everything stored before `since`. A listing started earlier may have read the
        pages holding newer rows before they were written, so it is never reused.
        """
        with self._refresh_lock:
            fresh = self._listing_started
            if since is not None and fresh is not None and fresh >= since:
                return
            started = time.monotonic()
            if self._read_page is None:
                logger.info(
                    "Dry run: replay safety assumes an empty tenant for %s (nothing is read "
                    "from Leanpay)",
                    self.resource.name,
                )
                self._listing_started = started
                return
            try:
                self._list_all(self._read_page)
            except AuthError as refused:
                raise AuthError(
                    f"{refused} (while listing {self.resource.name} for replay safety: the "
                    "key may lack read access; replay_safety: false skips the listing, at "
                    "the cost described in the README)",
                    status=refused.status,
                    body=refused.body,
                ) from None
            self._listing_started = started

    def claim(self, external_id: str, item: T) -> Verdict:
        """`item` may be sent, unless an earlier twin is on its way: then it waits."""
        with self._lock:
            twins = self._claims.get(external_id)
            if twins is not None:
                twins.append(item)
                return "parked"
            self._claims[external_id] = []
            return "send"

    def held(self, external_ids: Sequence[str]) -> set[str]:
        """Which of these externalIds Leanpay is known to hold."""
        return self._known.among(external_ids)

    def acknowledged(self, external_ids: Iterable[str]) -> list[T]:
        """Leanpay holds these now; return the twins that were waiting (present too)."""
        external_ids = list(external_ids)
        self._known.add(external_ids)
        return self._release(external_ids)

    def refused(self, external_id: str) -> list[T]:
        """The claimant was refused; return its twins, which cannot be trusted either."""
        return self._release([external_id])

    def close(self) -> None:
        """Delete the on-disk id store."""
        self._known.close()

    def _release(self, external_ids: Iterable[str]) -> list[T]:
        waiting: list[T] = []
        with self._lock:
            for external_id in external_ids:
                waiting.extend(self._claims.pop(external_id, []))
        return waiting

    def _list_all(self, read_page: PageReader) -> None:
        """Page through the list endpoint, remembering each page's externalIds."""
        assert self.resource.list_path is not None
        page, page_count, rows_seen, ids_seen = 1, 1, 0, 0
        while page <= page_count:
            body = read_page(self.resource.list_path, page)
            self.list_requests += 1
            rows = body.get("data") or []
            ids = [
                str(row["externalId"])
                for row in rows
                if isinstance(row, dict) and row.get("externalId")
            ]
            self._known.add(ids)
            rows_seen += len(rows)
            ids_seen += len(ids)
            if not rows:
                break
            declared = body.get("pageCount")
            # without a usable pageCount, read on until an empty page
            page_count = declared if isinstance(declared, int) else page + 1
            page += 1
        if rows_seen and not ids_seen:
            logger.warning(
                "Replay safety: Leanpay listed %d %s but none carries an externalId; "
                "records already loaded cannot be recognised",
                rows_seen,
                self.resource.name,
            )
        logger.info(
            "Replay safety: %d %s listed, %d with an externalId (%d list requests so far)",
            rows_seen,
            self.resource.name,
            ids_seen,
            self.list_requests,
        )


class ReplayGuards:
    """One guard per listable resource, listed the first time a stream loads it."""

    def __init__(self, read_page: PageReader | None, *, enabled: bool) -> None:
        self._read_page = read_page
        self._enabled = enabled
        self._guards: dict[str, ReplayGuard[Any]] = {}

    def for_resource(self, resource: Resource) -> ReplayGuard[Any] | None:
        """The guard of `resource`; None when replay safety is off or it has no list."""
        if not self._enabled or resource.list_path is None:
            return None
        guard = self._guards.get(resource.name)
        if guard is None:
            guard = self._guards[resource.name] = ReplayGuard(resource, self._read_page)
            guard.load()
        return guard

    def close(self) -> None:
        """Delete every guard's id store."""
        for guard in self._guards.values():
            guard.close()
