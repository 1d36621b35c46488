"""The PROMISES of the PostgreSQL store (`store.Promises`) of one API host: rows of the
store's `receipts` and `sending` tables, each write one statement committed when the call
returns (`synchronous_commit` on). `receipts_path`: see receipts.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg

from target_leanpay.config.store_location import StoreError
from target_leanpay.output.runmark import RunMark
from target_leanpay.store import changes, receipts
from target_leanpay.store.pg_session import Session, named, one_line
from target_leanpay.store.receipts import JsonLines, encode, legacy_promises
from target_leanpay.store.store import Earlier, PromisesDamaged


class PgPromises:
    """`store.Promises` of one API host, in the store's `receipts` and `sending` tables."""

    def __init__(
        self, session: Session, host: str, *, writable: bool, run: RunMark, export: str | None
    ) -> None:
        self._db, self.where, self._guard = session
        self._host = host
        self._writable = writable
        self._run_started = run.started
        self._run_id = run.id
        self.release = (
            f"delete its row from the sending table of the store {self.where} "
            "(README, Releasing an uncertain item)"
        )
        self._export: JsonLines | None = None
        if writable and export and os.path.isfile(export):
            self._adopt(export)
        self._uncertain = self._earlier_doubts()
        if writable and export:
            self._export = receipts.open_export(export)

    @named
    def _earlier_doubts(self) -> dict[str, set[str]]:
        """Marks without a receipt, left by runs that died while sending; marks that got
        their receipt are dropped (what the folder store's compaction does)."""
        try:
            if self._writable:
                self._db.execute(
                    "DELETE FROM sending s WHERE host = %s AND EXISTS (SELECT 1 FROM receipts r "
                    "WHERE r.host = s.host AND r.resource = s.resource "
                    "AND r.external_id = s.external_id AND r.run_id = s.run_id)",
                    (self._host,),
                )
            rows = self._db.execute(
                "SELECT resource, external_id FROM sending s WHERE host = %s AND NOT EXISTS "
                "(SELECT 1 FROM receipts r WHERE r.host = s.host AND r.resource = s.resource "
                "AND r.external_id = s.external_id AND r.run_id = s.run_id)",
                (self._host,),
            ).fetchall()
        except psycopg.Error as failed:
            raise PromisesDamaged(
                f"The sending marks in {self.where} cannot be read: {one_line(failed)}"
            ) from None
        doubts: dict[str, set[str]] = {}
        for resource, external_id in rows:
            doubts.setdefault(str(resource), set()).add(str(external_id))
        return doubts

    def _write(self, what: str, query: str, values: Sequence[Any]) -> None:
        """One statement (the rows as arrays), committed when this returns."""
        if not self._writable:
            return
        try:
            self._db.execute(query, values)
        except psycopg.Error as failed:
            raise StoreError(
                f"Cannot write {what} to the store {self.where} ({one_line(failed)}): "
                "no STATE is written past them"
            ) from None

    @named
    def earlier(self, resource: str, tenant: str | None = None) -> Iterator[Earlier]:
        try:
            rows = self._db.execute(
                "SELECT external_id, leanpay_id, sent FROM receipts WHERE host = %s "
                "AND resource = %s AND (%s::text IS NULL OR tenant IS NULL OR tenant = %s) "
                "ORDER BY seq",
                (self._host, resource, tenant, tenant),
            ).fetchall()
        except psycopg.Error as failed:
            raise PromisesDamaged(
                f"The receipts in {self.where} cannot be read: {one_line(failed)}"
            ) from None
        return iter(
            [(str(e), str(i), None if sent is None else bytes(sent)) for e, i, sent in rows]
        )

    @named
    def record(
        self,
        stream: str,
        resource: str,
        acknowledged: Sequence[tuple[str, str]],
        tenant: str | None = None,
        sent: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Keep the receipts of one acknowledged batch, committed when this returns."""
        fields = sent or {}
        if acknowledged:
            self._write(
                "receipts",
                "INSERT INTO receipts (host, resource, stream, run_started, run_id, tenant, "
                "external_id, leanpay_id, sent) SELECT %s, %s, %s, %s, %s, %s, r.e, r.i, r.s FROM "
                "unnest(%b::text[], %b::text[], %b::bytea[]) WITH ORDINALITY AS r(e, i, s, n) "
                "ORDER BY n",
                (
                    self._host,
                    resource,
                    stream,
                    self._run_started,
                    self._run_id,
                    tenant,
                    [e for e, _ in acknowledged],
                    [i for _, i in acknowledged],
                    [changes.encode(fields[e]) if e in fields else None for e, _ in acknowledged],
                ),
            )
        if self._export is not None and acknowledged:
            self._export.append(
                receipts.lines(
                    stream,
                    resource,
                    acknowledged,
                    tenant,
                    fields,
                    run_started=self._run_started,
                    run_id=self._run_id,
                )
            )

    @named
    def mark_sending(self, resource: str, external_ids: Sequence[str]) -> None:
        if external_ids:
            self._write(
                "sending marks",
                "INSERT INTO sending (host, resource, run_id, external_id) SELECT %s, "
                "%s, %s, unnest(%b::text[]) ON CONFLICT DO NOTHING",
                (self._host, resource, self._run_id, list(external_ids)),
            )

    @named
    def refused(self, resource: str, external_ids: Sequence[str]) -> None:
        if external_ids:
            self._write(
                "lifted marks",
                "DELETE FROM sending WHERE host = %s AND resource = %s AND run_id = %s "
                "AND external_id = ANY(%b)",
                (self._host, resource, self._run_id, list(external_ids)),
            )

    def uncertain(self, resource: str) -> set[str]:
        return self._uncertain.get(resource, set())

    def reread(self) -> None:
        self._uncertain = self._earlier_doubts()

    def close(self) -> None:
        if self._export is not None:
            self._export.close()

    @named
    def _adopt(self, legacy: str) -> None:
        """Read the promises an earlier version kept in `receipts_path` into the store,
        when it holds none of this host yet: one transaction."""
        held = self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM receipts WHERE host = %s) "
            "OR EXISTS (SELECT 1 FROM sending WHERE host = %s)",
            (self._host, self._host),
        ).fetchone()
        if held is None or held[0]:
            return
        kept, marked = legacy_promises(legacy)
        if not kept and not marked:
            return
        with self._db.transaction():
            self._db.execute(
                "INSERT INTO receipts (host, resource, stream, run_started, tenant, "
                "external_id, leanpay_id, sent) SELECT %s, r.a, r.b, r.c, r.d, r.e, r.f, r.g "
                "FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
                "%b::text[], %b::bytea[]) WITH ORDINALITY AS r(a, b, c, d, e, f, g, n) "
                "ORDER BY n",
                (
                    self._host,
                    [r.resource for r in kept],
                    [r.stream for r in kept],
                    [r.run_started for r in kept],
                    [r.tenantId for r in kept],
                    [r.externalId for r in kept],
                    [r.id for r in kept],
                    [None if r.sent is None else encode(r.sent) for r in kept],
                ),
            )
            for resource, ids in marked.items():
                self._db.execute(
                    "INSERT INTO sending (host, resource, run_id, external_id) "
                    "SELECT %s, %s, %s, unnest(%b::text[])",
                    (self._host, resource, self._run_id, sorted(ids)),
                )
        receipts.log_adopted(legacy, kept, marked, self.where)
