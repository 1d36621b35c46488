"""Twins: records of one run that share an externalId, and the references that wait for
an object this run is sending.

The first record with an externalId *claims* it and is sent; a later one (a twin) waits
for its outcome and shares it (acknowledged: already present; refused or uncertain:
refused too), as does a reference to it. This holds replay safety on or off, and involves
no listing: its lock is never held while anything else is waited for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, Literal, TypeVar

from target_leanpay.leanpay.errors import Stopped

T = TypeVar("T")
Verdict = Literal["send", "parked"]
Fate = Literal["refused", "uncertain"]
POLL_SECONDS = 0.2
"""How often a thread waiting on a claim or a listing looks at the run's stop flag."""
_NO_TWINS: list[Any] = []
"""The twins of a claim that has none yet: one shared (and never filled) list."""


def _alike(_first: object, _later: object) -> bool:
    """Twins compared by nobody (the sink compares contents: repeats.py)."""
    return True


class Twins(Generic[T]):
    """The claims of one resource's externalIds in this run."""

    def __init__(self, name: str, *, stopping: threading.Event) -> None:
        self.name = name
        self._stopping = stopping
        self._lock = threading.Lock()  # taken per record: a plain lock is cheapest
        self._released = threading.Condition(self._lock)
        self._claims: dict[str, list[T]] = {}  # claimant's externalId -> waiting twins
        self._claimants: dict[str, T] = {}  # externalId -> the claimant, while on its way
        self._fates: dict[str, Fate] = {}  # refused, or sent with no way to check the answer

    def claim(
        self, external_id: str, item: T, same: Callable[[T, T], bool] = _alike
    ) -> Verdict | T:
        """`item` may be sent, unless an earlier twin is on its way: then it waits for its
        outcome, if it is the `same`; if it is not, that earlier twin is returned and
        `item` is not claimed (the caller rejects it: repeats.py)."""
        with self._lock:
            twins = self._claims.get(external_id)
            if twins is None:
                self._claims[external_id] = _NO_TWINS  # shared: no list per record
                self._claimants[external_id] = item
                return "send"
            first = self._claimants[external_id]
            if not same(first, item):
                return first
            if twins is _NO_TWINS:
                self._claims[external_id] = [item]
            else:
                twins.append(item)
            return "parked"

    def release(self, external_ids: Iterable[str]) -> list[T]:
        """These claims are settled (Leanpay holds them): return their waiting twins."""
        waiting: list[T] = []
        pop, pop_claimant = self._claims.pop, self._claimants.pop
        with self._lock:
            for external_id in external_ids:
                pop_claimant(external_id, None)
                twins = pop(external_id, None)
                if twins:
                    waiting += twins
            self._released.notify_all()
        return waiting

    def refused(self, external_id: str, *, uncertain: bool = False) -> list[T]:
        """The claimant was refused, or set aside as `uncertain`; return its twins."""
        with self._lock:
            if not uncertain or external_id not in self._fates:  # a refusal says most
                self._fates[external_id] = "uncertain" if uncertain else "refused"
        return self.release([external_id])

    def fate(self, external_id: str) -> Fate | None:
        """Whether the claimant of `external_id` was refused or set aside in this run."""
        with self._lock:
            return self._fates.get(external_id)

    def seen(self, external_id: str) -> bool:
        """Whether this run claimed `external_id` (on its way, refused or uncertain)."""
        with self._lock:
            return external_id in self._claims or external_id in self._fates

    def wait_settled(self, external_id: str) -> None:
        """Return once no claim of `external_id` is on its way; Stopped if the run stops."""
        with self._released:
            while external_id in self._claims:
                if self._stopping.is_set():
                    raise Stopped(f"the run is stopping: {self.name} not resolved")
                self._released.wait(POLL_SECONDS)
