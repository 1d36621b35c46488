"""LeanpaySink: one per stream; maps records as they arrive and hands full chunks on.

A record is mapped and validated the moment it is read, so a bad one is reported with
its line number and never enters a request. Good ones are buffered until the request
size (<= 100) is reached, then handed to a sending thread, which delivers them while
reading goes on. The SDK's `process_batch` (end of input, schema change, the SDK's
periodic drain) only flushes the partial chunk: acknowledgement and STATE are the
delivery's and the checkpoints' business, never the SDK's. A link or payback naming an
invoice or credit note not read yet is parked until it is (parking.py), then buffered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks import BatchSink

from target_leanpay.leanpay.errors import InputError, quote
from target_leanpay.output.deadletter import RejectedItem
from target_leanpay.records.mapping import Problem, RecordMapper, Reference, Rejection
from target_leanpay.records.resources import RESOURCES
from target_leanpay.sending.items import Chunk, Pending, identify
from target_leanpay.sending.parking import Document
from target_leanpay.sending.repeats import repeat_reason
from target_leanpay.store.changes import differences

if TYPE_CHECKING:
    from target_leanpay.target import TargetLeanpay


class LeanpaySink(BatchSink):
    """Maps one stream's records to one Leanpay resource and feeds the sending threads."""

    def __init__(
        self,
        target: TargetLeanpay,
        stream_name: str,
        schema: dict[str, Any],
        key_properties: Sequence[str] | None,
    ) -> None:
        self.run = target.run
        super().__init__(target, stream_name, schema, key_properties)
        self.resource = self.run.settings.resource_for(stream_name)
        self.mapper = RecordMapper(self.resource, self.run.settings.mapping)
        self.stats = self.run.progress.stats_for(stream_name, self.resource.name)
        self.guard = self.run.guards.for_resource(self.resource)
        self._buffer: list[Pending] = []
        self.buffered_since = 0.0
        """When the oldest buffered record was read (`time.monotonic`)."""
        self.key_properties_tuple = tuple(self.key_properties)
        self.key_property_set = frozenset(self.key_properties_tuple)
        self._request_size = self.run.settings.request_size  # read per record: cached
        self._records_since_state = 0
        self._metered = 0  # records already reported to the SDK's record_count metric
        self._referred = frozenset(
            f.refers_to for f in self.resource.fields if f.refers_to is not None
        )
        self._flush_streams_of = target.flush_streams_of
        # bound once: process_record runs for every record
        self._reader = self.run.reader
        self._map = self.mapper.map
        self._open_seq = self.run.checkpoints.open
        self._claim = self.guard.twins.claim
        self._parking = self.run.parking
        self._parking.register(stream_name, self.take)
        self._referable = self.resource.name in REFERABLE

    @property
    def validate_schema(self) -> bool:
        """Only when the user asks: Leanpay's own rules are always checked by the mapper."""
        return self.run.settings.validate_records

    @property
    def max_size(self) -> int:
        """The request size: batch_size_rows, never more than Leanpay's 100."""
        return self._request_size

    @property
    def current_size(self) -> int:
        """Items buffered for the next request."""
        return len(self._buffer)

    def process_record(self, record: dict[str, Any], context: dict[str, Any]) -> None:
        """Map, check and buffer one record (`context` is unused: chunks are ours)."""
        line = self._reader.line_number
        self.stats.read += 1
        self._records_since_state += 1
        if self._validator is not None:
            try:
                self._validator.validate(record)
            except InvalidRecord as invalid:
                raise InputError(
                    f"Input line {line}: stream '{self.stream_name}': the record does not "
                    f"match the tap's own schema: {quote(str(invalid.error_message))}"
                ) from None
        result = self._map(record)
        if isinstance(result, Rejection):
            ident = identify(record, self.key_properties_tuple, line)
            self.run.dead_letters.reject(
                RejectedItem(self.stream_name, ident, record, None, result.problems)
            )
            self.stats.add(rejected=1)
            return
        waits = self._unread_documents(result) if self._referred else None
        external_id = result.get("externalId")
        pending = Pending(
            self._open_seq(),
            record,
            result,
            external_id,
            line,
            self.key_properties_tuple,
            self.stream_name,
            self.stats,
        )
        if waits:  # claimed once released: a claim holds its record in memory
            self._parking.park(pending, waits)
            return
        if not self.take(pending):
            return
        if self._referable and external_id is not None and self._parking.count:
            self._parking.arrived(self.resource.name, external_id)

    def take(self, pending: Pending) -> bool:
        """Claim the record's externalId and buffer it (read now, or released by the
        parking); False when it is not buffered (a twin waits for the first record, or
        repeats it with other contents and is rejected)."""
        if pending.external_id is not None:
            verdict = self._claim(pending.external_id, pending, self._same_contents)
            if verdict == "parked":
                return False  # settled with its twin, sent earlier in this run
            if isinstance(verdict, Pending):
                self._reject_repeat(pending, verdict)
                return False
        if not self._buffer:
            self.buffered_since = time.monotonic()
        self._buffer.append(pending)
        if len(self._buffer) >= self._request_size:
            self.flush()
        return True

    def _reject_repeat(self, later: Pending, first: Pending) -> None:
        """A record repeating the externalId of one on its way, with other contents."""
        assert later.external_id is not None
        reason = repeat_reason(
            later.external_id,
            first.ident,
            differences(self.resource, first.payload, later.payload),
        )
        self.run.dead_letters.reject(
            RejectedItem(
                self.stream_name,
                later.ident,
                later.record,
                later.payload,
                (Problem("externalId", reason),),
            )
        )
        self.stats.add(rejected=1)
        self.run.checkpoints.settle([later.seq])

    def _same_contents(self, first: Pending, later: Pending) -> bool:
        """Twins share a fate only when they say the same (repeats.py): identical
        payloads at once, else as changes compare (`changes.differences`)."""
        return first.payload == later.payload or not differences(
            self.resource, first.payload, later.payload
        )

    def _unread_documents(self, payload: dict[str, Any]) -> list[Document]:
        """The documents a record names by externalId that this run has not read and
        Leanpay is not known to hold: it is parked until they are read, or the input ends
        (parking.py). A reference may wait only for a document read before it."""
        unread = []
        for name in self.resource.reference_fields:
            value = payload.get(name)
            if not isinstance(value, Reference):
                continue
            guard = self.run.guards.for_resource(RESOURCES[value.resource])
            if not guard.read_before(value.external_id):
                unread.append((value.resource, value.external_id))
        return unread

    def state_received(self) -> None:
        """A STATE arrived: a stream that has gone quiet sends its partial chunk now.

        Otherwise its last records would hold every later checkpoint back until the end
        of input (or the SDK's 5-minute drain) while other streams keep loading.
        """
        if self._referred and self._parking.in_memory:
            self._parking.recheck()  # documents a listing has shown since
        if self._records_since_state == 0:
            self.flush()
        self._records_since_state = 0

    def flush(self) -> None:
        """Hand the buffered items to a sending thread as one request.

        Links and paybacks may refer to invoices and credit notes read before them, whose
        Leanpay ids only their acknowledgement brings: those streams' buffers go first,
        so the objects are on their way before anything waits for them.
        """
        self._meter()
        if not self._buffer:
            return
        if self._referred:
            self._flush_streams_of(self._referred)
        chunk = Chunk(self.stream_name, self.resource, self._buffer, self.stats, self.guard)
        self._buffer = []
        self.run.pool.submit(partial(self.run.delivery.deliver, chunk))

    def process_batch(self, context: dict[str, Any]) -> None:
        """SDK drain (end of input, schema change, periodic): send the partial chunk."""
        self.flush()

    def clean_up(self) -> None:
        """Report the last records to the SDK's metric before it logs the count."""
        self._meter()
        super().clean_up()

    def _meter(self) -> None:
        """Feed the SDK's record_count metric per chunk rather than per record."""
        self.record_counter_metric.increment(self.stats.read - self._metered)
        self._metered = self.stats.read


REFERABLE = frozenset(f.refers_to for r in RESOURCES.values() for f in r.fields if f.refers_to)
"""The resources a record may name by externalId (invoices, credit notes)."""
