"""The log of every API request, so tests can assert what the target actually sent.

Entries are created on arrival (so dropped requests appear, with status null) and
completed when answered. Authorization is kept on purpose: tests check that the raw key,
without "Bearer", was sent.

Each entry: method, path, query, headers, body (the parsed JSON of a batch POST, unless
log_bodies is off), items (the batch's length), status (null until answered, and for a
dropped connection), time (`time.monotonic()` on arrival) and answered (the same clock
once the answer, latency included, is ready: the server writes it, or drops the
connection, right after; null until then). Two requests overlapped when each arrived
before the other was answered.

A deletion through the control API (`POST /_control/delete`) is journaled too, so a test
sees where it fell among the API requests: method "DELETE", path "/_control/delete",
query `{"resource": name}`, body `{"ids": [...], "externalIds": [...]}` of the objects
deleted, items their count, status 200, no headers. So is a tenant emptied
(`POST /_control/empty`): method "DELETE", path "/_control/empty", body the count of
objects each resource had, items their sum. Invoices stored late (`POST /_control/late`)
and revealed (`POST /_control/reveal`) are journaled with method "POST", path the control
path, body `{"ids": [...], "externalIds": [...]}` of those invoices, items their count.
"""

from __future__ import annotations

import threading
from typing import Any


class Journal:
    """API requests in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def open(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        arrived: float,
    ) -> dict[str, Any]:
        """Record an arriving request; the caller fills in the rest in place."""
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "body": None,
            "status": None,
            "items": None,
            "time": arrived,
            "answered": None,
        }
        with self._lock:
            self._entries.append(entry)
        return entry

    def note_deletion(
        self, resource_name: str, ids: list[str], external_ids: list[str | None], at: float
    ) -> None:
        """Record a deletion made through the controls, among the API requests."""
        body = {"ids": ids, "externalIds": external_ids}
        self._note_control("DELETE", "/_control/delete", {"resource": resource_name}, body, at)

    def note_emptying(self, emptied: dict[str, int], at: float) -> None:
        """Record a tenant emptied through the controls, among the API requests."""
        self._note_control("DELETE", "/_control/empty", {}, dict(emptied), at)

    def note_late(
        self, path: str, ids: list[str], external_ids: list[str | None], at: float
    ) -> None:
        """Record invoices stored late, or revealed, through the controls."""
        self._note_control("POST", path, {}, {"ids": ids, "externalIds": external_ids}, at)

    def _note_control(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any], at: float
    ) -> None:
        """A control call among the API requests; items: the objects it concerned."""
        items = len(body["ids"]) if "ids" in body else sum(body.values())
        with self._lock:
            self._entries.append(
                {
                    "method": method,
                    "path": path,
                    "query": query,
                    "headers": {},
                    "body": body,
                    "status": 200,
                    "items": items,
                    "time": at,
                    "answered": at,
                }
            )

    def clear(self) -> None:
        """Forget every request."""
        with self._lock:
            self._entries = []

    def entries(self) -> list[dict[str, Any]]:
        """A snapshot (shallow copies, so later completion does not change it)."""
        with self._lock:
            return [dict(entry) for entry in self._entries]
