"""Delivery: how one chunk of <= 100 items is sent until every item is settled, once.

Each item of a chunk ends in exactly one of three ways, and only then is it settled for
checkpoints:

* acknowledged: Leanpay answered 2xx *and* its answer lists the item;
* already present: replay safety found its externalId in Leanpay, with the same
  contents; if they changed in the source, it is updated in place (a link, a payback)
  or reported as changed, not updatable (updates.py);
* rejected: dead-lettered, or the run stops.

The policy, one outcome of a POST at a time:

* 2xx listing every item: acknowledged;
* 2xx listing some: those are acknowledged; the rest are unconfirmed, handled like an
  unanswered request (below), or the run stops when the resource cannot be listed;
* before an item is settled as already present, what says so (the tenant index, the
  receipts) is re-proved where it must be (`finds.py`): a 404 sends it again;
* 400/409/422 naming item paths (`invoices.3.amount ...`): those items are rejected, the
  rest sent again (invoices: once a listing that starts then settled those Leanpay kept:
  an import without a transaction keeps the items before the refused one);
* 400/409/422 naming no item: bisection. One bad item among n costs at most
  2*ceil(log2 n) extra requests (14 for 100); k bad items at most 14*k, and a chunk never
  costs more than 2n-1 requests. When bisection ends with every item refused, unnamed,
  with the same answer, the refusal is about the request, not the records: the run stops
  instead of dead-lettering everything;
* ambiguous: Leanpay may have stored it. A 5xx it answered itself (500) ended the
  request: check at once. No answer (a timeout, a dropped or cut connection) or a
  gateway's 502/503/504: Leanpay may still be working on it, so wait (`no_answer_wait`, or
  the server's Retry-After) before checking. Checking means waiting for a listing that
  started after that moment (shared with other uncertain requests), settling what it
  holds and sending only the rest, at most `max_ambiguous_retries` times. Without a
  list to read, the batch is sent again after the wait, with a warning;
* anything else (retries exhausted, another 4xx): the run stops, STATE behind the chunk.

Delivery makes no HTTP call itself: `send` is the client's `post_batch` (or the dry
run's), which is what lets the unit tests drive every outcome with a fake.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from target_leanpay.leanpay.client import Created, OnRetry
from target_leanpay.leanpay.errors import Ambiguous, ApiError, ItemsRefused, Stopped
from target_leanpay.listings.finds import Finds
from target_leanpay.listings.listing import Listing
from target_leanpay.output.checkpoint import Checkpoints
from target_leanpay.output.deadletter import DeadLetters, RejectedItem
from target_leanpay.output.progress import Progress
from target_leanpay.records.mapping import Problem, Reference
from target_leanpay.records.resources import Resource
from target_leanpay.records.values import InvalidValue
from target_leanpay.sending.items import Chunk, Pending, as_sent
from target_leanpay.sending.references import References
from target_leanpay.sending.repeats import as_data, recalled, remembered, repeat_reason
from target_leanpay.sending.updates import Updates
from target_leanpay.store import changes
from target_leanpay.store.date_zone import DateZones
from target_leanpay.store.store import Promises

logger = logging.getLogger("target-leanpay")


class Sender(Protocol):
    """`LeanpayClient.post_batch`, or the dry run's."""

    def __call__(
        self,
        resource: Resource,
        items: Sequence[dict[str, Any]],
        *,
        on_retry: OnRetry | None = None,
    ) -> list[Created] | None:
        """Send one batch; return the objects the answer lists (None: unreadable)."""


@dataclass(slots=True)
class _Refusal:
    """An item Leanpay refused (or that cannot be sent: `error` None), with why."""

    item: Pending
    problems: tuple[Problem, ...]
    error: ApiError | None


def _messages(body: str) -> list[str]:
    """The error strings of a refusal, whatever shape the body has."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return [body] if body else []
    found = data.get("message") if isinstance(data, dict) else data
    if isinstance(found, str):
        return [found]
    if isinstance(found, list):
        return [m if isinstance(m, str) else msgspec.json.encode(m).decode() for m in found]
    return [body]


def blamed_items(body: str, body_key: str, size: int) -> dict[int, list[Problem]]:
    """Item index -> problems, for messages like `invoices.3.amount must not be ...`."""
    pattern = re.compile(rf"^\s*{re.escape(body_key)}(?:\.|\[)(\d+)\]?(?:\.(\w+))?\s*(.*)$")
    blamed: dict[int, list[Problem]] = {}
    for message in _messages(body):
        match = pattern.match(message)
        if match is None:
            continue
        index = int(match.group(1))
        if index >= size:
            return {}  # the API counts differently than we think: do not trust any index
        field_name = match.group(2) or "(item)"
        blamed.setdefault(index, []).append(Problem(field_name, message.strip()))
    return blamed


class Delivery:
    """The policy above; `deliver` runs in a sending thread, one chunk at a time."""

    def __init__(
        self,
        *,
        send: Sender,
        checkpoints: Checkpoints,
        dead_letters: DeadLetters,
        progress: Progress,
        references: References,
        promises: Promises,
        failed: threading.Event,
        stopping: threading.Event,
        max_ambiguous_retries: int,
        no_answer_wait: float,
        max_wait: float,
        dry_run: bool = False,
        updates: Updates | None = None,
        finds: Finds | None = None,
        date_zones: DateZones | None = None,
    ) -> None:
        """`dry_run`: nothing is held in Leanpay (a plain dry run): notes say so.
        `updates`: what becomes of an item Leanpay holds that changed in the source (None:
        every such item is already present, unchecked). `finds`: re-proves, by id, what
        Leanpay is believed to hold before an item is skipped (None: beliefs stand).
        `date_zones`: learns the tenant's time zone from the dates each answer echoes."""
        self._updates = updates
        self._finds = finds
        self._date_zones = date_zones
        self._send = send
        self._checkpoints = checkpoints
        self._dead_letters = dead_letters
        self._progress = progress
        self._references = references
        self._promises = promises
        self._failed = failed
        self._stopping = stopping
        self._max_ambiguous_retries = max_ambiguous_retries
        self._no_answer_wait = no_answer_wait
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._started = time.monotonic()
        """When this run began: a listing that starts later sees what a dead run left."""
        self._streams_noted_present: set[str] = set()
        self._dry_run = dry_run

    def deliver(self, chunk: Chunk) -> None:
        """Send `chunk` until each item is settled; raise when the run must stop."""
        refused: list[_Refusal] = []  # bisection's finds, rejected once the chunk is done
        items = self._resolve(chunk) if chunk.resource.reference_fields else chunk.items
        items = self._doubts_of_a_dead_run(chunk, items)
        missing = self._sift(chunk, items)
        if missing:
            self._post(chunk, missing, refused, ambiguous_tries=0)
        self._reject_refusals(chunk, refused)
        self._progress.maybe_log()

    # -- one request and its outcome -------------------------------------------------

    def _post(
        self, chunk: Chunk, items: list[Pending], refused: list[_Refusal], *, ambiguous_tries: int
    ) -> None:
        def count_retry(_message: str) -> None:
            chunk.stats.add(retries=1)

        if self._failed.is_set():
            return  # another chunk failed: sending more would only delay the exit
        chunk.stats.add(requests=1)
        marked = [] if chunk.resource.listed_first else [p.external_id for p in items]
        try:
            with chunk.guard.posting():
                payloads = [p.wire for p in items]
                self._promises.mark_sending(chunk.resource.name, [e for e in marked if e])
                created = self._send(chunk.resource, payloads, on_retry=count_retry)
                if created:  # in the tenant index before a re-listing may start
                    chunk.guard.stored(created, as_sent(items))
        except ItemsRefused as refusal:
            self._promises.refused(chunk.resource.name, [e for e in marked if e])
            self._isolate(chunk, items, refusal, refused, ambiguous_tries=ambiguous_tries)
        except Ambiguous as unknown:
            self._after_ambiguous(chunk, items, unknown, refused, ambiguous_tries=ambiguous_tries)
        except ApiError as error:
            self._promises.refused(chunk.resource.name, [e for e in marked if e])
            raise type(error)(
                f"{chunk.describe(items)} failed: {error}", status=error.status, body=error.body
            ) from None
        else:
            self._confirm(chunk, items, created, refused, ambiguous_tries=ambiguous_tries)

    def _confirm(
        self,
        chunk: Chunk,
        items: list[Pending],
        created: list[Created] | None,
        refused: list[_Refusal],
        *,
        ambiguous_tries: int,
    ) -> None:
        """Settle what Leanpay's 2xx answer lists; the rest is not known to be stored."""
        ids = {c.externalId: c.id for c in created or () if c.externalId}
        tenant = next((c.tenantId for c in created or () if c.tenantId), None)
        if created is not None and len(created) >= len(items):
            self._settle(chunk, items, present=False, ids=ids, tenant=tenant)
            self._learn_dates(tenant, created, items)
            return
        confirmed = [p for p in items if p.external_id in ids]
        unconfirmed = [p for p in items if p.external_id not in ids]
        if confirmed:
            self._settle(chunk, confirmed, present=False, ids=ids, tenant=tenant)
            self._learn_dates(tenant, created or [], confirmed)
        said = "no readable list" if created is None else f"{len(created)} objects"
        unknown = Ambiguous(
            f"Leanpay answered 2xx, but its answer ({said}) does not confirm "
            f"{len(unconfirmed)} of the {len(items)} items sent",
            answered=True,
        )
        if not chunk.guard.checks_leanpay:
            raise ApiError(
                f"{chunk.describe(unconfirmed)}: {unknown}; with no list endpoint to check, "
                "they may or may not be stored. Check them in Leanpay; STATE stops before them."
            )
        self._after_ambiguous(chunk, unconfirmed, unknown, refused, ambiguous_tries=ambiguous_tries)

    def _learn_dates(
        self, tenant: str | None, created: list[Created], items: list[Pending]
    ) -> None:
        """The tenant's time zone, from the dates the answer echoes (date_zone.py); after
        their receipts are written, so that nothing it raises leaves them unwritten."""
        if self._date_zones is not None:
            self._date_zones.learn(tenant, created, as_sent(items))

    def _isolate(
        self,
        chunk: Chunk,
        items: list[Pending],
        refusal: ItemsRefused,
        refused: list[_Refusal],
        *,
        ambiguous_tries: int,
    ) -> None:
        """Reject the items the refusal names and send the rest; else bisect."""
        blamed = blamed_items(refusal.body, chunk.resource.body_key, len(items))
        if blamed:
            for index, problems in sorted(blamed.items()):
                self._refused(chunk, _Refusal(items[index], tuple(problems), refusal))
            rest = [item for index, item in enumerate(items) if index not in blamed]
            rest = self._kept_before_refusal(chunk, rest)
            if rest:
                self._post(chunk, rest, refused, ambiguous_tries=ambiguous_tries)
            return
        if len(items) == 1:
            problem = Problem("(item)", f"refused by Leanpay: {refusal.api_said}")
            refused.append(_Refusal(items[0], (problem,), refusal))
            return
        middle = len(items) // 2
        logger.info("%s refused without naming an item; bisecting", chunk.describe(items))
        kept = {id(p) for p in self._kept_before_refusal(chunk, items)}
        for half in (items[:middle], items[middle:]):
            to_send = [p for p in half if id(p) in kept]
            if to_send:
                self._post(chunk, to_send, refused, ambiguous_tries=ambiguous_tries)

    def _kept_before_refusal(self, chunk: Chunk, items: list[Pending]) -> list[Pending]:
        """A refusal is a belief too: nothing documents that a batch import is
        all-or-nothing, and one that checks a rule while inserting keeps what came before
        the refused item. Where Leanpay can be listed (invoices), a listing that starts
        now (a delta: a page or two) settles what it holds of the refused batch's other
        items before they are sent again; return the rest. Elsewhere they are sent again
        (README: what a partial refusal would do)."""
        guard = chunk.guard
        if not items or not chunk.resource.listed_first or not guard.checks_leanpay:
            return items
        try:
            guard.confirm_since(guard.now())
        except Stopped:
            raise ApiError(
                f"{chunk.describe(items)}: the run stopped before it could check which of "
                "a refused batch's items Leanpay kept"
            ) from None
        return self._sift(chunk, items, prove=False)

    def _after_ambiguous(
        self,
        chunk: Chunk,
        items: list[Pending],
        unknown: Ambiguous,
        refused: list[_Refusal],
        *,
        ambiguous_tries: int,
    ) -> None:
        """Leanpay may hold some of `items`: wait if it may still be working, check, and
        send only what is missing."""
        guard = chunk.guard
        ended = guard.now()
        if ambiguous_tries >= self._max_ambiguous_retries or self._stopping.is_set():
            raise Ambiguous(
                f"{chunk.describe(items)} failed: {unknown}",
                status=unknown.status,
                body=unknown.body,
            ) from None
        if chunk.resource.list_path is None:
            logger.warning(
                "%s: %s. %s cannot be listed to check: the %d items are set aside as "
                "rejected (not sent again, so never stored twice); check them in Leanpay",
                chunk.describe(items),
                unknown,
                chunk.resource.name,
                len(items),
            )
            reason = (
                f"Leanpay may have stored it: {unknown}; {chunk.resource.name} cannot be "
                "listed to check, and sending it again could store it twice. Check it in "
                "Leanpay and load it again only if it is missing"
            )
            self._set_aside(chunk, items, reason, unknown)
            return
        chunk.stats.add(retries=1)
        wait_seconds = self._wait_before_checking(unknown)
        logger.warning(
            "%s: %s. %s, then %s",
            chunk.describe(items),
            unknown,
            f"Waiting {wait_seconds:.1f} s" if wait_seconds else "Leanpay answered",
            "checking which items Leanpay holds before sending again"
            if guard.checks_leanpay
            else "sending again (replay_safety is off: nothing is checked, the batch may be "
            "stored twice)",
        )
        try:
            if guard.checks_leanpay:
                guard.confirm_since(ended + wait_seconds)
            else:
                guard.wait_until(ended + wait_seconds)
        except Stopped:
            raise Ambiguous(f"{chunk.describe(items)} failed: {unknown}") from None
        missing = self._sift(chunk, items, prove=False) if guard.checks_leanpay else items
        missing = self._cannot_tell(chunk, missing, unknown)
        unverifiable = [p.ident for p in missing if p.external_id is None]
        if guard.checks_leanpay and unverifiable:
            logger.warning(
                "%s: %d records without externalId are sent again and may be stored twice: %s",
                chunk.describe(items),
                len(unverifiable),
                ", ".join(unverifiable[:5]),
            )
        if missing and self._stopping.is_set():
            raise Ambiguous(f"{chunk.describe(missing)} failed: {unknown}") from None
        if missing:
            self._post(chunk, missing, refused, ambiguous_tries=ambiguous_tries + 1)

    def _set_aside(
        self, chunk: Chunk, items: list[Pending], reason: str, error: ApiError | None
    ) -> None:
        """Leanpay may hold these items and cannot be asked (no list endpoint): sending
        them again could store them twice, so they are rejected with why, for a human to
        check in Leanpay. Their twins and the references to them follow."""
        for item in items:
            twins = []
            if item.external_id is not None:
                twins = chunk.guard.twins.refused(item.external_id, uncertain=True)
            self._reject(item, (Problem("(item)", reason),), error)
            for twin in twins:
                because = f"shares externalId with {item.ident}, which Leanpay may hold"
                self._reject(twin, (Problem("externalId", because),), error)

    def _doubts_of_a_dead_run(self, chunk: Chunk, items: list[Pending]) -> list[Pending]:
        """Items an earlier run was sending when it died (marked on the wire, never
        acknowledged: `Promises.uncertain`). Leanpay may hold them. Where it can be asked
        (links, inside their invoices), one listing made after that run died settles it,
        through the sift that follows; elsewhere they are set aside, never sent twice."""
        doubted = self._promises.uncertain(chunk.resource.name)
        suspects = [p for p in items if p.external_id in doubted] if doubted else []
        if not suspects:
            return items
        if chunk.guard.checks_leanpay:
            try:
                chunk.guard.confirm_since(self._started)
            except Stopped:
                raise ApiError(
                    f"{chunk.describe(suspects)}: the run stopped before it could check "
                    "what Leanpay holds of them"
                ) from None
            told = {id(p) for p in self._cannot_tell(chunk, suspects, None)}
            set_aside = {id(p) for p in suspects} - told
            return [p for p in items if id(p) not in set_aside]
        reason = (
            "a run that stopped abruptly (kill -9, a crash) was sending it to Leanpay when it "
            f"died, so Leanpay may hold it; {chunk.resource.name} cannot be listed to check, "
            "and sending it again could store it twice. Check it in Leanpay; if it is "
            f"missing, {self._promises.release} and load it again"
        )
        logger.warning(
            "%s: %d records were on the wire when an earlier run died; set aside (README, "
            "Releasing an uncertain item)",
            chunk.describe(suspects),
            len(suspects),
        )
        self._set_aside(chunk, suspects, reason, None)
        return [p for p in items if p.external_id not in doubted]

    def _cannot_tell(
        self, chunk: Chunk, items: list[Pending], error: ApiError | None
    ) -> list[Pending]:
        """Of items a listing did not show, those it could not tell: objects listed inside
        rows (links in `creditNoteLinks`) whose row lacked the field. Absent is "cannot
        tell", never "none": they are set aside, never sent twice; return the others."""
        listing = chunk.guard.listing
        inside = chunk.resource.listed_inside
        if not isinstance(listing, Listing) or inside is None or not listing.blind:
            return items
        parent = next((f.name for f in chunk.resource.fields if f.refers_to == "invoices"), "")
        blind = [p for p in items if p.wire.get(parent) in listing.blind]
        if blind:
            reason = (
                f"Leanpay may hold it: the answer was lost, and its invoice's row in "
                f"GET {listing.path} has no {inside} field to tell; sending it again could "
                "store it twice. Check it in Leanpay and load it again only if it is missing"
            )
            logger.warning("%s: %d set aside: %s", chunk.describe(blind), len(blind), reason)
            self._set_aside(chunk, blind, reason, error)
        set_aside = {id(p) for p in blind}
        return [p for p in items if id(p) not in set_aside]

    def _wait_before_checking(self, unknown: Ambiguous) -> float:
        """How long Leanpay may still be working on the request: nothing once it answered."""
        if unknown.retry_after is not None:
            return min(unknown.retry_after, self._max_wait)
        return 0.0 if unknown.answered else self._no_answer_wait

    def _resolve(self, chunk: Chunk) -> list[Pending]:
        """Replace references by externalId with Leanpay ids; reject what cannot be."""
        ready = []
        for item in chunk.items:
            problems = []
            resolved: dict[str, str] = {}
            for name in chunk.resource.reference_fields:
                value = item.payload.get(name)
                if isinstance(value, Reference):
                    try:
                        resolved[name] = self._references.resolve(value)
                    except InvalidValue as unresolved:
                        problems.append(Problem(name, unresolved.reason))
            item.resolved = resolved or None
            if problems:
                item.stats.add(unresolved=1)
                self._reject_with_twins(chunk, _Refusal(item, tuple(problems), None))
            else:
                ready.append(item)
        return ready

    # -- settling --------------------------------------------------------------------

    def _sift(self, chunk: Chunk, items: list[Pending], *, prove: bool = True) -> list[Pending]:
        """Settle the items Leanpay already holds; return the ones still to send. An item
        repeating one this run sent, with other contents, is rejected (repeats.py).
        `prove`: what the index or the receipts say is re-proved first (finds.py); not
        after a listing made for these very items."""
        held = chunk.guard.held([p.external_id for p in items if p.external_id is not None])
        if prove and held and self._finds is not None:
            try:
                held -= self._finds.gone(chunk.resource, chunk.guard, sorted(held))
            except ApiError as error:
                raise type(error)(
                    f"{chunk.describe(items)}: could not check that Leanpay still holds the "
                    f"records it is believed to hold, so none is sent or skipped: {error}",
                    status=error.status,
                    body=error.body,
                ) from None
        if not held:
            return items
        changed = self._reject_changed_repeats(chunk, [p for p in items if p.external_id in held])
        present = [p for p in items if p.external_id in held and id(p) not in changed]
        if present and self._updates is not None:
            present = self._changed_in_source(chunk, present)
        if not present:
            return [p for p in items if p.external_id not in held]
        self._settle(chunk, present, present=True)
        self._note_present(chunk, present[0])
        return [p for p in items if p.external_id not in held]

    def _changed_in_source(self, chunk: Chunk, held: list[Pending]) -> list[Pending]:
        """Of the items Leanpay holds, those the source changed since are updated in place
        or reported (updates.py) and settled here; return the unchanged ones."""
        assert self._updates is not None
        # what this run created, updated or reported: repeats.py compared them already
        handled = chunk.guard.sent_earlier([p.external_id for p in held if p.external_id])
        repeats = [p for p in held if p.external_id in handled]
        done = self._updates.sort_out(
            chunk.resource, chunk.guard, [p for p in held if p.external_id not in handled]
        )
        if done.updated:
            self._settle(chunk, done.updated, present=True, counted="updated")
        if done.reported:
            self._settle(chunk, done.reported, present=True, counted="changed")
        for item, problems, error in done.refused:
            self._reject_with_twins(chunk, _Refusal(item, problems, error))
        return repeats + done.unchanged

    def _reject_changed_repeats(self, chunk: Chunk, repeats: list[Pending]) -> set[int]:
        """Of the items Leanpay holds, reject those repeating a record this run sent with
        other contents; return them (by `id`: they are settled here)."""
        sent = chunk.guard.sent_earlier([p.external_id for p in repeats if p.external_id])
        rejected: set[int] = set()
        for item in repeats if sent else ():
            kept = sent.get(item.external_id or "")
            if kept is None:
                continue
            first_ident, first_payload = recalled(kept, item.external_id or "")
            changed = changes.differences(chunk.resource, first_payload, as_data(item.payload))
            if changed:
                assert item.external_id is not None
                reason = repeat_reason(item.external_id, first_ident, changed)
                self._reject(item, (Problem("externalId", reason),), None)
                rejected.add(id(item))
        return rejected

    def _settle(
        self,
        chunk: Chunk,
        items: list[Pending],
        *,
        present: bool,
        ids: Mapping[str, str | None] | None = None,
        tenant: str | None = None,
        counted: str | None = None,
    ) -> None:
        """Leanpay holds these items (sent now, or before): settle them and their twins.

        `ids`: Leanpay's ids of what it just created, by externalId; their receipts are
        written (and made durable) before the checkpoint can move past them, with the
        fields sent (changes.py). `counted`: the counter of a present item, when not
        `already_present` (`updated`, `changed`: updates.py).
        """
        get = (ids or {}).get
        pairs = [(p.external_id, get(p.external_id)) for p in items if p.external_id]
        if not present:
            receipts = [(e, i) for e, i in pairs if i is not None]
            resource = chunk.resource
            fields = {p.external_id: changes.kept(resource, p.wire) for p in items if p.external_id}
            self._promises.record(chunk.stream, resource.name, receipts, tenant, fields)
        sent = None
        if not present or counted is not None:  # created or changed by this run: a later
            # repeat with other contents is rejected (repeats.py), an identical one is quiet
            sent = {p.external_id: remembered(p.line, p.payload) for p in items if p.external_id}
        twins = chunk.guard.acknowledged(pairs, sent)
        if present:  # a chunk's items are all of its stream; twins may be of another
            chunk.stats.add(**{counted or "already_present": len(items)})
        else:
            chunk.stats.add(acknowledged=len(items))
        seqs = [p.seq for p in items]
        if twins:
            _count(twins, "already_present")
            _count(twins, "repeated")
            seqs += [p.seq for p in twins]
        self._checkpoints.settle(seqs)

    def _note_present(self, chunk: Chunk, first: Pending) -> None:
        """Say once per stream that records Leanpay already holds are not sent again."""
        with self._lock:
            if chunk.stream in self._streams_noted_present:
                return
            self._streams_noted_present.add(chunk.stream)
        if self._dry_run:
            logger.info(
                "stream '%s': records repeating the externalId of an earlier record would not "
                "be sent again (first: %s)",
                chunk.stream,
                first.ident,
            )
            return
        logger.info(
            "stream '%s': records whose externalId Leanpay already holds are not sent again "
            "(first: %s); the summary counts them as already present",
            chunk.stream,
            first.ident,
        )

    def _reject_refusals(self, chunk: Chunk, refusals: list[_Refusal]) -> None:
        """Reject the items bisection isolated, unless Leanpay refused the request itself.

        Items the API named are rejected at once; these wait for the end of the chunk,
        because only then is it known whether *every* item was refused the same way.
        """
        bodies = {r.error.body for r in refusals if r.error is not None}
        error = refusals[0].error if refusals else None
        if (
            len(refusals) == len(chunk.items) > 1
            and len(bodies) == 1
            and error is not None
            and error.status != 409  # a conflict is about each item: it already exists
        ):
            raise ApiError(
                f"{chunk.describe()}: Leanpay refused every item of the batch, one by one, "
                f"with the same answer ({error.api_said}); that is a refusal of the request, "
                "not of the records",
                status=error.status,
                body=error.body,
            )
        for refusal in refusals:
            self._refused(chunk, refusal)

    def _refused(self, chunk: Chunk, refusal: _Refusal) -> None:
        """Reject what Leanpay refused; but a 409 (it exists) for an item the listing or
        the receipts show Leanpay holding is only a repeat: already present."""
        item = refusal.item
        if refusal.error is None or refusal.error.status != 409:
            self._reject_with_twins(chunk, refusal)
        elif item.external_id is not None and chunk.guard.held([item.external_id]):
            self._settle(chunk, [item], present=True)
        else:
            exists = tuple(
                Problem(p.field, f"Leanpay reports it already exists: {p.reason}")
                for p in refusal.problems
            )
            self._reject_with_twins(chunk, _Refusal(item, exists, refusal.error))

    def _reject_with_twins(self, chunk: Chunk, refusal: _Refusal) -> None:
        """Reject a refused item, and the records that waited on its externalId."""
        twins = []
        if refusal.item.external_id is not None:
            twins = chunk.guard.twins.refused(refusal.item.external_id)
        self._reject(refusal.item, refusal.problems, refusal.error)
        fate = "was rejected" if refusal.error is None else "Leanpay refused"
        for twin in twins:
            reason = f"shares externalId with {refusal.item.ident}, which {fate}"
            self._reject(twin, (Problem("externalId", reason),), refusal.error)

    def _reject(self, item: Pending, problems: tuple[Problem, ...], error: ApiError | None) -> None:
        self._dead_letters.reject(
            RejectedItem(
                stream=item.stream,
                ident=item.ident,
                record=item.record,
                payload=item.wire,
                problems=problems,
                http_status=None if error is None else error.status,
                api_message=None if error is None else error.body,
            )
        )
        item.stats.add(rejected=1)
        self._checkpoints.settle([item.seq])


def _count(items: Sequence[Pending], counter: str) -> None:
    """Add to each item's own stream counters (twins may belong to another stream)."""
    for stats, number in Counter(p.stats for p in items).items():
        stats.add(**{counter: number})
