"""The data the sinks and delivery hand each other: a record on its way (`Pending`) and
a request's worth of them (`Chunk`). Plain data, no behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from target_leanpay.leanpay.errors import quote
from target_leanpay.output.progress import StreamStats
from target_leanpay.records.resources import Resource

if TYPE_CHECKING:
    from target_leanpay.listings.replay import ReplayGuard


def identify(record: Mapping[str, Any], key_properties: Sequence[str], line: int) -> str:
    """How a human finds a record again: externalId, else its key, else its line."""
    external_id = record.get("externalId", record.get("external_id"))
    if external_id not in (None, ""):
        return f"externalId {quote(str(external_id), 80)!r} (input line {line})"
    keys = ", ".join(f"{k}={quote(str(record.get(k)), 40)}" for k in key_properties)
    return f"{keys} (input line {line})" if keys else f"at input line {line}"


@dataclass(slots=True)
class Pending:
    """A mapped record waiting for Leanpay's answer."""

    seq: int
    record: dict[str, Any]
    payload: dict[str, Any]
    external_id: str | None
    line: int
    key_properties: Sequence[str]
    stream: str
    stats: StreamStats
    resolved: dict[str, str] | None = None
    """Leanpay ids found for the payload's references (`Reference`), which stay as read."""

    @property
    def wire(self) -> dict[str, Any]:
        """The item as sent: the payload with its references resolved."""
        return self.payload if self.resolved is None else {**self.payload, **self.resolved}

    @property
    def ident(self) -> str:
        """Built only when a message needs it: most records never do."""
        return identify(self.record, self.key_properties, self.line)


@dataclass(slots=True)
class Chunk:
    """Up to 100 items of one stream, bound for one resource."""

    stream: str
    resource: Resource
    items: list[Pending]
    stats: StreamStats
    guard: ReplayGuard[Pending]

    def describe(self, items: Sequence[Pending] | None = None) -> str:
        """Name the stream and the batch's first and last record."""
        items = self.items if items is None else items
        first, last = items[0].ident, items[-1].ident
        span = first if len(items) == 1 else f"{first} … {last}"
        return f"stream '{self.stream}', batch of {len(items)} {self.resource.name} ({span})"


def as_sent(items: Sequence[Pending]) -> dict[str, dict[str, Any]]:
    """The items as sent, by externalId (what the objects of an answer are matched with)."""
    return {p.external_id: p.wire for p in items if p.external_id}
