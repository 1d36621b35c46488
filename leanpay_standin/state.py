"""Everything one stand-in instance knows, shared by the WSGI app and the Python API."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leanpay_standin.api import BATCHES
from leanpay_standin.clock import RESOLUTIONS, Resolution
from leanpay_standin.faults import FaultBook
from leanpay_standin.journal import Journal
from leanpay_standin.ratelimit import TokenBucket, effective_burst
from leanpay_standin.store import DUPLICATE_MODES, LIST_ORDERS, DuplicateMode, ListOrder, Store
from leanpay_standin.validation import check_body, schema_for

_LATE_SCHEMA = schema_for(BATCHES["invoices"])


def _is_zone(name: object) -> bool:
    if not isinstance(name, str):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass
class Settings:
    """Server-wide behaviour, changeable while running."""

    duplicates: DuplicateMode = "accept"
    """What a batch repeating a stored externalId gets (see `store`)."""
    latency_ms: float = 0
    """Every API answer leaves this long after its request arrived (processing included)."""
    page_size: int = 25
    """Objects per page of `GET /invoices`; Leanpay's is undocumented, so not 100."""
    order: ListOrder = "oldest"
    """The order of `GET /invoices` (undocumented in Leanpay): "oldest" first (creation
    order, the default), "newest" first, or "id" (Leanpay id, unrelated to time)."""
    log_bodies: bool = True
    """Keep request bodies in the journal; turn off for multi-million-item benchmarks."""
    rate_limit: float | None = None
    """Authenticated API requests per second (a token bucket); 0 or None: no limit."""
    rate_burst: float | None = None
    """Bucket capacity in requests (>= 1); None: one second's worth, max(1, rate_limit)."""
    created_at: Resolution = "millisecond"
    """The resolution of `createdAt` (see `clock`): "millisecond", strictly increasing
    (creation order, the default), or "second", shared by the batches of one second and
    listed by id within it."""
    date_zone: str | None = None
    """The zone the tenant stores dates in (e.g. "Europe/Paris"): invoice and credit-note
    dates are echoed as the UTC instant of that day's midnight there. None: as midnight
    UTC, "2024-03-05T00:00:00.000Z"."""
    omit_fields: list[str] = field(default_factory=list)
    """Fields left out of list rows and find answers (e.g. ["creditNoteLinks"]): the
    reference documents them, an answer may still lack them (batch answers keep them)."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # not a field: as_json stays the settings only

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply changes after checking all of them; ValueError names the bad one."""
        with self._lock:
            self._update(changes)

    def _update(self, changes: Mapping[str, Any]) -> None:
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        checked = dict(asdict(self))
        checked.update(changes)
        if checked["duplicates"] not in DUPLICATE_MODES:
            raise ValueError(f"duplicates must be one of {', '.join(DUPLICATE_MODES)}")
        latency = checked["latency_ms"]
        if type(latency) not in (int, float) or not 0 <= latency < math.inf:
            raise ValueError("latency_ms must be a number >= 0")
        page_size = checked["page_size"]
        if type(page_size) is not int or page_size < 1:
            raise ValueError("page_size must be a positive integer")
        if checked["order"] not in LIST_ORDERS:
            raise ValueError(f"order must be one of {', '.join(LIST_ORDERS)}")
        if type(checked["log_bodies"]) is not bool:
            raise ValueError("log_bodies must be a boolean")
        rate, burst = checked["rate_limit"], checked["rate_burst"]
        if rate is not None and (type(rate) not in (int, float) or not 0 <= rate < math.inf):
            raise ValueError("rate_limit must be a number >= 0 (requests per second) or null")
        if burst is not None and (type(burst) not in (int, float) or not 1 <= burst < math.inf):
            raise ValueError("rate_burst must be a number >= 1 (requests) or null")
        if checked["created_at"] not in RESOLUTIONS:
            raise ValueError(f"created_at must be one of {', '.join(RESOLUTIONS)}")
        zone = checked["date_zone"]
        if zone is not None and not _is_zone(zone):
            raise ValueError("date_zone must be an IANA time zone (e.g. Europe/Paris) or null")
        omit = checked["omit_fields"]
        if not (isinstance(omit, list | tuple) and all(isinstance(name, str) for name in omit)):
            raise ValueError("omit_fields must be a list of field names")
        self.duplicates = cast(DuplicateMode, checked["duplicates"])
        self.latency_ms = latency
        self.page_size = page_size
        self.order = cast(ListOrder, checked["order"])
        self.log_bodies = checked["log_bodies"]
        self.rate_limit = rate
        self.rate_burst = burst
        self.created_at = cast(Resolution, checked["created_at"])
        self.date_zone = zone
        self.omit_fields = list(omit)

    def rate(self) -> tuple[float, float] | None:
        """(requests per second, bucket capacity) when rate limiting is on, else None."""
        with self._lock:  # never a new rate with the old burst
            rate, burst = self.rate_limit, self.rate_burst
        return None if not rate else (rate, effective_burst(rate, burst))

    def as_json(self) -> dict[str, Any]:
        """The settings as a JSON object."""
        with self._lock:
            return asdict(self)


@dataclass
class State:
    """The stand-in's data and behaviour."""

    api_key: str
    settings: Settings = field(default_factory=Settings)
    store: Store = field(init=False)
    faults: FaultBook = field(default_factory=FaultBook)
    journal: Journal = field(default_factory=Journal)
    bucket: TokenBucket = field(default_factory=TokenBucket)
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set while the server stops: every wait of a request (latency, a delay rule) ends at
    once, so that stopping never waits out a delay a test asked for (`StandIn.stop`)."""

    def __post_init__(self) -> None:
        self.store = Store(self.settings)

    def delete(
        self, resource_name: str, ids: Collection[str] = (), external_ids: Collection[str] = ()
    ) -> int:
        """Delete objects as someone did in Leanpay's UI; journaled; return how many.

        ValueError (nothing deleted) for an unknown resource, id or externalId, or when
        neither is named: a test's typo must not pass for a deletion.
        """
        if resource_name not in self.store.resources:
            raise ValueError(f"unknown resource {resource_name!r}")
        if not ids and not external_ids:
            raise ValueError("name the ids and/or externalIds to delete")
        gone = self.store[resource_name].delete(ids, external_ids)
        self.journal.note_deletion(
            resource_name, [i for i, _ in gone], [e for _, e in gone], time.monotonic()
        )
        return len(gone)

    def empty_tenant(self) -> int:
        """Empty every resource, as someone did to the tenant in Leanpay; journaled;
        return how many objects went. Everything else stays: the tenant id, the clock,
        the journal, the fault rules, the settings."""
        emptied = self.store.empty()
        self.journal.note_emptying(emptied, time.monotonic())
        return sum(emptied.values())

    def store_late(self, items: Sequence[Any]) -> list[dict[str, Any]]:
        """Store invoices, validated as a batch, that `GET /invoices` (and its total)
        will not show until `reveal_late`; their createdAt is now. Journaled; return them
        as the writer's answer shows them. ValueError (nothing stored) if one is invalid."""
        checked, problems = check_body(_LATE_SCHEMA, {"invoices": list(items)})
        if problems:
            raise ValueError("; ".join(problems))
        shown = self.store["invoices"].add_late(checked)
        ids = [obj["id"] for obj in shown]
        self.journal.note_late(
            "/_control/late", ids, [obj["externalId"] for obj in shown], time.monotonic()
        )
        return shown

    def reveal_late(self) -> int:
        """Make every late invoice visible (journaled); return how many."""
        revealed = self.store["invoices"].reveal()
        self.journal.note_late(
            "/_control/reveal", [i for i, _ in revealed], [e for _, e in revealed], time.monotonic()
        )
        return len(revealed)

    def reset(self) -> None:
        """Back to empty: no objects, no requests, no faults, a full rate-limit bucket.

        Settings are kept.
        """
        self.store.clear()
        self.journal.clear()
        self.faults.clear()
        self.bucket.refill()
