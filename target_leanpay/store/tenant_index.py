"""The folder store's CACHE (`store.InvoiceCache`): one tenant's invoices in one SQLite
file, so that a scheduled run lists only what is new (`delta.py`).

The file is named from what identifies the tenant without the key (`TenantKey.stem`:
`api.leanpay.fr-<tenantId>.sqlite`; the scheme's default port is no part of it). Nothing
of the key, nor anything derived from it, is written into the file or its name.

Costs. Rows are keyed by time, `(createdAt, Leanpay id)`: invoices are created in time
order, so an acknowledged batch appends its rows at the end of the table's B-tree and a
commit touches a handful of pages (a key of random Leanpay ids rewrote hundreds). A small
index by externalId answers a chunk's lookups (`find`, one statement per chunk): a run
never loads the whole cache, nor checks the whole file. The meta values (watermark, count)
are read once on opening and kept in memory: this run holds the tenant's lock, so nobody
else writes them.

A hint, never a truth. A missing, foreign (another host or tenant), damaged (not a
database, another schema version, a meta value out of its type) cache is replaced by an
empty unverified one on opening; a value read later that cannot be decoded or trusted
(`find`: CacheDamaged) makes the caller mark it `damaged`, which costs a full listing.
A garbled value nothing reads (the externalId of an old row) cannot be seen without a
whole-file check, and none is made. Writes are WAL transactions with `synchronous =
NORMAL`: a kill -9 keeps the last commit, a power cut may lose the last ones (the delta
finds them again); a full listing first marks the cache incomplete, so one cut short is
never taken for a complete one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from target_leanpay.store.store import (
    NO_WATERMARK,
    CacheDamaged,
    Found,
    Row,
    TenantKey,
    Watermark,
    found_in,
)

__all__ = ["Row", "TenantIndex", "Watermark"]

SCHEMA_VERSION = 3
"""`PRAGMA user_version` of the files this code writes; any other is rebuilt (3: a listed
date echoed at another instant than UTC midnight is kept as that instant, date_zone.py)."""
SUFFIX = ".sqlite"
_MAX_VARIABLES = 500
"""Values per statement, far below SQLite's variable limit (999 before SQLite 3.32)."""
_ORDERS = (None, "newest", "oldest")

_T = TypeVar("_T")


class TenantIndex:
    """The cache of one tenant. Thread-safe; `writable` False (a plan) writes nothing:
    the file is read in place if it is sound (never copied whole), and what the run
    learns lives in `KnownIds`: here only the watermark and count change, in memory; a
    full listing hides the file's rows."""

    def __init__(self, folder: Path, key: TenantKey, *, writable: bool) -> None:
        self.host = key.host
        self.tenant_id = key.tenant_id
        self.path = folder / (key.stem + SUFFIX)
        self.writable = writable
        self._lock = threading.RLock()
        self.problem: str | None = None
        self._meta: dict[str, Any] = {}
        self._read_only = False
        """A plan's view of an existing file: writes change `_meta` only."""
        self._hidden = False
        """A plan's full listing began: the file's rows are not the tenant's any more."""
        self._forgotten: set[str] = set()
        """A plan's view: Leanpay ids a find showed gone (the file keeps them)."""
        self._db = self._open(folder)

    # -- opening -----------------------------------------------------------------------

    def _open(self, folder: Path) -> sqlite3.Connection:
        if self.path.exists():
            try:
                return self._open_existing()
            except (sqlite3.DatabaseError, CacheDamaged) as damaged:
                self.problem = f"the index {self.path} is unusable ({damaged})"
                if self.writable:  # the damaged file goes, and its WAL files
                    for suffix in ("", "-wal", "-shm"):
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(f"{self.path}{suffix}")
        if not self.writable:
            return self._fresh(sqlite3.connect(":memory:", check_same_thread=False))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # externalIds: the user's
        return self._fresh(_connect(self.path))

    def _open_existing(self) -> sqlite3.Connection:
        if self.writable:
            db = _connect(self.path)
        else:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise CacheDamaged(f"schema version {version}, not {SCHEMA_VERSION}")
            self._meta = _checked_meta(dict(db.execute("SELECT key, value FROM meta")))
            if self._meta["host"] != self.host or self._meta["tenant"] != self.tenant_id:
                raise CacheDamaged(
                    f"it belongs to {self._meta['host']!r}, tenant {self._meta['tenant']!r}"
                )
        except BaseException:
            db.close()
            raise
        self._read_only = not self.writable
        return db

    def _fresh(self, db: sqlite3.Connection) -> sqlite3.Connection:
        db.isolation_level = None
        self._meta = {
            "host": self.host,
            "tenant": self.tenant_id,
            "complete": 0,
            "newest": None,
            "total": 0,
            "order": None,
            "count": 0,
        }
        with _transaction(db):
            db.execute("DROP TABLE IF EXISTS invoices")
            db.execute("DROP TABLE IF EXISTS meta")
            # contents: the compared fields (changes.kept, encoded)
            db.execute(
                "CREATE TABLE invoices (created_at INTEGER NOT NULL, leanpay_id TEXT NOT NULL, "
                "external_id TEXT, contents BLOB, PRIMARY KEY (created_at, leanpay_id)) "
                "WITHOUT ROWID"
            )
            db.execute("CREATE INDEX invoices_external_id ON invoices (external_id)")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID")
            db.executemany("INSERT INTO meta VALUES (?, ?)", list(self._meta.items()))
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return db

    # -- reading -----------------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return int(self._meta["count"])

    def has(self, rows: Sequence[Row]) -> set[str]:
        """The Leanpay ids of `rows` the cache holds (by `createdAt` and id: a search of
        the key's first column, which SQLite does not do for a row value `IN`)."""
        wanted = {(r.created_at, r.leanpay_id) for r in rows if r.created_at is not None}
        if self._hidden:
            return set()
        times = sorted({created for created, _ in wanted})
        held = self._select("created_at, leanpay_id", "created_at", times)
        return {i for c, i in held if (c, i) in wanted}

    def find(self, external_ids: Sequence[str]) -> dict[str, Found]:
        if self._hidden:
            return {}
        columns = "external_id, leanpay_id, created_at, contents"
        rows = self._select(columns, "external_id", list(external_ids))
        for external_id, leanpay_id, created_at, _ in rows:
            _check_row(self.path, external_id, leanpay_id, created_at)
        held = [(e, i, c) for e, i, _, c in rows if i not in self._forgotten]
        return found_in(held, str(self.path))

    def _select(self, columns: str, column: str, values: list[Any]) -> list[tuple[Any, ...]]:
        """`columns` of the rows whose `column` is one of `values`, a statement per part."""
        rows: list[tuple[Any, ...]] = []
        with self._lock:
            for part in _parts(values, _MAX_VARIABLES):
                marks = ",".join("?" * len(part))
                query = f"SELECT {columns} FROM invoices WHERE {column} IN ({marks})"  # noqa: S608 - placeholders only
                rows += self._db.execute(query, part)
        return rows

    def watermark(self) -> Watermark:
        with self._lock:
            meta = self._meta
            if not meta["complete"]:
                return NO_WATERMARK
            newest = meta["newest"]
            order = meta["order"]
            return Watermark(
                True,
                newest if isinstance(newest, int) else None,
                int(meta["total"]),
                order if isinstance(order, str) else None,
            )

    # -- writing -----------------------------------------------------------------------

    def add(self, rows: Iterable[Row]) -> None:
        """A row without `createdAt` is not kept: the next delta finds it again."""
        values = [
            (r.created_at, r.leanpay_id, r.external_id, r.contents)
            for r in rows
            if r.created_at is not None
        ]
        if not values:
            return
        if self._read_only:
            with self._lock:
                self._meta["count"] += len(values)
                self.advance(max(v[0] for v in values))
            return
        with self._lock, _transaction(self._db):
            before = self._db.total_changes
            for part in _parts(values, _MAX_VARIABLES // 4):  # one statement per batch:
                marks = ",".join(["(?, ?, ?, ?)"] * len(part))  # ~40% less than executemany
                self._db.execute(
                    "INSERT OR IGNORE INTO invoices (created_at, leanpay_id, external_id, "  # noqa: S608 - placeholders only
                    f"contents) VALUES {marks}",
                    [value for row in part for value in row],
                )
            added = self._db.total_changes - before
            if added < len(values):  # some were held: keep what is newly known of them
                self._db.executemany(
                    "UPDATE invoices SET external_id = ?, contents = coalesce(?, contents) "
                    "WHERE created_at = ? AND leanpay_id = ?",
                    [(external, contents, created, i) for created, i, external, contents in values],
                )
            self._set(count=int(self._meta["count"]) + added)

    def begin_full_listing(self) -> None:
        if self._read_only:
            self._hidden = True
            self._meta.update(complete=0, count=0, newest=None)
            return
        with self._lock, _transaction(self._db):
            self._db.execute("DELETE FROM invoices")
            self._set(complete=0, count=0)

    def verified(self, *, total: int, order: str | None) -> None:
        with self._lock:  # a plan's view knows its newest; the file's rows are the truth
            newest = self._meta["newest"]
            if not self._read_only:
                newest = self._db.execute("SELECT max(created_at) FROM invoices").fetchone()[0]
            self._update(complete=1, newest=newest, total=total, order=order)

    def damaged(self, reason: str) -> None:
        self.problem = f"the index {self.path} is damaged ({reason})"
        self.distrust()

    def _set(self, **values: object) -> None:
        """Write meta values (inside a transaction, holding the lock)."""
        self._db.executemany(
            "UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in values.items()]
        )
        self._meta.update(values)

    def _update(self, **values: object) -> None:
        """Write meta values in a transaction of their own (a plan's view: in memory)."""
        with self._lock:
            if self._read_only:
                self._meta.update(values)
                return
            with _transaction(self._db):
                self._set(**values)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def forget(self, leanpay_ids: Sequence[str]) -> None:
        if self._read_only:
            with self._lock:
                self._forgotten.update(leanpay_ids)
                self._meta["count"] = max(0, int(self._meta["count"]) - len(leanpay_ids))
            return
        with self._lock, _transaction(self._db):
            before = self._db.total_changes
            self._db.executemany(
                "DELETE FROM invoices WHERE leanpay_id = ?", [(i,) for i in leanpay_ids]
            )
            removed = self._db.total_changes - before
            self._set(count=int(self._meta["count"]) - removed)

    def advance(self, newest: int) -> None:
        """One another writer created meanwhile below it is caught by the count, like a late row."""
        with self._lock:  # read and written under one lock: concurrent batches race here
            known = self._meta["newest"]
            self._update(newest=newest if known is None else max(known, newest))

    def distrust(self) -> None:
        self._update(complete=0)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:  # a file that is no database fails here: its connection is closed, not leaked
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        db.close()
        raise
    return db


def _checked_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The meta values, each of its type; CacheDamaged if one is not."""
    ints = {"complete": (0, 1), "total": None, "count": None}
    for key, allowed in ints.items():
        value = meta.get(key)
        if not isinstance(value, int) or value < 0 or (allowed and value not in allowed):
            raise CacheDamaged(f"its {key} is {value!r}")
    if meta.get("newest") is not None and not isinstance(meta.get("newest"), int):
        raise CacheDamaged(f"its newest is {meta.get('newest')!r}")
    if meta.get("order") not in _ORDERS:
        raise CacheDamaged(f"its order is {meta.get('order')!r}")
    return meta


def _check_row(path: Path, external_id: object, leanpay_id: object, created_at: object) -> None:
    """CacheDamaged unless the ids and createdAt of a row read are of their types (SQLite
    keeps any value in any column; `found_in` checks the contents)."""
    problem = None
    if not isinstance(external_id, str) or not isinstance(leanpay_id, str) or not leanpay_id:
        problem = "an id that is not text"
    elif not isinstance(created_at, int):
        problem = f"a createdAt of {created_at!r}"
    if problem is not None:
        raise CacheDamaged(f"{path}: {problem}")


def _parts(values: list[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an error (autocommit connections)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
