"""The store in PostgreSQL (`store.Store`, second implementation): for runs that land on
different machines (containers, CI runners, CronJobs) and share one database.

**Schema.** Everything lives in a PostgreSQL schema of its own, `target_leanpay` unless
the URL's `options=-csearch_path=<name>` names another; it is created on first use. Its
`versions` table says which layout each part was written with: on a change, the CACHE
part (invoices, watermarks) is dropped and rebuilt from a listing; the PROMISES part
(receipts, sending marks, facts) is migrated step by step (`PROMISES_MIGRATIONS`), never
dropped. A store written by a newer target-leanpay, or a schema holding tables this
target did not make, stops the run with one line naming the store.

**Tenants.** Every row carries its API host (`store.host_of`) and, for the cache, its
`tenantId`; every query names both: one tenant's rows are never read for another.

**Durability.** Promises are written with `synchronous_commit` on, each write one
statement that has committed when the call returns: before the STATE that covers them.

**Failures.** PostgreSQL down or refusing: one line naming the store (the URL without its
password), exit non-zero, no STATE. A connection lost mid-run: the write that needed it
fails, so does the chunk, and no STATE passes what the store recorded; the lock's
heartbeat (`pg_lock.py`) stops the run when the lock may be gone.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from target_leanpay.config.store_location import StoreError, masked_store_url
from target_leanpay.output.runmark import RunMark
from target_leanpay.store.pg_cache import PgInvoiceCache
from target_leanpay.store.pg_lock import PgTenantLock, lock_key
from target_leanpay.store.pg_promises import PgPromises
from target_leanpay.store.pg_session import Session, named, one_line
from target_leanpay.store.store import TenantKey

DEFAULT_SCHEMA = "target_leanpay"
CACHE_VERSION = 2
"""2: the invoices' keys lead with the id looked up (version 1's led with the tenant, and
a planner without statistics read the whole tenant for each chunk)."""
PROMISES_VERSION = 1
PROMISES_MIGRATIONS: dict[int, list[str]] = {}
"""Statements that bring the promises from version N to N + 1 (none yet: version 1 is the
first). A migration transforms rows in place; it never drops a promise."""

CLIENT_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
    "connect_timeout": "15",
}
"""libpq's side: this process notices a silent server (unless the URL says otherwise)."""
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": 60,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 6,
    "tcp_user_timeout": 30000,
}
"""The server's side, for this session: a dead machine's lock goes within 2 minutes."""

logger = logging.getLogger("target-leanpay")

_SEARCH_PATH = re.compile(r"(?:-c\s*|--)search_path\s*=\s*(\S+)")

_CACHE_TABLES = ("invoices", "watermarks")
_PROMISES_TABLES = ("receipts", "sending", "facts")
_CACHE_DDL = (
    "DROP TABLE IF EXISTS invoices",
    "DROP TABLE IF EXISTS watermarks",
    "CREATE TABLE invoices (host text NOT NULL, tenant text NOT NULL, "
    "leanpay_id text NOT NULL, external_id text, created_at bigint, contents bytea, "
    "PRIMARY KEY (leanpay_id, host, tenant))",
    # each lookup's index leads with the ids it is given: a chunk's lookup costs its rows,
    # whatever the planner knows of the table (a first load runs before any statistics)
    "CREATE INDEX invoices_external_id ON invoices (external_id, host, tenant)",
    "CREATE TABLE watermarks (host text NOT NULL, tenant text NOT NULL, "
    "complete boolean NOT NULL, newest bigint, total bigint NOT NULL, list_order text, "
    "PRIMARY KEY (host, tenant))",
)
_PROMISES_DDL = (
    "CREATE TABLE receipts (seq bigserial PRIMARY KEY, host text NOT NULL, "
    "resource text NOT NULL, external_id text NOT NULL, leanpay_id text NOT NULL, "
    "stream text NOT NULL, run_started text NOT NULL, tenant text, sent bytea, run_id text)",
    "CREATE INDEX receipts_external_id ON receipts (host, resource, external_id)",
    "CREATE TABLE sending (host text NOT NULL, resource text NOT NULL, "
    "external_id text NOT NULL, run_id text NOT NULL, "
    "marked_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (host, resource, external_id, run_id))",
    "CREATE TABLE facts (host text NOT NULL, tenant text NOT NULL, name text NOT NULL, "
    "value text NOT NULL, PRIMARY KEY (host, tenant, name))",
)


def schema_of(url: str) -> str:
    """The schema the URL's `options` put first on the search path, else the default."""
    options = conninfo_to_dict(url).get("options") or ""
    found = _SEARCH_PATH.search(str(options))
    if found is None:
        return DEFAULT_SCHEMA
    first = found.group(1).split(",")[0].strip().strip('"')
    return first or DEFAULT_SCHEMA


class PgStore:
    """`store.Store` in one PostgreSQL schema, through one connection per run."""

    def __init__(
        self,
        url: str,
        *,
        host: str,
        run: RunMark | None = None,
        export: str | None = None,
        fail_run: Callable[[BaseException], None] | None = None,
    ) -> None:
        """As `FolderStore`'s; `fail_run`: what stops the run when its lock is lost (None:
        it is logged)."""
        self._fail_run = fail_run
        try:
            given = conninfo_to_dict(url)
        except psycopg.Error as bad:
            raise StoreError(
                f"The store {masked_store_url(url)} is not a PostgreSQL URL libpq can read: "
                f"{one_line(bad)}"
            ) from None
        self.schema = schema_of(url)
        self._host = host
        self._run = run or RunMark.new()
        self._export = export
        self.where = f"{masked_store_url(url)} (schema {self.schema})"
        self._guard = threading.RLock()
        extra = {name: value for name, value in CLIENT_KEEPALIVES.items() if name not in given}
        try:
            self._connection: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(
                make_conninfo(url, **extra), autocommit=True
            )
        except psycopg.Error as refused:
            raise StoreError(
                f"The store {self.where} cannot be reached: {one_line(refused)}"
            ) from None
        self._shared = Session(self._connection, self.where, self._guard)
        try:
            self._prepare()
        except psycopg.Error as failed:
            self._connection.close()
            raise StoreError(f"The store {self.where} cannot be used: {one_line(failed)}") from None
        except StoreError:
            self._connection.close()
            raise

    # -- the session and the schema ---------------------------------------------------

    def _prepare(self) -> None:
        db = self._connection
        for name, value in SERVER_KEEPALIVES.items():
            db.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        db.execute("SET synchronous_commit = on")  # promises: durable before STATE
        schema = sql.Identifier(self.schema)
        with db.transaction():
            # two first runs at once: one creates, the other waits and finds it made
            db.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(self.schema, "schema"),))
            db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            db.execute(sql.SQL("SET LOCAL search_path = {}").format(schema))
            versions, tables = self._versions()
            cache = versions.get("cache")
            if not set(_CACHE_TABLES) <= tables:
                cache = None  # a cache table dropped by hand: the cache is made again
            self._layout("its cache", "cache", cache, CACHE_VERSION, _CACHE_DDL)
            promises = versions.get("promises")
            if promises is not None and not set(_PROMISES_TABLES) <= tables:
                raise StoreError(
                    f"The store {self.where} lost tables of its promises "
                    f"({', '.join(sorted(set(_PROMISES_TABLES) - tables))}): restore them "
                    "from a backup (what this target sent is not known without them)"
                )
            steps: Iterable[str] = _PROMISES_DDL
            if promises is not None:  # never dropped: migrated from its version on
                versions_on = range(promises, PROMISES_VERSION)
                steps = tuple(step for v in versions_on for step in PROMISES_MIGRATIONS[v])
            self._layout("promises", "promises", promises, PROMISES_VERSION, steps)
        db.execute(sql.SQL("SET search_path = {}").format(schema))

    def _versions(self) -> tuple[dict[str, int], set[str]]:
        """The version of each part, and the tables the schema holds."""
        tables = {
            row[0]
            for row in self._connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (self.schema,),
            )
        }
        if "versions" not in tables:
            if tables:
                raise StoreError(
                    f"The store {self.where} holds tables target-leanpay did not make "
                    f"({', '.join(sorted(tables))}): name a schema of its own with "
                    "options=-csearch_path=<schema> in the URL"
                )
            self._connection.execute(
                "CREATE TABLE versions (part text PRIMARY KEY, version integer NOT NULL)"
            )
            return {}, tables
        try:
            rows = self._connection.execute("SELECT part, version FROM versions").fetchall()
        except psycopg.Error as foreign:
            raise StoreError(
                f"The store {self.where} has a versions table target-leanpay did not make "
                f"({one_line(foreign)})"
            ) from None
        return {str(part): int(version) for part, version in rows}, tables

    def _layout(
        self, named: str, part: str, found: int | None, known: int, steps: Iterable[str]
    ) -> None:
        """`part` at version `known`: `steps` run when it is at `found` (None: not made);
        a part of a newer version stops the run."""
        if found == known:
            return
        if found is not None and found > known:
            raise StoreError(
                f"The store {self.where} holds {named} of version {found}, written by a newer "
                f"target-leanpay (this one knows version {known}): upgrade target-leanpay"
            )
        for statement in steps:
            self._connection.execute(statement)
        self._connection.execute(
            "INSERT INTO versions VALUES (%s, %s) ON CONFLICT (part) DO UPDATE SET "
            "version = excluded.version",
            (part, known),
        )

    # -- the Store protocol -----------------------------------------------------------

    def cache(self, key: TenantKey, *, writable: bool) -> PgInvoiceCache:
        return PgInvoiceCache(self._shared, key, writable=writable)

    def promises(self, *, writable: bool) -> PgPromises:
        return PgPromises(
            self._shared, self._host, writable=writable, run=self._run, export=self._export
        )

    @named
    def fact(self, key: TenantKey, name: str) -> str | None:
        row = self._connection.execute(
            "SELECT value FROM facts WHERE host = %s AND tenant = %s AND name = %s",
            (key.host, key.tenant_id, name),
        ).fetchone()
        return None if row is None else str(row[0])

    @named
    def keep_fact(self, key: TenantKey, name: str, value: str) -> None:
        self._connection.execute(
            "INSERT INTO facts VALUES (%s, %s, %s, %s) ON CONFLICT (host, tenant, name) "
            "DO UPDATE SET value = excluded.value",
            (key.host, key.tenant_id, name, value),
        )

    def lock(self, host: str, *, stopping: threading.Event) -> PgTenantLock:
        """A lock holder for tenants of `host`; a lost connection stops the run."""

        def lost(message: str) -> None:
            if self._fail_run is None:
                logger.error("%s", message)
            else:  # the run's first failure: said once, by the run, as it stops
                self._fail_run(StoreError(message))
            stopping.set()

        return PgTenantLock(
            self._shared, schema=self.schema, host=host, stopping=stopping, lost=lost
        )

    def close(self) -> None:
        """Close the connection: PostgreSQL drops this run's locks."""
        self._connection.close()
