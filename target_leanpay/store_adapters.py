"""The PostgreSQL store seen through the methods the run of today calls.

The listing code (`tenant_listing.py`, `delta.py`, `replay.py`) speaks to a
`TenantIndex`, and delivery to `Receipts`; the PostgreSQL store speaks
`store.InvoiceCache` and `store.Promises`. These adapters let a run use it until those
modules ask the store directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from target_leanpay import changes, store
from target_leanpay.pg_store import PgInvoiceCache, PgPromises
from target_leanpay.receipts import Earlier, Pair, Receipts
from target_leanpay.runmark import RunMark
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


class StoreReceipts(Receipts):
    """`Receipts` whose truth is the PostgreSQL store's promises: receipts and sending
    marks live there, whatever machine the next run lands on. `receipts_path`, when set,
    is still written, as an export (for a warehouse); it is not read."""

    def __init__(
        self, promises: PgPromises, export: str | None, *, writable: bool, run: RunMark
    ) -> None:
        super().__init__(export, writable=writable, run=run)
        self._promises = promises
        self.path = export or promises.where  # receipts are kept (delivery asks)
        self.sending_path = f"the sending table of the store {promises.where}"

    def earlier(self, resource: str, tenant: str | None = None) -> Iterator[Earlier]:
        """(externalId, id, fields sent) of every receipt of `resource`, oldest first."""
        for receipt in self._promises.all_receipts(resource, tenant):
            yield receipt.external_id, receipt.leanpay_id, receipt.sent

    def uncertain(self, resource: str) -> set[str]:
        """Marked by an earlier run, on any machine, and never acknowledged."""
        return self._promises.uncertain(resource)

    def mark_sending(self, resource: str, external_ids: Sequence[str]) -> None:
        """Committed in the store before the POST."""
        self._promises.mark_sending(resource, external_ids)
        super().mark_sending(resource, external_ids)

    def refused(self, resource: str, external_ids: Sequence[str]) -> None:
        """Leanpay refused the POST: its marks go."""
        self._promises.lift(resource, external_ids)
        super().refused(resource, external_ids)

    def record(
        self,
        stream: str,
        resource: str,
        acknowledged: Sequence[Pair],
        tenant: str | None = None,
        sent: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Committed in the store before the STATE that covers them; then exported."""
        fields = sent or {}
        self._promises.record(
            [
                store.Receipt(
                    resource,
                    external_id,
                    leanpay_id,
                    stream,
                    self._run_started,
                    tenant,
                    None if external_id not in fields else changes.encode(fields[external_id]),
                )
                for external_id, leanpay_id in acknowledged
            ]
        )
        if self._file is None:  # no export file: count what the store keeps
            self.written += len(acknowledged)
        super().record(stream, resource, acknowledged, tenant, sent)
