"""A `store.Store`'s cache seen through the tenant index's methods.

The listing code of today (`tenant_listing.py`, `delta.py`, `replay.py`) speaks to a
`TenantIndex`; the PostgreSQL store speaks `store.InvoiceCache`. This adapter lets a run
use the PostgreSQL store until those modules ask the store directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from target_leanpay import store
from target_leanpay.pg_store import PgInvoiceCache
from target_leanpay.tenant_index import Row, TenantIndex, Watermark


class CacheIndex(TenantIndex):
    """`TenantIndex`'s methods over a PostgreSQL store's cache of one tenant."""

    def __init__(self, cache: PgInvoiceCache, *, host: str, tenant_id: str, where: str) -> None:
        # not TenantIndex.__init__: there is no file to open
        self.host = host
        self.tenant_id = tenant_id
        self.path = Path(where)
        self.writable = cache.writable
        self.problem = cache.problem
        self._lock = threading.Lock()
        self._cache = cache

    @property
    def on_disk(self) -> Path | None:
        """No file: a run reads the invoices through `pairs`."""
        return None

    def count(self) -> int:
        """Invoices in the cache."""
        with self._lock:
            return self._cache.count()

    def has(self, leanpay_ids: Sequence[str]) -> set[str]:
        """The Leanpay ids of `leanpay_ids` the cache holds."""
        with self._lock:
            return self._cache.has([store.Row(i, None, None) for i in leanpay_ids])

    def pairs(self) -> list[tuple[str, str | None, bytes | None]]:
        """(externalId, Leanpay id, contents) of every invoice that has an externalId."""
        with self._lock:
            return self._cache.pairs()

    def watermark(self) -> Watermark:
        """What the last verified listing established."""
        with self._lock:
            mark = self._cache.watermark()
        return Watermark(mark.complete, mark.newest, mark.total, mark.order)

    def add(self, rows: Iterable[Row]) -> None:
        """Remember these invoices."""
        converted = [
            store.Row(r.leanpay_id, r.external_id, r.created_at, r.tenant_id, r.contents)
            for r in rows
        ]
        with self._lock:
            self._cache.add(converted)

    def begin_full_listing(self) -> None:
        """Forget every invoice and the watermark."""
        with self._lock:
            self._cache.begin_full_listing()

    def verified(self, *, total: int, order: str | None) -> None:
        """A listing proved the cache whole."""
        with self._lock:
            self._cache.verified(total=total, order=order)

    def close(self) -> None:
        """Nothing to close: the connection is the store's."""
        self._cache.close()
