"""The externalIds Leanpay holds, in a private temporary SQLite file.

Replay safety must remember every externalId of the tenant plus every one this run
sent: a Python set of a million strings costs ~100 MB and grows with the input. A SQLite
table keeps them on disk (deleted when the run ends) behind a small page cache, so memory
stays flat whatever the tenant or input size, and a chunk of 100 is checked in one query
(~15 µs) and recorded in one more (~20 µs: one multi-row INSERT; `executemany` took
~125 µs, as much as mapping the 100 records). The ids are stored whole: no hash, no
collision can ever hide an invoice.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence

MAX_QUERY_IDS = 500
"""Ids per statement, far below SQLite's variable limit (999 before SQLite 3.32)."""


class KnownIds:
    """A set of strings kept by SQLite; safe to share between threads."""

    def __init__(self) -> None:
        # "" = a private on-disk temporary database, deleted on close
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE known (id TEXT PRIMARY KEY) WITHOUT ROWID")
        self._lock = threading.Lock()

    def add(self, ids: Iterable[str]) -> None:
        """Remember these ids."""
        parts = _in_parts(list(ids))
        with self._lock:
            for part in parts:
                rows = ",".join(["(?)"] * len(part))
                self._db.execute(f"INSERT OR IGNORE INTO known VALUES {rows}", part)  # noqa: S608 - placeholders only

    def among(self, ids: Sequence[str]) -> set[str]:
        """The ids of `ids` that are remembered."""
        found: set[str] = set()
        with self._lock:
            for part in _in_parts(ids):
                query = f"SELECT id FROM known WHERE id IN ({','.join('?' * len(part))})"  # noqa: S608 - placeholders only
                found.update(row[0] for row in self._db.execute(query, part))
        return found

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT count(*) FROM known").fetchone()
        return int(count)

    def close(self) -> None:
        """Delete the temporary file."""
        with self._lock:
            self._db.close()


def _in_parts(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    """`ids` in slices of at most MAX_QUERY_IDS: one statement each."""
    for start in range(0, len(ids), MAX_QUERY_IDS):
        yield ids[start : start + MAX_QUERY_IDS]
