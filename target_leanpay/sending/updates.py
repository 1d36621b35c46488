"""Updates: what becomes of a record Leanpay holds whose contents changed in the source.

Leanpay's public API can update only two of the objects the target creates:
`PUT /links/{id}` (amount, date) and `PUT /paybacks/{id}` (amount, date, externalId).
So, for a record whose externalId Leanpay already holds (changes.py compares them):

* unchanged (or unknown: no fields kept for it): already present, silently;
* a link or payback whose amount or date changed: PUT in place, with the Leanpay id
  the receipts (or the listing) give; the receipt is brought up to date (a newer line),
  and the record counts as *updated*. A PUT is idempotent: the client retries it on a
  lost answer or a 5xx like a GET. A 404 (the object is gone) or a 400/409/422 (Leanpay
  refuses the values) rejects the record, with why and what Leanpay said;
* anything else (an invoice, a credit note, a misc operation, an address; a link moved
  to another invoice or credit note; an object whose Leanpay id is not known): reported,
  not sent. One WARNING (capped), a line in the dead-letter file with both values and
  the reason, a count in the summary; settled like any other outcome, never a failure.

A plan or a dry run goes through the same policy: its PUTs go to the requests file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from target_leanpay.leanpay.client import OnRetry
from target_leanpay.leanpay.errors import ApiError, ItemsRefused
from target_leanpay.output.deadletter import WARN_LIMIT, DeadLetters, RejectedItem
from target_leanpay.output.progress import StreamStats
from target_leanpay.records.mapping import Problem
from target_leanpay.records.resources import Kind, Resource
from target_leanpay.records.values import show
from target_leanpay.store import changes
from target_leanpay.store.changes import Change
from target_leanpay.store.date_zone import DateZones
from target_leanpay.store.store import SEVERAL, Promises

logger = logging.getLogger("target-leanpay")

T = TypeVar("T", bound="Item")


class Putter(Protocol):
    """`LeanpayClient.put` (or the dry run's): PUT one body to one path; raises ApiError."""

    def __call__(
        self, path: str, body: dict[str, Any], *, on_retry: OnRetry | None = None
    ) -> object:
        """Send it; `on_retry` is told of each retry."""


@dataclass(frozen=True)
class Updatable:
    """One PUT endpoint: where, which changed fields it carries, what else its body holds."""

    prefix: str
    fields: tuple[str, ...]
    also: tuple[str, ...] = ()
    """Sent unchanged, so that the PUT does not clear them (a payback's externalId)."""


UPDATABLE: dict[str, Updatable] = {
    "links": Updatable("/links/", ("amount", "date")),
    "paybacks": Updatable("/paybacks/", ("amount", "date"), also=("externalId",)),
}
"""The only documented updates of what the batch imports create, by resource name."""

ARTICLES = {
    "invoices": "an invoice",
    "credit_notes": "a credit note",
    "paybacks": "a payback",
    "links": "a link",
    "misc_operations": "a misc operation",
    "addresses": "an address",
}


class Holdings(Protocol):
    """What the replay guard knows of the objects Leanpay holds (replay.ReplayGuard)."""

    def holdings(self, external_ids: Sequence[str]) -> dict[str, tuple[str | None, bytes | None]]:
        """externalId -> (Leanpay id, its `changes.kept` fields encoded, None if unknown)."""

    def now_holds(self, external_id: str, kept: bytes) -> None:
        """Leanpay holds these fields for `external_id` now (after a PUT)."""


@dataclass(frozen=True)
class Put:
    """A PUT that brings a link or payback up to date."""

    path: str
    body: dict[str, Any]
    changes: list[Change]


@dataclass(frozen=True)
class NotUpdatable:
    """A change Leanpay's API cannot carry, and why."""

    changes: list[Change]
    reason: str


Decision = Put | NotUpdatable | None
"""None: unchanged (or unknown), already present."""

Describe = Callable[[list[Change]], str]
"""How the changes of one record read in a message (`changes.describe`, or `in_source`)."""


def in_source(
    resource: Resource,
    found: list[Change],
    record: Mapping[str, Any],
    amount_shown: Callable[[int], str],
) -> str:
    """The changes as the source wrote them: `amount: 28092,19 → 9 999,99 (in cents:
    2809219 → 999999)` for an export in euros with a decimal comma; a value sent in
    another form than written (a date `05/04/2024`) is quoted beside the one compared.
    Leanpay's side is shown in the source's unit (`amount_shown`); `record` is the record
    as read (after stream maps)."""
    kinds = {f.name: f for f in resource.fields}
    described = []
    for change in found:
        fld = kinds[change.field]
        written = record.get(fld.name, record.get(fld.snake_name))
        if fld.kind is Kind.MONEY and _in_other_units(change, written, amount_shown):
            new = _amount(change.new, amount_shown) if written is None else str(written).strip()
            described.append(
                f"{change.field}: {_amount(change.old, amount_shown)} → {new} "
                f"(in cents: {_amount(change.old, str)} → {_amount(change.new, str)})"
            )
        elif isinstance(written, str) and written != change.new:
            described.append(f"{change} (written {show(written)})")
        else:
            described.append(str(change))
    return "; ".join(described)


def _amount(value: object, shown: Callable[[int], str]) -> str:
    """An amount Leanpay holds or would get (cents), `shown`; one of another type as is."""
    if value is None:
        return "(none)"
    return shown(value) if isinstance(value, int) else show(value)


def _in_other_units(change: Change, written: object, amount_shown: Callable[[int], str]) -> bool:
    """Whether an amount reads otherwise in the source than in Leanpay's cents."""
    return isinstance(written, str) or any(
        isinstance(value, int) and amount_shown(value) != str(value)
        for value in (change.old, change.new)
    )


def decide(
    resource: Resource,
    leanpay_id: str | None,
    held: dict[str, Any] | None,
    wire: dict[str, Any],
    *,
    describe: Describe = changes.describe,
    zone: str | None = None,
) -> Decision:
    """What to do with a record Leanpay holds (`held`: its kept fields, None if unknown);
    `describe` words the changes in the reason; `zone`: the tenant's time zone, its echoed
    dates' days, None if not known."""
    if held is None:
        return None
    found = changes.differences(resource, held, wire, zone)
    if not found:
        return None
    article = ARTICLES.get(resource.name, f"a {resource.name}")
    updatable = UPDATABLE.get(resource.name)
    if updatable is None:
        return NotUpdatable(
            found,
            f"changed in the source ({describe(found)}), and Leanpay's API cannot "
            f"update {article}: change it in Leanpay, or delete it there and load this record "
            "again",
        )
    others = [c.field for c in found if c.field not in updatable.fields]
    if others:
        carried = " and ".join(updatable.fields)
        return NotUpdatable(
            found,
            f"changed in the source ({describe(found)}); Leanpay's API can update "
            f"only the {carried} of {article}, not its {', '.join(others)}: change it in "
            "Leanpay (delete it there and load this record again)",
        )
    if leanpay_id is None or leanpay_id == SEVERAL:
        known = "several Leanpay objects carry its externalId" if leanpay_id else "not known"
        return NotUpdatable(
            found,
            f"changed in the source ({describe(found)}), but its Leanpay id is "
            f"{known}, so it cannot be updated: change it in Leanpay",
        )
    body = {name: wire.get(name) for name in (*updatable.fields, *updatable.also)}
    return Put(f"{updatable.prefix}{leanpay_id}", body, found)


@dataclass
class Sorted(Generic[T]):
    """The items Leanpay holds, by what became of them."""

    unchanged: list[T] = field(default_factory=list)
    updated: list[T] = field(default_factory=list)
    reported: list[T] = field(default_factory=list)
    """Changed, not updatable: reported, not sent."""
    refused: list[tuple[T, tuple[Problem, ...], ApiError]] = field(default_factory=list)
    """Their PUT refused (404: gone; 400: the values): to be rejected."""


class Item(Protocol):
    """A record as the policy sees it (delivery.Pending)."""

    external_id: str | None
    stream: str
    record: dict[str, Any]
    stats: StreamStats

    @property
    def wire(self) -> dict[str, Any]:
        """The payload as it would be sent, references resolved."""

    @property
    def ident(self) -> str:
        """Where the record is: externalId and input line."""


class Noted(Protocol):
    """A plan's tally of the differences (plan.Plan.changed)."""

    def __call__(self, stream: str, ident: str, what: str) -> None:
        """Note one difference a real run would update or report."""


class Updates:
    """Sorts out the items Leanpay holds: PUTs what can be updated, reports the rest."""

    def __init__(
        self,
        *,
        put: Putter,
        dead_letters: DeadLetters,
        receipts: Promises,
        noted: Noted | None = None,
        amount_shown: Callable[[int], str] = str,
        date_zones: DateZones | None = None,
    ) -> None:
        """`noted`: a plan, which lists each difference in its report; `amount_shown`:
        Leanpay's cents in the source's unit (`values.amount_shown`), for messages;
        `date_zones`: the tenant's time zone, in which echoed dates are compared."""
        self._date_zones = date_zones
        self._put = put
        self._amount_shown = amount_shown
        self._dead_letters = dead_letters
        self._receipts = receipts
        self._noted = noted
        self._logged = 0
        self._lock = threading.Lock()

    def sort_out(self, resource: Resource, guard: Holdings, items: Sequence[T]) -> Sorted[T]:
        """Compare each item with what Leanpay holds, then update, report or keep it."""
        done: Sorted[T] = Sorted()
        known = guard.holdings([i.external_id for i in items if i.external_id is not None])
        zone = self._date_zones.zone() if self._date_zones is not None else None
        for item in items:
            leanpay_id, stored = known.get(item.external_id or "", (None, None))
            if stored is None:  # unknown: never a change
                done.unchanged.append(item)
                continue
            describe = self._describer(resource, item)
            decision = decide(
                resource,
                leanpay_id,
                changes.decode(stored),
                item.wire,
                describe=describe,
                zone=zone,
            )
            if decision is None:
                done.unchanged.append(item)
            elif isinstance(decision, NotUpdatable):
                self._report(item, decision)
                done.reported.append(item)
            else:
                refusal = self._update(resource, guard, item, decision, leanpay_id or "")
                if refusal is None:
                    done.updated.append(item)
                else:
                    done.refused.append((item, *refusal))
        return done

    def _describer(self, resource: Resource, item: Item) -> Describe:
        """The changes of `item`, worded in its source's units (`in_source`)."""
        return lambda found: in_source(resource, found, item.record, self._amount_shown)

    def _update(
        self, resource: Resource, guard: Holdings, held: Item, put: Put, leanpay_id: str
    ) -> tuple[tuple[Problem, ...], ApiError] | None:
        """Send the PUT; on success the receipt and the guard learn the new fields."""

        def count_retry(_message: str) -> None:
            held.stats.add(retries=1)

        held.stats.add(requests=1)
        described = self._describer(resource, held)(put.changes)
        try:
            self._put(put.path, put.body, on_retry=count_retry)
        except (ItemsRefused, ApiError) as error:
            if not isinstance(error, ItemsRefused) and error.status != 404:
                raise
            what = "no longer holds it (404)" if error.status == 404 else "refused the values"
            reason = (
                f"changed in the source ({described}); PUT {put.path} to "
                f"update it failed: Leanpay {what}: {error.api_said}"
            )
            return (Problem("(item)", reason),), error
        kept = changes.kept(resource, held.wire)
        external_id = held.external_id or ""
        pair = [(external_id, leanpay_id)]
        self._receipts.record(held.stream, resource.name, pair, sent={external_id: kept})
        guard.now_holds(external_id, changes.encode(kept))
        self._note(held, described, put.path)
        return None

    def _report(self, held: Item, decision: NotUpdatable) -> None:
        self._dead_letters.changed(
            RejectedItem(
                stream=held.stream,
                ident=held.ident,
                record=held.record,
                payload=held.wire,
                problems=(Problem("(item)", decision.reason),),
            ),
            [{"field": c.field, "leanpay": c.old, "source": c.new} for c in decision.changes],
        )
        if self._noted is not None:
            self._noted(held.stream, held.ident, decision.reason)

    def _note(self, held: Item, what: str, path: str) -> None:
        """An INFO line per update, up to WARN_LIMIT per run (the summary counts them all)."""
        if self._noted is not None:
            self._noted(held.stream, held.ident, f"would be updated by PUT {path}: {what}")
            return
        with self._lock:
            self._logged += 1
            if self._logged > WARN_LIMIT:
                return
        logger.info(
            "Updated: stream '%s', record %s: %s (PUT %s)", held.stream, held.ident, what, path
        )
