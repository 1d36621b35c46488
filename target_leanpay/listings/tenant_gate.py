"""The tenant's lock, held from before the run's first POST to its end: one run per tenant.

Two runs loading one tenant (an hourly job that overran) must not both send: each would
decide from what Leanpay and the receipts said before the other's objects existed. Page 1
of `GET /invoices` names the tenant (`tenantId`), read for this alone by a run without
invoices; a tenant that lists nothing holds the host's lock exclusively (`tenant_lock.py`,
`pg_lock.py`). What the run believed before it held the lock may be stale, so page 1, the
sending marks (`held`) and the receipts of what Leanpay cannot list are read after it. A
plan, a dry run and replay_safety false take no lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from target_leanpay.listings.delta import tenant_of
from target_leanpay.listings.listing import Listing
from target_leanpay.store.store import TenantKey, TenantLock

logger = logging.getLogger("target-leanpay.replay")


class TenantGate:
    """The run's hold on its tenant: taken once, by whichever comes first (the invoice
    listing, or the first resource Leanpay cannot list), released by `close`."""

    def __init__(
        self,
        lock: TenantLock | None,
        *,
        api_url: str,
        where: str,
        held: Callable[[], None],
    ) -> None:
        """`lock` None: none is taken. `held`: called once the lock is held, before anything
        is sent. `where`: the store, for messages."""
        self._lock = lock
        self._api_url = api_url
        self._where = where
        self._held_callback = held
        self._held = False
        self._mutex = threading.Lock()
        self.unusable = False
        """The store folder could not hold the lock: nothing is waited for, nor written."""
        self.tenant: str | None = None
        """The tenant this run loads, once page 1 named it when the lock was taken, or the
        invoice listing (or its first acknowledgement) opened its index."""

    def hold(self, invoices: Listing) -> None:
        """Hold the tenant's lock (waiting for another run of it, saying so), if not yet."""
        with self._mutex:
            if self._lock is not None and not self._held:
                self._take(self._lock, invoices)

    def first_page(self, invoices: Listing) -> dict[str, Any]:
        """Page 1 of `invoices`, read with the tenant's lock held (taken now if not yet)."""
        with self._mutex:
            if self._lock is not None and not self._held:
                return self._take(self._lock, invoices)
        return invoices.read_page(1)

    def _take(self, lock: TenantLock, invoices: Listing) -> dict[str, Any]:
        body = invoices.read_page(1)
        while True:
            tenant = tenant_of(invoices.page(1, body))
            key = TenantKey.of(self._api_url, tenant) if tenant else None
            try:
                waited = lock.hold_tenant(key) if key else lock.hold_new_tenant()
            except OSError as unusable:  # a read-only home, a full disk: go on without it
                self._lock = None
                self.unusable = True
                logger.warning(
                    "Replay safety: the tenant index folder %s cannot be used (%s): every "
                    "page is read in each run, and another run on this tenant is not waited "
                    "for; set store to a writable folder",
                    self._where,
                    unusable,
                )
                return body
            if not waited:
                break
            body = invoices.read_page(1)  # another run sent meanwhile: read again
            if tenant_of(invoices.page(1, body)) == tenant:
                break
            # the tenant is named now: take its own lock
        self._held = True
        self.tenant = tenant
        self._held_callback()
        return body

    def close(self) -> None:
        """Let another run load the tenant (not under the mutex: a thread still waiting
        for another run ends on the run's stop flag)."""
        if self._lock is not None:
            self._lock.release()
