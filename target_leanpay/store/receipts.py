"""Receipts: a durable record of every item Leanpay acknowledged, kept across runs: the
folder store's PROMISES (`store.Promises`, `folder_store.py`).

The receipts file is the one truth of what this target created, not a copy of it: users
read Leanpay's ids from it, and the next run reads it back. Any line that ends whole and
cannot be read is damage: the run stops with one line naming the file (`PromisesDamaged`),
never skips it. A store kept elsewhere (a database) keeps these promises itself.

With `receipts_path` set, each acknowledged item becomes one JSON line:
`{"resource", "externalId", "id", "stream", "run_started", "tenantId", "sent"}`, `sent`
holding the fields sent (changes.py's `kept` form: dates as dates, money as integers,
references as the Leanpay ids they resolved to). A link or payback updated in place
(updates.py) gets a newer line with the same id; the newest line of a (resource,
externalId) wins. Lines written before `sent` existed have none: their records compare
as "unknown", never as changed. Later runs read the file (once the run knows its tenant,
the lines of another are not used):

* to resolve references by externalId (a link's `creditNoteExternalId`): credit notes
  cannot be listed, so the receipts are the only place their Leanpay ids are known;
* to tell whether a record sent again changed in the source since (updates.py);
* to recognise what this target created before: an externalId with a receipt is never
  sent again, whatever the resource (it is "already present"). That narrows the gap of
  resources without a list endpoint to the moment between Leanpay's answer and the
  receipt being on disk.

Items on the wire. Between Leanpay storing a batch and its answer reaching the target
(the whole latency of the request), a kill -9 leaves no receipt: the resumed run would
send those items again. So before each POST of a resource that is not listed first
(credit notes, links, paybacks, ...), its externalIds are appended to a sidecar file,
`<receipts_path>.sending`, and made durable. A later run reads it: an item marked there
without a receipt was on the wire when a run died, and is *uncertain*. Leanpay may hold
it: links are confirmed from the listing (inside their invoices); the others cannot be
asked and are set aside as rejected, never sent twice. The sidecar is compacted at each
start to the marks still uncertain.

Why JSON lines, appended and fsync'd once per acknowledged batch, rather than SQLite:
one writer (this run), readers that are often not Python (a warehouse `COPY`, `jq`,
tap-jsonl), and under kill -9 an append-only file loses at most the batch being written:
a last line without its newline, which the next run cuts off before appending. The
receipts of a batch are on disk before the STATE that covers it is written, so a resumed
run either finds them or re-reads the records they came from.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from target_leanpay.leanpay.errors import ConfigError, TargetLeanpayError
from target_leanpay.output.runmark import RunMark
from target_leanpay.store.store import Earlier, PromisesDamaged

logger = logging.getLogger("target-leanpay")

Pair = tuple[str, str]
"""(externalId, Leanpay id) of one acknowledged item."""


class Receipt(msgspec.Struct, frozen=True):
    """One line of the receipts file."""

    resource: str
    externalId: str  # noqa: N815 - Leanpay's name
    id: str
    stream: str
    run_started: str
    tenantId: str | None = None  # noqa: N815 - Leanpay's name
    """The Leanpay tenant that acknowledged it (lines written before it was kept: None)."""
    sent: dict[str, Any] | None = None
    """The fields sent (`changes.kept`); None in lines written before they were kept."""


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Receipt).decode


class Sending(msgspec.Struct, frozen=True):
    """One line of the sidecar: the externalIds of one POST, written before it is sent."""

    resource: str
    externalIds: list[str]  # noqa: N815 - Leanpay's name
    run_started: str
    answered: bool = False
    """Leanpay refused the POST: none of its items is stored, the marks are lifted."""


_encode_sending = msgspec.json.Encoder().encode
_decode_sending = msgspec.json.Decoder(Sending).decode
SENDING_SUFFIX = ".sending"


class ReceiptsError(TargetLeanpayError):
    """The receipts file cannot be written: the items stay unsettled."""


class Receipts:
    """The receipts file of the run: read at start, appended to as Leanpay acknowledges."""

    def __init__(self, path: str | None, *, writable: bool, run: RunMark | None = None) -> None:
        """`writable` False (a dry run, a plan): the file is read, never written. `run`:
        whose start the receipts carry (the run's dead letters carry the same)."""
        self.path = self.where = path
        self.written = 0
        self._run_started = (run or RunMark.new()).started
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._sending: IO[bytes] | None = None
        self.sending_path = None if path is None else path + SENDING_SUFFIX
        self._uncertain: dict[str, set[str]] = {}
        if path is None:
            return
        try:
            if writable:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "ab")  # noqa: SIM115 - closed by close()
                _cut_torn_line(self._file, path)
            self._uncertain = self._read_uncertain()
            if writable:
                self._sending = self._compact_sending()
        except OSError as exc:
            self.close()
            raise ConfigError(f"receipts_path {path!r} cannot be opened: {exc.strerror}") from None
        except PromisesDamaged:
            self.close()
            raise

    def earlier(self, resource: str, tenant: str | None = None) -> Iterator[Earlier]:
        """(externalId, id, fields sent) of every receipt of `resource` in the file (earlier
        runs), oldest first: a later line of the same externalId supersedes it. With
        `tenant`, none that names another tenant (a receipts file is one tenant's)."""
        if self.path is None or not os.path.exists(self.path):
            return
        with open(self.path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.endswith(b"\n"):
                    continue  # torn by a killed run (see _cut_torn_line): not a receipt
                try:
                    receipt = _decode(line)
                except msgspec.DecodeError as exc:
                    raise PromisesDamaged(
                        f"receipts {self.path} line {number} is not a receipt ({exc}); "
                        "target-leanpay writes that file itself: restore it or start a new one"
                    ) from None
                if receipt.resource == resource and (
                    tenant is None or receipt.tenantId in (None, tenant)
                ):
                    sent = None if receipt.sent is None else _encode(receipt.sent)
                    yield receipt.externalId, receipt.id, sent

    def uncertain(self, resource: str) -> set[str]:
        """The externalIds of `resource` an earlier run was sending when it died: marked
        on the wire, and never acknowledged."""
        return self._uncertain.get(resource, set())

    def mark_sending(self, resource: str, external_ids: Sequence[str]) -> None:
        """Before a POST: note its items durably, so that a run that resumes after this one
        dies knows they may be in Leanpay."""
        self._append_sending(Sending(resource, list(external_ids), self._run_started))

    def refused(self, resource: str, external_ids: Sequence[str]) -> None:
        """Leanpay refused a POST (a 4xx): its items are not stored, lift their marks. Not
        made durable: a lost line only leaves them uncertain, the safe side."""
        self._append_sending(
            Sending(resource, list(external_ids), self._run_started, answered=True), sync=False
        )

    def _append_sending(self, sending: Sending, *, sync: bool = True) -> None:
        if self._sending is None or not sending.externalIds:
            return
        line = _encode_sending(sending) + b"\n"
        with self._lock:
            if self._sending is None:
                raise ReceiptsError(f"receipts {self.sending_path}: the run is over")
            try:
                self._sending.write(line)
                self._sending.flush()
                if sync:
                    os.fsync(self._sending.fileno())
            except OSError as exc:
                raise ReceiptsError(
                    f"Cannot write {self.sending_path} ({exc.strerror}), where the items "
                    "about to be sent are noted first; nothing more is sent"
                ) from None

    def _read_uncertain(self) -> dict[str, set[str]]:
        """Marked on the wire by earlier runs, minus what has a receipt."""
        assert self.path is not None and self.sending_path is not None
        marked: dict[str, set[str]] = {}
        if not os.path.exists(self.sending_path):
            return marked
        with open(self.sending_path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.endswith(b"\n"):
                    continue  # torn by a kill: its POST never started
                try:
                    sending = _decode_sending(line)
                except msgspec.DecodeError as exc:
                    raise PromisesDamaged(
                        f"{self.sending_path} line {number} is not a sending mark ({exc}); "
                        "target-leanpay writes that file itself: restore it (or delete the "
                        "line, if you know what Leanpay holds of its items)"
                    ) from None
                ids = marked.setdefault(sending.resource, set())
                if sending.answered:
                    ids.difference_update(sending.externalIds)
                else:
                    ids.update(sending.externalIds)
        if marked and os.path.exists(self.path):
            with open(self.path, "rb") as lines:
                for line in lines:
                    if not line.endswith(b"\n"):
                        continue
                    try:
                        receipt = _decode(line)
                    except msgspec.DecodeError:
                        continue  # reported by `earlier`
                    marked.get(receipt.resource, set()).discard(receipt.externalId)
        return {resource: ids for resource, ids in marked.items() if ids}

    def _compact_sending(self) -> IO[bytes]:
        """Rewrite the sidecar with only the marks still uncertain (atomically), and open
        it for this run's marks."""
        assert self.sending_path is not None
        fresh = self.sending_path + ".new"
        with open(fresh, "wb") as out:
            for resource, ids in sorted(self._uncertain.items()):
                line = Sending(resource, sorted(ids), self._run_started)
                out.write(_encode_sending(line) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(fresh, self.sending_path)
        _sync_folder(self.sending_path)
        return open(self.sending_path, "ab")

    def record(
        self,
        stream: str,
        resource: str,
        acknowledged: Sequence[Pair],
        tenant: str | None = None,
        sent: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Append the receipts of one acknowledged batch (or update), of `tenant` as
        Leanpay's answer names it, and make them durable. `sent`: the fields sent, by
        externalId (`changes.kept`)."""
        if self._file is None or not acknowledged:
            return
        get = (sent or {}).get
        run = self._run_started
        lines = b"".join(
            _encode(
                Receipt(resource, external_id, leanpay_id, stream, run, tenant, get(external_id))
            )
            + b"\n"
            for external_id, leanpay_id in acknowledged
        )
        with self._lock:
            if self._file is None:
                raise ReceiptsError(f"receipts {self.path}: the run is over")
            try:
                self._file.write(lines)
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as exc:
                raise ReceiptsError(
                    f"Cannot write the receipts file {self.path} ({exc.strerror}); the "
                    f"{len(acknowledged)} {resource} Leanpay just acknowledged stay unsettled "
                    "(STATE stops before them)"
                ) from None
            self.written += len(acknowledged)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            for file in (self._file, self._sending):
                if file is not None:
                    file.close()
            self._file = self._sending = None


def _sync_folder(path: str) -> None:
    """Make a rename in `path`'s folder durable."""
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _cut_torn_line(file: IO[bytes], path: str) -> None:
    """Drop a last line without its newline: a batch a killed run was writing. Its items
    were never covered by a STATE, so the run that resumes re-reads their records."""
    size = file.seek(0, os.SEEK_END)
    if size == 0:
        return
    with open(path, "rb") as reader:
        reader.seek(max(0, size - 1))
        if reader.read(1) == b"\n":
            return
        keep = 0
        block = 1 << 16
        end = size
        while end > 0 and not keep:
            start = max(0, end - block)
            reader.seek(start)
            newline = reader.read(end - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
            end = start
    file.truncate(keep)
    logger.warning(
        "receipts %s: a last line without its end (written by a run that was killed) was "
        "removed; its records were not covered by STATE and are read again",
        path,
    )
