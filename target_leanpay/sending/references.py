"""References: a link's or payback's Leanpay ids, found from the user's own externalIds.

A link needs Leanpay's `invoiceId` and `creditNoteId`, a payback `creditNoteId`: UUIDs no
ERP holds. Records may name those objects by externalId instead (`Reference`), and the
sending thread resolves them, just before the chunk is sent:

* an object this run read is waited for: its Leanpay id comes with Leanpay's
  acknowledgement. A record naming an object read later in the input was parked until
  then (parking.py), and the sink hands a chunk with references over only after the
  chunks of the objects read before it, so the object's chunk is already on its way; if
  Leanpay refused it, so is the reference;
* otherwise (the input has ended without it) invoices are looked up in the replay
  listing, and credit notes (which have no list endpoint) in the receipts of earlier
  runs (`receipts_path`);
* an id that cannot be found, or that several objects share, is a rejection with the
  reason: never a guess.

A dry run cannot know the id of an object it only pretends to create: it writes a
placeholder, never sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from target_leanpay.listings.replay import ReplayGuard
from target_leanpay.records.mapping import Reference
from target_leanpay.records.resources import RESOURCES, Resource
from target_leanpay.records.values import InvalidValue, show
from target_leanpay.store.store import SEVERAL


class References:
    """Resolves `Reference`s to Leanpay ids, from the guards of the referred resources."""

    def __init__(self, guard_for: Callable[[Resource], ReplayGuard[Any]], *, dry_run: bool) -> None:
        """`guard_for`: the guard of a resource (`ReplayGuards.for_resource`)."""
        self._guard_for = guard_for
        self._dry_run = dry_run

    def resolve(self, reference: Reference) -> str:
        """The Leanpay id `reference` names; InvalidValue saying why when there is none."""
        resource = RESOURCES[reference.resource]
        guard = self._guard_for(resource)
        external_id = reference.external_id
        what = f"{resource.name} with externalId {show(external_id)}"
        leanpay_id = guard.settled_id(external_id)
        if leanpay_id == SEVERAL:
            raise InvalidValue(
                f"several Leanpay {what} exist; refer to the one meant by its Leanpay id"
            )
        if leanpay_id is not None:
            return leanpay_id
        if guard.held([external_id]):
            if self._dry_run:
                return f"(the Leanpay id of {what}, created by this load)"
            raise InvalidValue(f"Leanpay acknowledged {what} but its answer gave no id")
        fate = guard.twins.fate(external_id)
        if fate == "refused":
            raise InvalidValue(f"{what} was refused by Leanpay in this run")
        if fate == "uncertain":
            raise InvalidValue(
                f"{what} may be in Leanpay, but the answer that would have given its id was "
                "lost; give its Leanpay id instead"
            )
        raise InvalidValue(f"no {what} is known to Leanpay ({self._looked(guard)})")

    def _looked(self, guard: ReplayGuard[Any]) -> str:
        """Where the id was looked for, so the user knows what to change."""
        if guard.checks_leanpay:
            return "not listed by Leanpay, nor loaded from this input"
        if guard.resource.list_path is None:
            return (
                f"{guard.resource.name} cannot be listed: only those loaded from this input "
                "or received by an earlier run into this store (its receipts) can be "
                "referred to by externalId"
            )
        if self._dry_run:
            return "a dry run reads nothing from Leanpay; plan: true reads the tenant"
        return f"replay_safety is off, so {guard.resource.name} are not listed"
