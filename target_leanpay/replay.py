"""Replay safety: never send an externalId that Leanpay already holds.

Singer delivery is at-least-once: a resumed run re-sends records after the last STATE,
and some of them may already be in Leanpay. Leanpay documents no idempotency key and no
behaviour for a repeated externalId, so the target does not rely on one:

* before the first record of a listable resource (invoices: `GET /invoices?page=N`) is
  sent, every page is read once and the externalIds kept in a set;
* each record's externalId is *claimed* before it is sent; a later record with the same
  externalId waits for the first one's outcome (acknowledged -> "already present";
  refused -> refused too, pointing at the first);
* after an ambiguous request (sent, but no answer), the pages are read again and only the
  items still missing are re-sent.

Records without an externalId, and resources with no list endpoint, cannot be checked:
they are sent at least once (README, "Exactly once").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from target_leanpay.idset import CompactIdSet
from target_leanpay.resources import Resource

logger = logging.getLogger("target-leanpay.replay")

T = TypeVar("T")
Verdict = Literal["send", "present", "parked"]
PageReader = Callable[[str, int], dict[str, Any]]


@dataclass
class _Claim(Generic[T]):
    waiting: list[T] = field(default_factory=list)


class ReplayGuard(Generic[T]):
    """The externalIds Leanpay holds or that this run is sending, for one resource."""

    def __init__(self, resource: Resource, read_page: PageReader) -> None:
        if resource.list_path is None:
            raise ValueError(f"{resource.name} has no list endpoint")
        self.resource = resource
        self._read_page = read_page
        self._lock = threading.Lock()
        self._present = CompactIdSet()
        self._claims: dict[str, _Claim[T]] = {}
        self._listing_started: float | None = None
        self._refresh_lock = threading.Lock()
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
            self._list_all()
            self._listing_started = started

    @property
    def present_count(self) -> int:
        """How many externalIds are known to be in Leanpay."""
        with self._lock:
            return len(self._present)

    def holds(self, external_id: str) -> bool:
        """Whether Leanpay is known to hold `external_id`."""
        with self._lock:
            return external_id in self._present

    def claim(self, external_id: str, item: T) -> Verdict:
        """Decide whether `item` should be sent; park it behind an earlier twin."""
        with self._lock:
            if external_id in self._present:
                return "present"
            twin = self._claims.get(external_id)
            if twin is not None:
                twin.waiting.append(item)
                return "parked"
            self._claims[external_id] = _Claim()
            return "send"

    def acknowledged(self, external_id: str) -> list[T]:
        """Leanpay holds it now; return the twins that were waiting (they are present)."""
        with self._lock:
            self._present.add(external_id)
            claim = self._claims.pop(external_id, None)
            return claim.waiting if claim else []

    def refused(self, external_id: str) -> list[T]:
        """The claimant was refused; return the twins, which cannot be trusted either."""
        with self._lock:
            claim = self._claims.pop(external_id, None)
            return claim.waiting if claim else []

    def _list_all(self) -> None:
        """Page through the list endpoint, adding each externalId as it comes."""
        assert self.resource.list_path is not None
        page, page_count, rows_seen, ids_seen = 1, 1, 0, 0
        while page <= page_count:
            body = self._read_page(self.resource.list_path, page)
            self.list_requests += 1
            rows = body.get("data") or []
            ids = [
                str(row["externalId"])
                for row in rows
                if isinstance(row, dict) and row.get("externalId")
            ]
            with self._lock:
                for external_id in ids:
                    self._present.add(external_id)
            rows_seen += len(rows)
            ids_seen += len(ids)
            page_count = int(body.get("pageCount") or 0)
            if not rows:
                break
            page += 1
        if rows_seen and not ids_seen:
            logger.warning(
                "Replay safety: Leanpay listed %d %s but none carries an externalId; "
                "records already loaded cannot be recognised",
                rows_seen,
                self.resource.name,
            )
        logger.info(
            "Replay safety: %d %s listed, %d externalIds known (%d list requests so far)",
            rows_seen,
            self.resource.name,
            self.present_count,
            self.list_requests,
        )
