"""Everything one stand-in instance knows, shared by the WSGI app and the Python API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from leanpay_standin.faults import FaultBook
from leanpay_standin.journal import Journal
from leanpay_standin.store import DUPLICATE_MODES, DuplicateMode, Store


@dataclass
class Settings:
    """Server-wide behaviour, changeable while running."""

    duplicates: DuplicateMode = "accept"
    """What a batch repeating a stored externalId gets (see `store`)."""
    latency_ms: float = 0
    """Every API answer leaves this long after its request arrived (processing included)."""
    page_size: int = 25
    """Objects per page of `GET /invoices`; Leanpay's is undocumented, so not 100."""
    log_bodies: bool = True
    """Keep request bodies in the journal; turn off for multi-million-item benchmarks."""

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply changes after checking all of them; ValueError names the bad one."""
        unknown = set(changes) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        checked = dict(asdict(self))
        checked.update(changes)
        if checked["duplicates"] not in DUPLICATE_MODES:
            raise ValueError(f"duplicates must be one of {', '.join(DUPLICATE_MODES)}")
        latency = checked["latency_ms"]
        if type(latency) not in (int, float) or latency < 0:
            raise ValueError("latency_ms must be a number >= 0")
        page_size = checked["page_size"]
        if type(page_size) is not int or page_size < 1:
            raise ValueError("page_size must be a positive integer")
        if type(checked["log_bodies"]) is not bool:
            raise ValueError("log_bodies must be a boolean")
        self.duplicates = cast(DuplicateMode, checked["duplicates"])
        self.latency_ms = latency
        self.page_size = page_size
        self.log_bodies = checked["log_bodies"]

    def as_json(self) -> dict[str, Any]:
        """The settings as a JSON object."""
        return asdict(self)


@dataclass
class State:
    """The stand-in's data and behaviour."""

    api_key: str
    settings: Settings = field(default_factory=Settings)
    store: Store = field(default_factory=Store)
    faults: FaultBook = field(default_factory=FaultBook)
    journal: Journal = field(default_factory=Journal)

    def reset(self) -> None:
        """Back to empty: no objects, no requests, no faults (settings are kept)."""
        self.store.clear()
        self.journal.clear()
        self.faults.clear()
