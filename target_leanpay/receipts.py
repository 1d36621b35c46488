"""Receipts: a durable record of every item Leanpay acknowledged, kept across runs.

With `receipts_path` set, each acknowledged item becomes one JSON line:
`{"resource", "externalId", "id", "stream", "run_started"}`. Later runs read the file:

* to resolve references by externalId (a link's `creditNoteExternalId`): credit notes
  cannot be listed, so the receipts are the only place their Leanpay ids are known;
* to recognise what this target created before: an externalId with a receipt is never
  sent again, whatever the resource (it is "already present"). That narrows the gap of
  resources without a list endpoint to the moment between Leanpay's answer and the
  receipt being on disk.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import msgspec

from target_leanpay.errors import ConfigError, TargetLeanpayError
from target_leanpay.runmark import RunMark

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


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Receipt).decode


class ReceiptsError(TargetLeanpayError):
    """The receipts file cannot be written: the items stay unsettled."""


class Receipts:
    """The receipts file of the run: read at start, appended to as Leanpay acknowledges."""

    def __init__(self, path: str | None, *, writable: bool, run: RunMark | None = None) -> None:
        """`writable` False (a dry run, a plan): the file is read, never written. `run`:
        whose start the receipts carry (the run's dead letters carry the same)."""
        self.path = path
        self.written = 0
        self._run_started = (run or RunMark.new()).started
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        if path is not None and writable:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "ab")  # noqa: SIM115 - closed by close()
                _cut_torn_line(self._file, path)
            except OSError as exc:
                raise ConfigError(
                    f"receipts_path {path!r} cannot be opened: {exc.strerror}"
                ) from None

    def earlier(self, resource: str) -> Iterator[Pair]:
        """(externalId, id) of every receipt of `resource` in the file (earlier runs)."""
        if self.path is None or not os.path.exists(self.path):
            return
        with open(self.path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.endswith(b"\n"):
                    continue  # torn by a killed run (see _cut_torn_line): not a receipt
                try:
                    receipt = _decode(line)
                except msgspec.DecodeError as exc:
                    raise ConfigError(
                        f"receipts {self.path} line {number} is not a receipt ({exc}); "
                        "target-leanpay writes that file itself: restore it or start a new one"
                    ) from None
                if receipt.resource == resource:
                    yield receipt.externalId, receipt.id

    def record(self, stream: str, resource: str, acknowledged: Sequence[Pair]) -> None:
        """Append the receipts of one acknowledged batch and make them durable."""
        if self._file is None or not acknowledged:
            return
        lines = b"".join(
            _encode(Receipt(resource, external_id, leanpay_id, stream, self._run_started)) + b"\n"
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
            if self._file is not None:
                self._file.close()
                self._file = None


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
