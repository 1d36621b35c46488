"""The tenant index: what the target learned of one Leanpay tenant's invoices, kept on
disk between runs so that a scheduled run lists only what is new (`delta.py`).

One SQLite file per tenant, named from what identifies the tenant without the key: the
API host (and port) and the `tenantId` every listed or acknowledged invoice carries
(`api.leanpay.fr-<tenantId>.sqlite`). Nothing of the key, nor anything derived from it,
is written into the file or its name. It holds, per invoice, its Leanpay id, externalId
and `createdAt`, and the fields change detection compares (`changes.kept`),
and the watermark of the last verified listing: whether that listing was complete, the
newest `createdAt` it saw, Leanpay's `total` then, and the order the list was seen in.

An index is only ever a hint. Every run checks it against Leanpay (`delta.py`); a
missing, foreign (another host or tenant), damaged (not a database, a schema of another
version, a torn file) or inconsistent one costs one full listing, never a wrong answer.
Writes are SQLite transactions in WAL mode: a kill -9 at any moment leaves the last
committed state; a full listing first marks the index incomplete, so a listing cut short
is never taken for a complete one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger("target-leanpay.replay")

SCHEMA_VERSION = 1
"""`PRAGMA user_version` of the files this code writes; any other is rebuilt."""
SUFFIX = ".sqlite"
_MAX_QUERY_IDS = 500
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def host_stem(api_url: str) -> str:
    """The API host (and port, when given), safe in a file name."""
    parts = urlsplit(api_url)
    host = parts.hostname or "unknown-host"
    if parts.port is not None:
        host = f"{host}_{parts.port}"
    return _UNSAFE.sub("_", host)


def tenant_stem(api_url: str, tenant_id: str) -> str:
    """`<host>-<tenantId>`: names a tenant's index and lock, without the key."""
    return f"{host_stem(api_url)}-{_UNSAFE.sub('_', tenant_id)}"


@dataclass(frozen=True, slots=True)
class Row:
    """One invoice as listed or acknowledged."""

    leanpay_id: str
    external_id: str | None
    created_at: int | None
    """`createdAt` in microseconds since the epoch (None: absent or unreadable)."""
    tenant_id: str | None = None
    contents: bytes | None = None
    """The fields a change is looked for in (`changes.kept`, encoded); None: unknown."""


@dataclass(frozen=True, slots=True)
class Watermark:
    """What the last verified listing established (`complete` False: none did)."""

    complete: bool
    newest: int | None
    """The newest `createdAt` that listing saw (None: the tenant was empty)."""
    total: int
    order: str | None
    """"newest" or "oldest" first, as seen; None when it could not be told."""


_NO_WATERMARK = Watermark(False, None, 0, None)


class IndexDamaged(Exception):
    """The file is not an index this code can trust."""


class TenantIndex:
    """The index of one tenant. Thread-safe; `writable` False (a plan) writes nothing:
    the file is read if it is sound, and what the run learns stays in memory."""

    def __init__(self, folder: Path, api_url: str, tenant_id: str, *, writable: bool) -> None:
        self.host = host_stem(api_url)
        self.tenant_id = tenant_id
        self.path = folder / (tenant_stem(api_url, tenant_id) + SUFFIX)
        self.writable = writable
        self._lock = threading.Lock()
        self.problem: str | None = None
        """Why an existing file was not used (logged by the caller with the fallback)."""
        self._db = self._open(folder)

    # -- opening -----------------------------------------------------------------------

    def _open(self, folder: Path) -> sqlite3.Connection:
        existed = self.path.exists()
        if existed:
            try:
                return self._open_existing()
            except (sqlite3.DatabaseError, IndexDamaged) as damaged:
                self.problem = f"the index {self.path} is unusable ({damaged})"
                if self.writable:
                    _remove(self.path)
        if not self.writable:
            return self._fresh(sqlite3.connect(":memory:", check_same_thread=False))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # externalIds: the user's
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        return self._fresh(db)

    def _open_existing(self) -> sqlite3.Connection:
        if self.writable:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        else:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise IndexDamaged(f"schema version {version}, not {SCHEMA_VERSION}")
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("host") != self.host or meta.get("tenant") != self.tenant_id:
                raise IndexDamaged(
                    f"it belongs to {meta.get('host')!r}, tenant {meta.get('tenant')!r}"
                )
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise IndexDamaged(f"SQLite finds it damaged: {check}")
            if self.writable:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            db.close()
            raise
        if not self.writable:  # a plan writes nothing: work on a copy in memory
            memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            db.backup(memory)
            db.close()
            return memory
        return db

    def _fresh(self, db: sqlite3.Connection) -> sqlite3.Connection:
        db.isolation_level = None
        with _transaction(db):
            db.execute("DROP TABLE IF EXISTS invoices")
            db.execute("DROP TABLE IF EXISTS meta")
            # contents: the fields change detection compares (changes.kept, encoded)
            db.execute(
                "CREATE TABLE invoices (leanpay_id TEXT PRIMARY KEY, external_id TEXT, "
                "created_at INTEGER, contents BLOB) WITHOUT ROWID"
            )
            db.execute("CREATE INDEX invoices_external_id ON invoices (external_id)")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("host", self.host),
                    ("tenant", self.tenant_id),
                    ("complete", 0),
                    ("newest", None),
                    ("total", 0),
                    ("order", None),
                ],
            )
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return db

    # -- reading -----------------------------------------------------------------------

    @property
    def on_disk(self) -> Path | None:
        """The file a run may read the invoices from (None: they live in memory)."""
        return self.path if self.writable else None

    def count(self) -> int:
        """Invoices in the index."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM invoices").fetchone()[0])

    def has(self, leanpay_ids: Sequence[str]) -> set[str]:
        """The Leanpay ids of `leanpay_ids` the index holds."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(leanpay_ids), _MAX_QUERY_IDS):
                part = leanpay_ids[start : start + _MAX_QUERY_IDS]
                marks = ",".join("?" * len(part))
                query = f"SELECT leanpay_id FROM invoices WHERE leanpay_id IN ({marks})"  # noqa: S608 - placeholders only
                found.update(row[0] for row in self._db.execute(query, part))
        return found

    def pairs(self) -> list[tuple[str, str | None, bytes | None]]:
        """(externalId, Leanpay id, contents) of every invoice that has an externalId."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT external_id, leanpay_id, contents FROM invoices "
                    "WHERE external_id IS NOT NULL"
                )
            )

    def watermark(self) -> Watermark:
        """What the last verified listing established."""
        with self._lock:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not meta.get("complete"):
            return _NO_WATERMARK
        newest = meta.get("newest")
        order = meta.get("order")
        return Watermark(
            True,
            int(newest) if newest is not None else None,
            int(meta.get("total") or 0),
            str(order) if order is not None else None,
        )

    # -- writing -----------------------------------------------------------------------

    def add(self, rows: Iterable[Row]) -> None:
        """Remember these invoices (listed, or acknowledged: each is one Leanpay holds)."""
        values = [(r.leanpay_id, r.external_id, r.created_at, r.contents) for r in rows]
        if not values:
            return
        with self._lock, _transaction(self._db):
            self._db.executemany(
                "INSERT INTO invoices (leanpay_id, external_id, created_at, contents) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (leanpay_id) DO UPDATE SET "
                "external_id = excluded.external_id, "
                "created_at = coalesce(excluded.created_at, invoices.created_at), "
                "contents = coalesce(excluded.contents, invoices.contents)",
                values,
            )

    def begin_full_listing(self) -> None:
        """Forget every invoice and the watermark: a full listing refills it; cut short,
        the index says it is incomplete."""
        with self._lock, _transaction(self._db):
            self._db.execute("DELETE FROM invoices")
            self._db.execute("UPDATE meta SET value = 0 WHERE key = 'complete'")

    def verified(self, *, total: int, order: str | None) -> None:
        """A listing just proved the index whole (Leanpay's `total` then): record the
        watermark: the newest `createdAt` the index holds."""
        with self._lock, _transaction(self._db):
            newest = self._db.execute("SELECT max(created_at) FROM invoices").fetchone()[0]
            self._db.executemany(
                "UPDATE meta SET value = ? WHERE key = ?",
                [(1, "complete"), (newest, "newest"), (total, "total"), (order, "order")],
            )

    def close(self) -> None:
        """Close the file (committed writes are on disk)."""
        with self._lock:
            self._db.close()


class _transaction:  # noqa: N801 - used as a statement
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an error (autocommit connections)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _remove(path: Path) -> None:
    """Delete a damaged index and its WAL files."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")
