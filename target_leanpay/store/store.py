"""The store: everything target-leanpay remembers about Leanpay between runs.

It keeps two kinds of things, and the line between them is the point of this module:

* a **CACHE** of what Leanpay holds (`InvoiceCache`): one tenant's invoices (Leanpay id,
  externalId, `createdAt`, the compared fields) and the watermark of the last verified
  listing. Leanpay is the truth; the cache only saves reading pages. It may lose its last
  writes (a crash), and a cache that is missing, foreign, of another version or damaged
  (any value a run reads and cannot decode or trust: `CacheDamaged`) is rebuilt from a
  listing: it costs pages, never a wrong answer or a traceback;
* **PROMISES** (`Promises`, and `Store.fact`): what only this target knows and Leanpay
  cannot be asked for: the objects it created (receipts: Leanpay id and the fields sent,
  for every resource: credit notes cannot be listed at all), the sending marks written
  before a POST of a resource that cannot be listed (lifted on refusal), and a few facts
  about a tenant (its date zone, for instance). A promise is durable before the STATE
  that covers it, and is never dropped nor rebuilt: a damaged one stops the run with one
  line naming where it lives (`PromisesDamaged`), exit non-zero, no STATE.

Plus the **tenant lock** (`TenantLock`): one run per tenant at a time, taken per
(`TenantKey`), waited for (said once), released when its process dies.

A tenant is its API host written one way (`host_of`: lower case, the scheme's default
port dropped: `api.leanpay.fr` and `api.leanpay.fr:443` are one key) and its `tenantId`
(`TenantKey`). One tenant's rows are never read for another.

`Store` is the one entry point; a folder of SQLite files is its first implementation
(`folder_store.py`), PostgreSQL the second. Callers see only these types.
"""

from __future__ import annotations

import abc
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import msgspec

from target_leanpay.leanpay.errors import Stopped, TargetLeanpayError

SEVERAL = "*"
"""The Leanpay id of an externalId that several Leanpay objects carry: none can be chosen."""

LOCK_POLL_SECONDS = 0.2
"""How often a run waiting for a tenant's lock tries it again (and looks at its stop flag)."""

_lock_logger = logging.getLogger("target-leanpay.replay")
_DEFAULT_PORTS = {"https": 443, "http": 80}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def host_of(api_url: str) -> str:
    """The API host written one way: lower case, with its port only when it is not the
    scheme's default (`https://API.leanpay.fr:443/v1` -> `api.leanpay.fr`)."""
    parts = urlsplit(api_url)
    host = (parts.hostname or "unknown-host").lower()
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    return host


@dataclass(frozen=True, slots=True)
class TenantKey:
    """One Leanpay tenant: `host_of` its API URL, and its `tenantId`."""

    host: str
    tenant_id: str

    @classmethod
    def of(cls, api_url: str, tenant_id: str) -> TenantKey:
        """The key of `tenant_id` reached through `api_url`."""
        return cls(host_of(api_url), tenant_id)

    @property
    def stem(self) -> str:
        """`<host>-<tenantId>`, safe in a file name (a port as `_443`)."""
        return f"{safe_name(self.host)}-{safe_name(self.tenant_id)}"


def safe_name(name: str) -> str:
    """`name` (a `host_of` value, a tenantId) safe in a file name: `127.0.0.1:8042` ->
    `127.0.0.1_8042`."""
    return _UNSAFE.sub("_", name)


# -- the CACHE --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One object as listed or acknowledged: the one row type of the store and of the
    listings (the cache holds invoices, each with its Leanpay id)."""

    leanpay_id: str | None
    """None: an object listed inside another, which has no id of its own (a link)."""
    external_id: str | None
    created_at: int | None
    """`createdAt` in microseconds since the epoch (None: absent or unreadable)."""
    tenant_id: str | None = None
    contents: bytes | None = None
    """The compared fields (`changes.kept`, `changes.encode`d); None: unknown."""


@dataclass(frozen=True, slots=True)
class Watermark:
    """What the last verified listing established (`complete` False: none did)."""

    complete: bool
    newest: int | None
    """The newest `createdAt` that listing saw (None: the tenant was empty)."""
    total: int
    order: str | None
    """"newest" or "oldest" first, as seen; None when it could not be told."""


NO_WATERMARK = Watermark(False, None, 0, None)


class Found(NamedTuple):
    """What the cache holds for one externalId."""

    leanpay_id: str
    """SEVERAL when more than one invoice carries the externalId."""
    contents: bytes | None
    """The compared fields (`changes.encode`d, already checked to decode); None: unknown."""


class CacheDamaged(Exception):
    """A value of the cache cannot be decoded or trusted: the cache is not used (the
    caller lists, and the listing rebuilds it)."""


_decode_contents = msgspec.json.Decoder(dict[str, object]).decode


def found_in(rows: Iterable[tuple[str, str, object]], where: str) -> dict[str, Found]:
    """`InvoiceCache.find`'s answer from the (externalId, Leanpay id, contents) rows read;
    CacheDamaged if contents do not decode."""
    found: dict[str, Found] = {}
    for external_id, leanpay_id, contents in rows:
        try:
            if contents is not None:  # not bytes (SQLite keeps any value): unreadable
                _decode_contents(contents if isinstance(contents, bytes) else b"")
        except msgspec.DecodeError:
            raise CacheDamaged(f"{where}: unreadable fields of invoice {leanpay_id}") from None
        known = found.get(external_id)
        several = known is not None and known.leanpay_id != leanpay_id
        kept = contents if isinstance(contents, bytes) else None
        found[external_id] = Found(SEVERAL, None) if several else Found(leanpay_id, kept)
    return found


class InvoiceCache(Protocol):
    """CACHE: the invoices of one tenant, as far as Leanpay showed them. Thread-safe.
    Nothing here is a promise: a kill may lose the last writes, and the next listing (a
    delta walk, else every page) puts them back."""

    problem: str | None
    """Why an existing cache was not used on opening (logged by the caller), if it was not."""

    def count(self) -> int:
        """Invoices in the cache."""

    def has(self, rows: Sequence[Row]) -> set[str]:
        """The Leanpay ids of `rows` the cache holds (looked up by `createdAt` and id)."""

    def find(self, external_ids: Sequence[str]) -> dict[str, Found]:
        """What the cache holds for those of `external_ids` it holds (one lookup per
        chunk: the run never loads the whole cache). CacheDamaged if a value read cannot
        be decoded or trusted."""

    def watermark(self) -> Watermark:
        """What the last verified listing established (NO_WATERMARK: none did)."""

    def add(self, rows: Iterable[Row]) -> None:
        """Remember these invoices (listed, or acknowledged: each is one Leanpay holds)."""

    def begin_full_listing(self) -> None:
        """Forget every invoice and the watermark: a full listing refills it; cut short,
        the cache says it is incomplete."""

    def verified(self, *, total: int, order: str | None) -> None:
        """A listing just proved the cache whole (Leanpay's `total` then): the watermark
        becomes the newest `createdAt` held."""

    def damaged(self, reason: str) -> None:
        """A caller found a value it cannot trust: the cache is not verified any more
        (the next listing is a full one, which rebuilds it)."""

    def forget(self, leanpay_ids: Sequence[str]) -> None:
        """Leanpay no longer holds these (a find answered 404): drop them."""

    def advance(self, newest: int) -> None:
        """This run acknowledged invoices created up to `newest` (microseconds): the
        watermark moves there, so a later run does not read them again."""

    def distrust(self) -> None:
        """The cache holds invoices Leanpay no longer lists: its rows stay for this run's
        finds, but no later run believes it before a full listing."""

    def close(self) -> None:
        """Close it (what was committed stays)."""


# -- the PROMISES -----------------------------------------------------------------------


Earlier = tuple[str, str, bytes | None]
"""One receipt: (externalId, Leanpay id, the fields sent, `changes.encode`d, or None when
it did not keep them)."""


class PromisesDamaged(TargetLeanpayError):
    """A promise cannot be read: the run stops with one line naming where it lives, exit
    non-zero, no STATE (a promise is never dropped nor rebuilt)."""


class Promises(Protocol):
    """PROMISES (module notes). Thread-safe; every write is durable when it returns. A run
    that does not know its tenant yet (nothing listed names it) passes `tenant=None` and
    sees the receipts of every tenant."""

    where: str
    """Where they live, for messages (a path; never a password)."""

    release: str
    """How a user releases an uncertain item once Leanpay shows it does not hold it
    (README, "Releasing an uncertain item"): the end of a sentence, "delete ..."."""

    def earlier(self, resource: str, tenant: str | None = None) -> Iterator[Earlier]:
        """Every receipt of `resource` kept by earlier runs, oldest first (a later one of
        the same externalId supersedes it); with `tenant`, none naming another tenant.
        PromisesDamaged if one cannot be read."""

    def record(
        self,
        stream: str,
        resource: str,
        acknowledged: Sequence[tuple[str, str]],
        tenant: str | None = None,
        sent: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Keep the receipts of one acknowledged batch (or update): (externalId, Leanpay
        id) pairs, of `tenant` as Leanpay's answer names it, with the fields `sent`
        (`changes.kept`) by externalId. Durable on return."""

    def mark_sending(self, resource: str, external_ids: Sequence[str]) -> None:
        """Before a POST of a resource that cannot be listed: note its items durably, so
        that a run resuming after this one dies knows they may be in Leanpay."""

    def refused(self, resource: str, external_ids: Sequence[str]) -> None:
        """Leanpay refused that POST: its items are not stored, their marks are lifted
        (need not be durable: a lost lift leaves them uncertain, the safe side)."""

    def uncertain(self, resource: str) -> set[str]:
        """The externalIds of `resource` an earlier run marked and never got a receipt
        for: it died while they were on the wire."""

    def reread(self) -> None:
        """Read the marks again: this run now holds the tenant's lock, and has sent
        nothing yet; another run may have ended meanwhile, its marks answered by its
        receipts (read at the start, they would look uncertain)."""

    def close(self) -> None:
        """Close them (everything written is durable already)."""


# -- the lock ---------------------------------------------------------------------------


class TenantLock(abc.ABC):
    """The locks one run holds: one run per tenant at a time. A second run waits (saying
    so once) until the first ends; a holder that dies releases it (the OS, or the
    database, drops a dead process's lock). Each store says how one lock is tried
    (`_lock`); the order (the host's lock, then the tenant's: no deadlock) and the wait
    are the same for both."""

    def __init__(self, stopping: threading.Event) -> None:
        """`stopping`: ends a wait."""
        self._stopping = stopping
        self.waited = False
        """Whether this run had to wait for another one."""

    def hold_tenant(self, key: TenantKey) -> bool:
        """Hold the tenant `key`'s lock (and its host's, shared); True if another run held
        them first (what was listed before is stale)."""
        self.release()
        waited = self._take(None, "a new Leanpay tenant of this host", shared=True)
        return self._take(key, "this Leanpay tenant", shared=False) or waited

    def hold_new_tenant(self) -> bool:
        """Hold the host's lock exclusively: a tenant that lists nothing cannot be named
        yet. True if another run held it first."""
        self.release()
        return self._take(None, "a Leanpay tenant of this host", shared=False)

    def _take(self, tenant: TenantKey | None, what: str, *, shared: bool) -> bool:
        attempt, shown = self._lock(tenant, shared=shared)
        waited = False
        while not attempt():
            if not waited:
                waited = self.waited = True
                _lock_logger.info(
                    "Another target-leanpay run is loading %s (%s): waiting for it to end "
                    "before listing and sending",
                    what,
                    shown,
                )
            if self._stopping.wait(LOCK_POLL_SECONDS):
                raise Stopped("the run is stopping: it was waiting for another run to end")
        return waited

    @abc.abstractmethod
    def _lock(self, tenant: TenantKey | None, *, shared: bool) -> tuple[Callable[[], bool], str]:
        """One try at the lock of `tenant` (None: the host's), which holds it until
        `release` when it succeeds, and the lock as a wait names it."""

    @abc.abstractmethod
    def release(self) -> None:
        """Let another run load the tenant."""


# -- the store --------------------------------------------------------------------------


class Facts(Protocol):
    """Facts learned about a tenant (e.g. its date zone): promise-like values (a run that
    sends nothing still knows them)."""

    def fact(self, key: TenantKey, name: str) -> str | None:
        """A fact learned about tenant `key`, None if none is known."""

    def keep_fact(self, key: TenantKey, name: str, value: str) -> None:
        """Remember a fact about tenant `key`, durably (the newest value wins)."""


class Store(Facts, Protocol):
    """One place for all of the above: a folder (SQLite files) or a database."""

    where: str
    """What to name in messages (a path; a URL without its password)."""

    def cache(self, key: TenantKey, *, writable: bool) -> InvoiceCache:
        """The cache of tenant `key`; `writable` False (a plan): read if sound, never
        written (what the run learns stays in memory). Never raises for a damaged cache:
        a fresh one is given, with `problem` saying why."""

    def promises(self, *, writable: bool) -> Promises:
        """The promises (receipts, sending marks); `writable` False: read, never written.
        PromisesDamaged if they cannot be read."""

    def lock(self, host: str, *, stopping: threading.Event) -> TenantLock:
        """A lock holder for tenants of `host` (nothing held yet); `stopping` ends a wait."""
