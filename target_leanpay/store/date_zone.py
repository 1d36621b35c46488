"""Date zone: which calendar day a date Leanpay echoes as a date-time names.

Leanpay takes invoice and credit-note dates (issueDate, dueDate, sentDate) as days and
echoes them as date-times, in a zone nothing documents: a tenant that stores a day as
midnight in Paris echoes `2024-03-05` as `2024-03-04T23:00:00Z` (22:00 in summer). So an
echoed instant names the day it falls on in the tenant's time zone (a zone, not an offset:
summer time moves it).

The zone is learned from what this target sent: every acknowledged batch answer echoes
the dates of the items it lists, and the zone is the first (`choose`) whose midnight of
each day sent is its echo: the zone already kept, else `PREFERRED`, else any other. It is
kept as a fact of the tenant in the store (`FACT`), so that a run that sends nothing still
knows it; an answer that contradicts the kept zone is logged once and the fact replaced.

Until a zone is known, a held instant that UTC or Europe/Paris would put on the day sent
"cannot tell": it is not a change.
"""

from __future__ import annotations

import functools
import logging
import operator
import re
import threading
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from target_leanpay.leanpay.client import Created
from target_leanpay.store.store import Facts, TenantKey

logger = logging.getLogger("target-leanpay")

FACT = "date_zone"
"""The name of the store's fact holding a tenant's zone."""

PREFERRED = ("UTC", "Europe/Paris")
"""Tried first, in this order; also what "cannot tell" allows before a zone is known."""

ECHOED = ("issueDate", "dueDate", "sentDate")
"""The fields a batch answer echoes as date-times (client.Created)."""

_echoed = operator.attrgetter(*ECHOED)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ZULU = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.0+)?Z$")


def compared(value: str) -> str:
    """A date as it compares (changes.kept): the day of a date, of a date-time without an
    offset, or of a UTC midnight; else its instant in UTC (`2024-03-04T23:00:00Z`), whose
    day only a zone names. A value that is no date is left as it is. Run for every date
    of every listed row: the form Leanpay echoes (`...T23:00:00.000Z`) is read without
    building a datetime."""
    zulu = _ZULU.match(value)
    if zulu is None:
        return _compared(value)
    day, clock = zulu.groups()
    return day if clock == "00:00:00" else f"{day}T{clock}Z"


@functools.lru_cache(maxsize=4096)
def _compared(value: str) -> str:
    """`compared`, for any other form."""
    text = value.strip()
    if _DAY.match(text):
        return text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.date().isoformat()
    moment = moment.astimezone(UTC)
    if moment.time() == time():
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{moment.microsecond:06d}Z" if moment.microsecond else "Z"
    )


def is_instant(value: object) -> bool:
    """Whether a `compared` value is an instant (its day depends on a zone)."""
    return isinstance(value, str) and len(value) > 10 and value.endswith("Z")


@functools.lru_cache(maxsize=65536)
def day_in(instant: str, zone: str) -> str:
    """The day a `compared` instant falls on in `zone`."""
    moment = datetime.fromisoformat(instant).astimezone(zoneinfo.ZoneInfo(zone))
    return moment.date().isoformat()


def same_day(held: object, sent: object, zone: str | None) -> bool:
    """Whether `held` (an instant Leanpay echoed) names the day `sent`: in `zone`, or,
    while none is known, in any of `PREFERRED` ("cannot tell" is not a change)."""
    if not is_instant(held) or not isinstance(sent, str):
        return False
    assert isinstance(held, str)
    return any(day_in(held, z) == sent for z in ((zone,) if zone else PREFERRED))


def shown(held: object, zone: str | None) -> object:
    """A held date as a change shows it: its day once the zone is known."""
    return day_in(held, zone) if zone and isinstance(held, str) and is_instant(held) else held


@functools.lru_cache(maxsize=65536)
def _midnight(day: str, zone: str) -> str:
    """The `compared` form of `day`'s midnight in `zone`."""
    moment = datetime.combine(date.fromisoformat(day), time(), zoneinfo.ZoneInfo(zone))
    return compared(moment.isoformat())


@functools.cache
def candidates() -> tuple[str, ...]:
    """Every zone tried, in order: `PREFERRED`, then the rest zoneinfo knows, sorted."""
    rest = sorted(zoneinfo.available_timezones() - set(PREFERRED))
    return PREFERRED + tuple(rest)


def explains(zone: str, echoes: Iterable[tuple[str, str]]) -> bool:
    """Whether each (day sent, `compared` echo) is that day's midnight in `zone`."""
    return all(_midnight(day, zone) == echo for day, echo in echoes)


def choose(echoes: Sequence[tuple[str, str]], kept: str | None) -> str | None:
    """The zone these echoes show (module docstring): `kept` while it explains them,
    else the first candidate that does; None if they teach nothing."""
    if not echoes:
        return kept
    if kept is not None and explains(kept, echoes):
        return kept
    return next((zone for zone in candidates() if explains(zone, echoes)), None)


def echoes_of(
    created: Sequence[Created], sent: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """(day sent, `compared` echo) of each date a batch answer echoes, matched with what
    was `sent` by externalId; only date-times with an offset show a zone. Run for every
    acknowledged batch: the pairs are gathered as they come, and each distinct one read once."""
    pairs = set()
    for obj in created:
        wire = sent.get(obj.externalId or "")
        if wire is None:
            continue
        for name, echo in zip(ECHOED, _echoed(obj), strict=True):
            if isinstance(echo, str) and isinstance(day := wire.get(name), str):
                pairs.add((day, echo))
    return sorted({found for day, echo in pairs if (found := _echo(day, echo)) is not None})


@functools.lru_cache(maxsize=4096)
def _echo(day: str, echo: str) -> tuple[str, str] | None:
    """(day, `compared` echo) when `day` is a day and `echo` a date-time with an offset;
    None for anything else (a day, a date-time without an offset: they show no zone)."""
    if not _DAY.match(day) or _DAY.match(echo.strip()):
        return None
    try:
        aware = datetime.fromisoformat(echo.strip()).tzinfo is not None
    except ValueError:
        return None
    return (day, compared(echo)) if aware else None


class DateZones:
    """The zone of the tenant this run loads: read from the store's fact, learned from
    batch answers (and kept there). Thread-safe: sending threads learn, compare."""

    def __init__(
        self,
        facts: Facts | None,
        api_url: str,
        tenant: Callable[[], str | None],
        *,
        writes: bool = True,
    ) -> None:
        """`tenant`: the tenant this run loads once a listing names it; `writes` False (a
        plan): a zone learned is not kept."""
        self._facts = facts
        self._api_url = api_url
        self._tenant = tenant
        self._writes = writes
        self._zones: dict[str | None, str | None] = {}
        self._lock = threading.Lock()

    def zone(self, tenant: str | None = None) -> str | None:
        """The zone of `tenant` (else of the tenant this run loads); None: not known."""
        tenant = tenant or self._tenant()
        with self._lock:
            return self._own(tenant) or self._zones.get(None)

    def _own(self, tenant: str | None) -> str | None:
        """The zone of `tenant` alone (read from its fact once); under `_lock`."""
        if tenant not in self._zones:
            known = None
            if tenant is not None and self._facts is not None:
                known = self._facts.fact(TenantKey.of(self._api_url, tenant), FACT)
            self._zones[tenant] = known
        return self._zones[tenant]

    def learn(
        self, tenant: str | None, created: Sequence[Created], sent: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Learn from one acknowledged batch answer (`sent`: the items by externalId); keep
        what changed as a fact."""
        echoes = echoes_of(created, sent)
        if not echoes:
            return
        tenant = tenant or self._tenant()
        with self._lock:  # a few zones checked at most once one is kept
            kept = self._own(tenant)
            chosen = choose(echoes, kept)
            if chosen is None or chosen == kept:
                return
            self._zones[tenant] = chosen
            self._zones.setdefault(None, chosen)  # for a run whose listing named no tenant
        if kept is not None:
            day, echo = next(e for e in echoes if not explains(kept, [e]))
            logger.warning(
                "Leanpay echoed %s as %s, which is not midnight in %s, the time zone learned "
                "for its dates so far: its dates are now read in %s",
                day,
                echo,
                kept,
                chosen,
            )
        if tenant is not None and self._facts is not None and self._writes:
            self._facts.keep_fact(TenantKey.of(self._api_url, tenant), FACT, chosen)
