"""Finds: before a record is skipped as already in Leanpay, the belief is re-proved by the
cheapest proof that holds (docs/architecture.md, "Beliefs re-proved before a skip"). For
invoices: this run's delta whose count added up, or its full listing; else finds by id
while they stay within the pages of a full listing, then one (how many repeats the input
holds is not known when a chunk is sifted: at most twice the cheaper of the two). Credit
notes, links and paybacks have no count: every repeat believed from the receipts is
found by id. A 404: sent again. A dry run finds nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

from target_leanpay.listings.replay import ReplayGuard
from target_leanpay.listings.tenant_listing import TenantListing
from target_leanpay.output.progress import plural
from target_leanpay.records.resources import Resource
from target_leanpay.store import changes
from target_leanpay.store.store import SEVERAL

logger = logging.getLogger("target-leanpay.replay")

FIND_PATHS = {
    "invoices": "/invoices/",
    "credit_notes": "/credit-notes/",
    "links": "/links/",
    "paybacks": "/paybacks/",
}
"""Where each resource is found by its Leanpay id (the id follows)."""

Finder = Callable[[str], dict[str, Any] | None]
"""`LeanpayClient.find`: the object at this path, or None for a 404."""


class Finds:
    """Re-proves the repeats of a chunk; shared by the sending threads."""

    def __init__(self, find: Finder | None, *, concurrency: int) -> None:
        """`find` None (a dry run): every belief stands."""
        self._find = find
        self._concurrency = max(concurrency, 1)
        self._one_chunk_at_a_time = threading.Lock()

    def gone(
        self, resource: Resource, guard: ReplayGuard[Any], external_ids: Sequence[str]
    ) -> set[str]:
        """Of these externalIds, believed held, those Leanpay no longer holds: the guard
        forgets them, and they are sent again. The tenant index's doubts are settled one
        chunk at a time (its finds still go out together): one chunk's 404s may explain
        every deletion the count showed, and spare the next chunk its finds."""
        chunks = self._one_chunk_at_a_time if isinstance(guard.listing, TenantListing) else None
        with chunks or nullcontext():
            if not self._in_question(resource, guard) or not external_ids:
                return set()
            holdings = guard.holdings(external_ids)
            by_id = {i: e for e, (i, _) in holdings.items() if i is not None and i != SEVERAL}
            gone, to_find = self._in_doubt(resource, guard, list(by_id))
            if to_find:
                gone |= self._found_gone(resource, guard, to_find, by_id)
            missing = {by_id[i] for i in gone}
            if missing:
                guard.forget(sorted(missing))
                logger.info(
                    "Replay safety: Leanpay no longer holds %s this target believed it held "
                    "(first: %r): sent again",
                    plural(len(missing), resource.name[:-1].replace("_", " ")),
                    min(missing),
                )
            return missing

    def _in_question(self, resource: Resource, guard: ReplayGuard[Any]) -> bool:
        """Whether anything the guard believes may need a proof (cheap: most chunks of a
        delta run that added up ask nothing more)."""
        if self._find is None or resource.name not in FIND_PATHS:
            return False
        listing = guard.listing
        if isinstance(listing, TenantListing):
            return listing.doubts
        return not (resource.listed_first and listing is not None and listing.reread is None)

    def _in_doubt(
        self, resource: Resource, guard: ReplayGuard[Any], leanpay_ids: list[str]
    ) -> tuple[set[str], list[str]]:
        """(those known gone, those to find by id), by what this run has proved."""
        listing = guard.listing
        if isinstance(listing, TenantListing):
            gone, to_find = listing.in_doubt(leanpay_ids)
            if to_find and not listing.may_find(len(to_find)):
                guard.confirm_since(guard.now())  # every page: the index is distrusted
                gone, to_find = listing.in_doubt(leanpay_ids)
            return gone, to_find
        if resource.listed_first and listing is not None:  # a full listing of this run
            reread = listing.reread  # read more than once: only its last reading counts
            return ({i for i in leanpay_ids if i not in reread} if reread else set()), []
        return set(), leanpay_ids  # the receipts' word

    def _found_gone(
        self,
        resource: Resource,
        guard: ReplayGuard[Any],
        to_find: list[str],
        by_id: dict[str, str],
    ) -> set[str]:
        """Find these; return those Leanpay answered 404 for. Invoices: more 404s than the
        count allows are not believed; every page is read instead."""
        prefix = FIND_PATHS[resource.name]
        gone: set[str] = set()
        for leanpay_id, obj in zip(
            to_find, self._find_all([prefix + i for i in to_find]), strict=True
        ):
            if obj is None:
                gone.add(leanpay_id)
            else:
                guard.now_holds(by_id[leanpay_id], changes.encode(changes.kept(resource, obj)))
        listing = guard.listing
        if isinstance(listing, TenantListing) and not listing.found_gone(sorted(gone)):
            logger.warning(
                "Replay safety: Leanpay answered 404 for %s it should list, more than the "
                "count allows: every page is read instead",
                plural(len(gone), "invoice"),
            )
            guard.confirm_since(guard.now())
            gone, _ = listing.in_doubt(to_find)
        return gone

    def _find_all(self, paths: list[str]) -> list[dict[str, Any] | None]:
        assert self._find is not None
        if len(paths) == 1 or self._concurrency == 1:
            return [self._find(p) for p in paths]
        with ThreadPoolExecutor(
            min(self._concurrency, len(paths)), thread_name_prefix="leanpay-find"
        ) as threads:
            return list(threads.map(self._find, paths))
