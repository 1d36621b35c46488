"""Parking: links and paybacks read before the documents they name.

A tap may emit allocations before credit notes and invoices (alphabetical catalogs do).
A link or payback naming, by externalId, an invoice or credit note this run has not read
and Leanpay is not known to hold is parked here by the reading thread instead of being
buffered. Its sequence number is open, so STATE stays behind it.

* When the document is read (the sink claims its externalId), the records that waited for
  it and for nothing else go to their stream's buffer, behind it. From there the rule of
  a reference read after its document holds: a chunk of links is handed over only after
  the buffers of the documents, so the document's chunk is ahead in the pool's FIFO; the
  sending thread that resolves the link waits for an acknowledgement already on its way,
  never for input. Nothing here ever waits: a deadlock is impossible by construction.
* At each STATE, the records in memory whose documents a listing has shown since (Leanpay
  holds them) go too.
* At the end of the input, every record still parked goes to its buffer, in read order:
  its documents are then resolved from what Leanpay holds (the listing, the receipts), and
  a reference still unknown is rejected with the reason.

So the outcome does not depend on timing: the same at every max_in_flight and in a plan.

Memory: at most `PARKED_IN_MEMORY` records; past that, the others wait on disk, in a
private temporary SQLite file (deleted when the run ends), with the documents they wait
for indexed there.
"""

from __future__ import annotations

import heapq
import io
import logging
import pickle
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from target_leanpay.output.progress import StreamStats, plural
from target_leanpay.sending.items import Pending
from target_leanpay.source.batch_files import Place

logger = logging.getLogger("target-leanpay")

PARKED_IN_MEMORY = 1_000
"""Parked records held in memory (about 2 MB of links); the rest wait on disk. A
constant, not a setting: it bounds memory, it changes no outcome."""

Document = tuple[str, str]
"""(resource, externalId) of an invoice or credit note a record waits for."""
IsRead = Callable[[str, str], bool]
"""Whether this run has read the document (or Leanpay is known to hold it)."""
Take = Callable[[Pending], object]
"""A stream's sink taking a released record: it claims its externalId (a record is
claimed only once released, as a claim holds it in memory) and buffers it."""


class Parking:
    """The records waiting for a document; used by the reading thread only."""

    def __init__(self, is_read: IsRead) -> None:
        self._is_read = is_read
        self._takers: dict[str, Take] = {}
        self._stats: dict[str, StreamStats] = {}
        self._memory: dict[int, tuple[Pending, tuple[Document, ...]]] = {}
        self._waiting: dict[Document, list[int]] = {}  # document -> seqs in memory
        self._disk: sqlite3.Connection | None = None
        self._on_disk = 0
        self.peak_in_memory = 0
        """The most records held in memory at once (never above PARKED_IN_MEMORY)."""
        self.spilled = 0
        """Records that waited on disk."""
        self.parked = 0
        """Records parked in this run."""

    @property
    def count(self) -> int:
        """Records parked now."""
        return len(self._memory) + self._on_disk

    @property
    def in_memory(self) -> int:
        """Records parked now in memory."""
        return len(self._memory)

    def register(self, stream: str, take: Take) -> None:
        """The sink a released record of `stream` goes to (the newest sink of a stream)."""
        self._takers[stream] = take

    def park(self, item: Pending, documents: Iterable[Document]) -> None:
        """`item` waits until these documents are read, or the input ends."""
        waits = tuple(documents)
        self.parked += 1
        self._stats[item.stream] = item.stats
        if len(self._memory) < PARKED_IN_MEMORY:
            self._memory[item.seq] = (item, waits)
            for document in waits:
                self._waiting.setdefault(document, []).append(item.seq)
            self.peak_in_memory = max(self.peak_in_memory, len(self._memory))
            return
        self._spill(item, waits)

    def arrived(self, resource: str, external_id: str) -> None:
        """The document was read: release the records that wait for nothing else now."""
        document = (resource, external_id)
        released: list[Pending] = []
        for seq in self._waiting.pop(document, ()):
            item, waits = self._memory[seq]
            if self._ready(waits):
                del self._memory[seq]
                self._unindex(seq, waits)
                released.append(item)
        if self._on_disk:
            released += self._from_disk(document)
        for item in sorted(released, key=lambda p: p.seq):
            self._takers[item.stream](item)

    def recheck(self) -> None:
        """Release the records in memory whose documents are known now: Leanpay holds
        them, as a listing that ended since they were parked shows (asked at each STATE,
        so that STATE need not wait for the end of the input)."""
        ready = [seq for seq, (_, waits) in self._memory.items() if self._ready(waits)]
        for seq in ready:
            item, waits = self._memory.pop(seq)
            self._unindex(seq, waits)
            self._takers[item.stream](item)

    def release_all(self) -> None:
        """The input ended: every parked record goes to its buffer, in read order."""
        if not self.parked:
            return
        in_memory = sorted(self._memory.items())
        self._memory.clear()
        self._waiting.clear()
        for _, (item, _waits) in heapq.merge(in_memory, self._all_on_disk()):
            self._takers[item.stream](item)
        logger.info(
            "%s naming documents not read yet (nor known to Leanpay) waited for them (at "
            "most %d in memory, %d on disk)",
            plural(self.parked, "record"),
            self.peak_in_memory,
            self.spilled,
        )

    def close(self) -> None:
        """Delete the file of the records that waited on disk."""
        if self._disk is not None:
            self._disk.close()
            self._disk = None

    # -- what waits on disk -------------------------------------------------------------

    def _ready(self, waits: Iterable[Document]) -> bool:
        return all(self._is_read(resource, external_id) for resource, external_id in waits)

    def _unindex(self, seq: int, waits: tuple[Document, ...]) -> None:
        """A released record no longer waits for its other documents."""
        for document in waits:
            seqs = self._waiting.get(document)
            if seqs is not None:
                seqs.remove(seq)
                if not seqs:
                    del self._waiting[document]

    def _spill(self, item: Pending, waits: tuple[Document, ...]) -> None:
        if self._disk is None:
            self._disk = _private_database()
            logger.info(
                "More than %d records wait for documents later in the input: the next "
                "ones wait on disk",
                PARKED_IN_MEMORY,
            )
        self._disk.execute("INSERT INTO parked VALUES (?, ?)", (item.seq, _dumps(item)))
        self._disk.executemany(
            "INSERT INTO waits VALUES (?, ?, ?)", [(r, e, item.seq) for r, e in waits]
        )
        self._on_disk += 1
        self.spilled += 1

    def _from_disk(self, document: Document) -> list[Pending]:
        """The records on disk that waited for `document` and for nothing else now,
        taken off the disk."""
        assert self._disk is not None
        where = "WHERE resource = ? AND external_id = ?"
        seqs = [row[0] for row in self._disk.execute(f"SELECT seq FROM waits {where}", document)]  # noqa: S608 - constant text
        self._disk.execute(f"DELETE FROM waits {where}", document)  # noqa: S608 - constant text
        released = []
        for seq in seqs:
            others = self._disk.execute(
                "SELECT resource, external_id FROM waits WHERE seq = ?", (seq,)
            ).fetchall()
            if not self._ready(others):
                continue
            (data,) = self._disk.execute("SELECT data FROM parked WHERE seq = ?", (seq,)).fetchone()
            self._disk.execute("DELETE FROM parked WHERE seq = ?", (seq,))
            self._disk.execute("DELETE FROM waits WHERE seq = ?", (seq,))
            self._on_disk -= 1
            released.append(self._loads(data))
        return released

    def _all_on_disk(self) -> Iterator[tuple[int, tuple[Pending, tuple[()]]]]:
        if self._disk is None:
            return
        for seq, data in self._disk.execute("SELECT seq, data FROM parked ORDER BY seq"):
            yield seq, (self._loads(data), ())
        self._on_disk = 0

    def _loads(self, data: bytes) -> Pending:
        fields = pickle.loads(data)  # noqa: S301 - our own file, written by this run
        return Pending(**fields, stats=self._stats[fields["stream"]])


def _private_database() -> sqlite3.Connection:
    """A temporary on-disk SQLite file no other process sees, deleted when closed."""
    disk = sqlite3.connect("", isolation_level=None)
    disk.execute("PRAGMA journal_mode = OFF")
    disk.execute("PRAGMA synchronous = OFF")
    disk.execute("CREATE TABLE parked (seq INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    disk.execute("CREATE TABLE waits (resource TEXT, external_id TEXT, seq INTEGER)")
    disk.execute("CREATE INDEX waits_by_document ON waits (resource, external_id)")
    disk.execute("CREATE INDEX waits_by_seq ON waits (seq)")
    return disk


def _dumps(item: Pending) -> bytes:
    """A parked record without its stream's counters (a lock: shared, not copied)."""
    fields: dict[str, Any] = {
        "seq": item.seq,
        "record": item.record,
        "payload": item.payload,
        "external_id": item.external_id,
        "line": item.line,
        "key_properties": item.key_properties,
        "stream": item.stream,
    }
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {Place: _reduce_place}
    pickler.dump(fields)
    return buffer.getvalue()


def _reduce_place(place: Place) -> tuple[Any, ...]:
    """A BATCH record's place, rebuilt whole (an int subclass with fields of its own)."""
    return Place, (int(place), place.file, place.line, place.unit)
