"""The CACHE of the PostgreSQL store (`store.InvoiceCache`): one tenant's invoices and
the watermark of the last verified listing, rows of the store's `invoices` and
`watermarks` tables keyed by API host and `tenantId`. A cache: lost or damaged, it is
rebuilt from a listing (`pg_store.py` drops it on a layout change); never a promise.

A chunk's lookup costs its own rows: each index leads with the ids it is given, and the
ids travel as binary arrays (`%b`; psycopg writes a text array with a regular expression
per element: a third of the sending threads' CPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from target_leanpay.store.pg_session import Session, named
from target_leanpay.store.store import (
    NO_WATERMARK,
    Found,
    Row,
    TenantKey,
    Watermark,
    found_in,
)

_TENANT = sql.SQL("host = %s AND tenant = %s")
"""Every query names the tenant: one tenant's rows are never read for another."""


class PgInvoiceCache:
    """`store.InvoiceCache` for one tenant, in the store's schema."""

    def __init__(self, session: Session, key: TenantKey, *, writable: bool) -> None:
        self._db, self.where, self._guard = session
        self._key = (key.host, key.tenant_id)
        self.problem: str | None = None
        self._invoices = sql.Identifier("invoices")
        self._watermarks = sql.Identifier("watermarks")
        if not writable:
            self._copy_for_a_plan()

    @named
    def _copy_for_a_plan(self) -> None:
        """Temporary copies of this tenant's rows: what a plan learns stays in them."""
        self._invoices = sql.Identifier("pg_temp", "plan_invoices")
        self._watermarks = sql.Identifier("pg_temp", "plan_watermarks")
        with self._db.transaction():
            for copy, table, key in (
                (self._invoices, "invoices", "leanpay_id, host, tenant"),
                (self._watermarks, "watermarks", "host, tenant"),
            ):
                self._db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(copy))
                self._db.execute(
                    sql.SQL("CREATE TABLE {} AS SELECT * FROM {} WHERE {}").format(
                        copy, sql.Identifier(table), _TENANT
                    ),
                    self._key,
                )
                self._db.execute(
                    sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(copy, sql.SQL(key))
                )

    def _run(self, text: str, *values: object) -> psycopg.Cursor[tuple[Any, ...]]:
        """`text` on this tenant's rows: `{tenant}` names its host and tenantId, whose
        values go first (before any other placeholder of `text`)."""
        query = sql.SQL(text).format(
            invoices=self._invoices, watermarks=self._watermarks, tenant=_TENANT
        )
        return self._db.execute(query, (*self._key, *values))

    @named
    def count(self) -> int:
        row = self._run("SELECT count(*) FROM {invoices} WHERE {tenant}").fetchone()
        return int(row[0]) if row else 0

    @named
    def has(self, rows: Sequence[Row]) -> set[str]:
        ids = [row.leanpay_id for row in rows]
        if not ids:
            return set()
        found = self._run(
            "SELECT leanpay_id FROM {invoices} WHERE {tenant} AND leanpay_id = ANY(%b)", ids
        )
        return {str(row[0]) for row in found}

    @named
    def find(self, external_ids: Sequence[str]) -> dict[str, Found]:
        if not external_ids:
            return {}
        rows = self._run(
            "SELECT external_id, leanpay_id, contents FROM {invoices} "
            "WHERE {tenant} AND external_id = ANY(%b)",
            list(external_ids),
        ).fetchall()
        return found_in(rows, self.where)

    @named
    def watermark(self) -> Watermark:
        row = self._run(
            "SELECT complete, newest, total, list_order FROM {watermarks} WHERE {tenant}"
        ).fetchone()
        if row is None or not row[0]:
            return NO_WATERMARK
        complete, newest, total, order = row
        return Watermark(bool(complete), newest, int(total), order)

    @named
    def add(self, rows: Iterable[Row]) -> None:
        latest = {row.leanpay_id: row for row in rows}  # one statement updates a row once
        if not latest:
            return
        kept = latest.values()
        self._run(  # one statement, one round trip: columns as arrays
            "INSERT INTO {invoices} (host, tenant, leanpay_id, external_id, created_at, "
            "contents) SELECT %s, %s, * FROM unnest(%b::text[], %b::text[], "
            "%b::bigint[], %b::bytea[]) ON CONFLICT (leanpay_id, host, tenant) DO UPDATE "
            "SET external_id = excluded.external_id, "
            "created_at = coalesce(excluded.created_at, {invoices}.created_at), "
            "contents = coalesce(excluded.contents, {invoices}.contents)",
            [r.leanpay_id for r in kept],
            [r.external_id for r in kept],
            [r.created_at for r in kept],
            [r.contents for r in kept],
        )

    def _set_watermark(self, mark: Watermark) -> None:
        self._run(
            "INSERT INTO {watermarks} (host, tenant, complete, newest, total, list_order) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (host, tenant) DO UPDATE SET "
            "complete = excluded.complete, newest = excluded.newest, "
            "total = excluded.total, list_order = excluded.list_order",
            mark.complete,
            mark.newest,
            mark.total,
            mark.order,
        )

    @named
    def begin_full_listing(self) -> None:
        with self._db.transaction():
            self._set_watermark(NO_WATERMARK)
            self._run("DELETE FROM {invoices} WHERE {tenant}")

    @named
    def verified(self, *, total: int, order: str | None) -> None:
        with self._db.transaction():
            row = self._run("SELECT max(created_at) FROM {invoices} WHERE {tenant}").fetchone()
            self._set_watermark(Watermark(True, row[0] if row else None, total, order))

    def damaged(self, reason: str) -> None:
        self.distrust()

    @named
    def forget(self, leanpay_ids: Sequence[str]) -> None:
        if leanpay_ids:
            self._run(
                "DELETE FROM {invoices} WHERE {tenant} AND leanpay_id = ANY(%b)", list(leanpay_ids)
            )

    @named
    def advance(self, newest: int) -> None:
        """In one statement: batches acknowledged at once never move it back."""
        query = sql.SQL("UPDATE {} SET newest = greatest(coalesce(newest, %s), %s) WHERE {}")
        self._db.execute(query.format(self._watermarks, _TENANT), (newest, newest, *self._key))

    @named
    def distrust(self) -> None:
        self._run("UPDATE {watermarks} SET complete = false WHERE {tenant}")

    def close(self) -> None:
        """Nothing to close: the connection is the store's (a plan's copies go with it)."""
