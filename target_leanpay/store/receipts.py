"""Receipts as JSON lines: the format both stores export to `receipts_path`, the folder
store keeps its promises in, and earlier versions kept in `receipts_path` itself.

`receipts_path`, when set, is an export (`open_export`), appended once the store holds
each receipt, never read: the store is the truth. When the store holds no promise of the
host yet, an earlier version's file found there (and its `.sending` sidecar) is read into
the store, once (`legacy_promises`, each store's `_adopt`).

Each acknowledged item is one line:
`{"resource", "externalId", "id", "stream", "run_started", "tenantId", "sent"}`, `sent`
holding the fields sent (changes.py's `kept` form: dates as dates, money as integers,
references as the Leanpay ids they resolved to). A link or payback updated in place
(updates.py) gets a newer line with the same id; the newest line of a (resource,
externalId) wins. Lines written before `sent` existed have none: their records compare
as "unknown", never as changed.

Why JSON lines, appended and fsync'd once per acknowledged batch, rather than SQLite: one
writer (the run holding the store), readers that are often not Python (a warehouse
`COPY`, `jq`, tap-jsonl), and under kill -9 an append-only file loses at most the batch
being written: a last line without its newline, cut off before the next append
(`JsonLines`). Any line that ends whole and cannot be read is damage (`PromisesDamaged`,
one line naming the file), never skipped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

import msgspec

from target_leanpay.leanpay.errors import ConfigError, TargetLeanpayError
from target_leanpay.store.store import PromisesDamaged

logger = logging.getLogger("target-leanpay")


class Receipt(msgspec.Struct, frozen=True):
    """One line of a receipts file."""

    resource: str
    externalId: str  # noqa: N815 - Leanpay's name
    id: str
    stream: str
    run_started: str
    tenantId: str | None = None  # noqa: N815 - Leanpay's name
    """The Leanpay tenant that acknowledged it (lines written before it was kept: None)."""
    sent: dict[str, Any] | None = None
    """The fields sent (`changes.kept`); None in lines written before they were kept."""
    run_id: str | None = None
    """The run that received it (RunMark.id): only its own receipt clears a run's mark."""


encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Receipt).decode


class LegacyMarks(msgspec.Struct, frozen=True):
    """One line of the `<receipts_path>.sending` sidecar of earlier versions: the
    externalIds of one POST (`answered`: refused, the marks lifted)."""

    resource: str
    externalIds: list[str]  # noqa: N815 - Leanpay's name
    run_started: str
    answered: bool = False


_decode_legacy_marks = msgspec.json.Decoder(LegacyMarks).decode
LEGACY_SENDING_SUFFIX = ".sending"


class ReceiptsError(TargetLeanpayError):
    """A promise cannot be written: the items stay unsettled (STATE stops before them)."""


_RESOURCE = b'{"resource":"'
"""How every line `encode` writes begins: a receipt's resource is its first field."""


def receipts(
    path: str, tenant: str | None = None, resource: str | None = None
) -> Iterator[Receipt]:
    """Every receipt of the file at `path` (none if it does not exist), oldest first; with
    `tenant`, none that names another tenant; with `resource`, lines that begin with
    another resource are skipped undecoded (loading credit notes does not decode every
    invoice's receipt). PromisesDamaged if a whole line read is not one."""
    wanted = None if resource is None else _RESOURCE + resource.encode() + b'"'
    for number, line in whole_lines(path):
        if wanted is not None and line.startswith(_RESOURCE) and not line.startswith(wanted):
            continue
        try:
            receipt = _decode(line)
        except msgspec.DecodeError as exc:
            raise PromisesDamaged(
                f"receipts {path} line {number} is not a receipt ({exc}); target-leanpay "
                "writes that file itself: restore it"
            ) from None
        if tenant is None or receipt.tenantId in (None, tenant):
            yield receipt


def whole_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(number, line) of each line of `path` that ends whole (a last one without its
    newline was being written by a killed run: it is nothing yet)."""
    try:
        lines = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with lines:
        for number, line in enumerate(lines, 1):
            if line.endswith(b"\n"):
                yield number, line


def legacy_promises(path: str) -> tuple[list[Receipt], dict[str, set[str]]]:
    """What an earlier version kept in `receipts_path` itself: its receipts, and the
    externalIds its `.sending` sidecar marked without a receipt (by resource)."""
    kept = list(receipts(path))
    marked: dict[str, set[str]] = {}
    sidecar = path + LEGACY_SENDING_SUFFIX
    for number, line in whole_lines(sidecar):
        try:
            marks = _decode_legacy_marks(line)
        except msgspec.DecodeError as exc:
            raise PromisesDamaged(
                f"{sidecar} line {number} is not a sending mark ({exc}); restore it"
            ) from None
        ids = marked.setdefault(marks.resource, set())
        if marks.answered:
            ids.difference_update(marks.externalIds)
        else:
            ids.update(marks.externalIds)
    for receipt in kept:
        marked.get(receipt.resource, set()).discard(receipt.externalId)
    return kept, {resource: ids for resource, ids in marked.items() if ids}


class JsonLines:
    """An append-only file of JSON lines, each append durable (fsync'd) on return. A last
    line without its newline (a killed run's) is cut off on opening and before each
    append (else the next would be glued to it), under the file's flock: several runs of
    a host append to one file. The file is opened at once (an unusable path fails before
    anything is sent), then held only from the first append: a run that writes nothing
    holds nothing."""

    def __init__(self, path: str, what: str) -> None:
        """`what` names the file in messages ("the receipts", ...). OSError if it cannot
        be opened."""
        self.path = path
        self._what = what
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._over = False
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "ab") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)  # not while another run appends
            _cut_torn_line(file, path)

    def append(self, lines: bytes, *, sync: bool = True) -> None:
        """Append `lines` (each ending in a newline), durably unless `sync` is False."""
        with self._lock:
            if self._over:
                raise ReceiptsError(f"{self._what} {self.path}: the run is over")
            try:
                if self._file is None:
                    self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
                try:
                    _cut_torn_line(self._file, self.path)
                    self._file.write(lines)
                    self._file.flush()
                    if sync:
                        os.fsync(self._file.fileno())
                finally:
                    fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            except OSError as exc:
                raise ReceiptsError(
                    f"Cannot write {self._what} {self.path} ({exc.strerror}); what it was to "
                    "hold stays unsettled (STATE stops before it)"
                ) from None

    def close(self) -> None:
        """Close the file (what was appended is durable already)."""
        with self._lock:
            self._over = True
            if self._file is not None:
                self._file.close()
            self._file = None


def lines(
    stream: str,
    resource: str,
    acknowledged: Sequence[tuple[str, str]],
    tenant: str | None,
    sent: Mapping[str, dict[str, Any]],
    *,
    run_started: str,
    run_id: str,
) -> bytes:
    """The receipts of one acknowledged batch as JSON lines: the folder store's file and
    the export of both stores hold the same."""
    return b"".join(
        encode(Receipt(resource, e, i, stream, run_started, tenant, sent.get(e), run_id)) + b"\n"
        for e, i in acknowledged
    )


def open_export(path: str) -> JsonLines:
    """`receipts_path`, the export both stores append their receipts to."""
    try:
        return JsonLines(path, "the receipts export")
    except OSError as exc:
        raise ConfigError(f"receipts_path {path!r} cannot be opened: {exc.strerror}") from None


def log_adopted(legacy: str, kept: list[Receipt], marked: dict[str, set[str]], to: str) -> None:
    """Say that the promises an earlier version kept in `legacy` are read into `to`."""
    logger.info(
        "receipts_path %s was read into the store (%d receipts, %d items marked on the "
        "wire): the store (%s) is the truth from now on, and receipts_path an export%s",
        legacy,
        len(kept),
        sum(len(ids) for ids in marked.values()),
        to,
        f"; {legacy}.sending is no longer used"
        if os.path.exists(legacy + LEGACY_SENDING_SUFFIX)
        else "",
    )


def replace_durably(path: str, content: bytes) -> None:
    """Write `path` whole, atomically: a kill leaves the old file or the new one."""
    fresh = path + ".new"
    with open(fresh, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.replace(fresh, path)
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
        "%s: a last line without its end (written by a run that was killed) was removed; "
        "its records were not covered by STATE and are read again",
        path,
    )
