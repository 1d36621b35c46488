"""The PROMISES of the folder store (`store.Promises`): receipts and sending marks of one
API host, two files of the store folder beside its caches and locks.

* `<host>.receipts.jsonl`: every item Leanpay acknowledged (receipts.py's lines),
  appended and fsync'd before the STATE that covers it;
* `<host>.sending.jsonl`: before each POST of a resource that is not listed first, one
  line per externalId, fsync'd before the POST; a refusal appends lines that lift them.
  At start, the marks without a receipt are what an earlier run was sending when it
  died (`uncertain`), and the file is rewritten to those, one line each: deleting a line
  releases its item (README, "Releasing an uncertain item").

Every run that writes holds `<host>.promises.lock` (flock) for its lifetime: alone
(exclusive) it may rewrite the marks and read in an earlier version's file, then it
shares the lock; a run started while another one of the host is running shares it at
once, and appends to the files the others append to, never replaces them.

Per host, not per tenant, as in PostgreSQL: a run that loads only credit notes never
learns its tenant (nothing lists them), and still keeps its promises; each receipt
names its tenant, and `earlier` leaves out another tenant's. `receipts_path`: see
receipts.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from target_leanpay.config.store_location import StoreError
from target_leanpay.leanpay.errors import ConfigError
from target_leanpay.output.runmark import RunMark
from target_leanpay.store import receipts
from target_leanpay.store.receipts import JsonLines, legacy_promises, replace_durably
from target_leanpay.store.store import Earlier, PromisesDamaged, safe_name


class Mark(msgspec.Struct, frozen=True):
    """One line of the sending marks: an item about to be POSTed (`lifted`: refused)."""

    resource: str
    externalId: str  # noqa: N815 - Leanpay's name
    run_started: str
    lifted: bool = False
    run_id: str | None = None
    """The run that marked it (RunMark.id): only that run's receipt clears the mark."""


_encode = msgspec.json.Encoder().encode
_decode_mark = msgspec.json.Decoder(Mark).decode


def _each(marked: dict[str, set[str]]) -> Iterator[tuple[str, str]]:
    """(resource, externalId) of `marked`, in a stable order."""
    return ((resource, e) for resource, ids in sorted(marked.items()) for e in sorted(ids))


class FolderPromises:
    """`store.Promises` of one API host in the store folder (and the export, if any)."""

    def __init__(
        self, folder: Path, host: str, *, writable: bool, run: RunMark, export: str | None
    ) -> None:
        """`writable` False (a dry run, a plan): read, never written; a file of an earlier
        version is then read in place."""
        stem = safe_name(host)
        self.where = str(folder / f"{stem}.receipts.jsonl")
        self.marks_path = str(folder / f"{stem}.sending.jsonl")
        self.release = (
            f"delete the line naming its externalId from {self.marks_path} "
            "(README, Releasing an uncertain item)"
        )
        self._run_started = run.started
        self._run_id = run.id
        self._receipts: JsonLines | None = None
        self._marks: JsonLines | None = None
        self._export: JsonLines | None = None
        self._held: int | None = None
        """The descriptor holding `<host>.promises.lock` (module notes)."""
        self._read_from = self.where
        try:
            if not writable:
                legacy = self._legacy(export)
                self._read_from = legacy or self.where
                self._uncertain = legacy_promises(legacy)[1] if legacy else self._read_uncertain()
                return
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # externalIds: the user's
            self._held, alone = _hold(folder / f"{stem}.promises.lock")
            legacy = self._legacy(export)
            if legacy is not None and alone:
                self._adopt(legacy)
            self._uncertain = self._read_uncertain()
            if alone:
                # one line per uncertain item; the doubts are this run's now
                replace_durably(self.marks_path, self._lines(_each(self._uncertain)))
                fcntl.flock(self._held, fcntl.LOCK_SH)  # rewritten: others may append now
            self._marks = JsonLines(self.marks_path, "the sending marks")
            self._receipts = JsonLines(self.where, "the receipts")
            if export:
                self._export = receipts.open_export(export)
        except OSError as exc:
            self.close()
            raise StoreError(
                f"The store {folder} cannot be written ({exc.strerror}: {exc.filename})"
            ) from None
        except (PromisesDamaged, ConfigError):
            self.close()
            raise

    def earlier(self, resource: str, tenant: str | None = None) -> Iterator[Earlier]:
        for receipt in receipts.receipts(self._read_from, tenant, resource):
            if receipt.resource == resource:
                sent = None if receipt.sent is None else receipts.encode(receipt.sent)
                yield receipt.externalId, receipt.id, sent

    def record(
        self,
        stream: str,
        resource: str,
        acknowledged: Sequence[tuple[str, str]],
        tenant: str | None = None,
        sent: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        """Append the receipts of one acknowledged batch, durably, then to the export."""
        if self._receipts is None or not acknowledged:
            return
        lines = receipts.lines(
            stream,
            resource,
            acknowledged,
            tenant,
            sent or {},
            run_started=self._run_started,
            run_id=self._run_id,
        )
        self._receipts.append(lines)
        if self._export is not None:
            self._export.append(lines)

    def mark_sending(self, resource: str, external_ids: Sequence[str]) -> None:
        if self._marks is not None and external_ids:
            self._marks.append(self._lines((resource, e) for e in external_ids))

    def refused(self, resource: str, external_ids: Sequence[str]) -> None:
        if self._marks is not None and external_ids:
            lifted = self._lines(((resource, e) for e in external_ids), lifted=True)
            self._marks.append(lifted, sync=False)

    def uncertain(self, resource: str) -> set[str]:
        return self._uncertain.get(resource, set())

    def reread(self) -> None:
        self._uncertain = self._read_uncertain()

    def close(self) -> None:
        for file in (self._receipts, self._marks, self._export):
            if file is not None:
                file.close()
        if self._held is not None:
            os.close(self._held)  # the lock goes with it
            self._held = None

    def _legacy(self, export: str | None) -> str | None:
        """`receipts_path` when it is an earlier version's file not read in yet (the store
        holds no receipts file of the host): from then on it is only an export."""
        if export and os.path.isfile(export) and not os.path.exists(self.where):
            return export
        return None

    def _read_uncertain(self) -> dict[str, set[str]]:
        """Marked by earlier runs, minus what got its receipt from the run that marked it
        (another run's receipt of one externalId, say another tenant's of this host,
        says nothing of this mark)."""
        marked: dict[str, set[tuple[str, str | None]]] = {}
        for number, line in receipts.whole_lines(self.marks_path):
            try:
                mark = _decode_mark(line)
            except msgspec.DecodeError as exc:
                raise PromisesDamaged(
                    f"{self.marks_path} line {number} is not a sending mark ({exc}); "
                    "target-leanpay writes that file itself: restore it (or delete the "
                    "line, if you know what Leanpay holds of its item)"
                ) from None
            ids = marked.setdefault(mark.resource, set())
            if mark.lifted:
                ids.discard((mark.externalId, mark.run_id))
            else:
                ids.add((mark.externalId, mark.run_id))
        for resource, ids in marked.items():  # marks are rare: only their resources' lines
            for receipt in receipts.receipts(self.where, resource=resource) if ids else ():
                if receipt.resource == resource:
                    ids.discard((receipt.externalId, receipt.run_id))
        return {resource: {e for e, _ in ids} for resource, ids in marked.items() if ids}

    def _lines(self, items: Iterable[tuple[str, str]], *, lifted: bool = False) -> bytes:
        """This run's sending marks of (resource, externalId) `items`, one line each."""
        run, run_id = self._run_started, self._run_id
        return b"".join(_encode(Mark(r, e, run, lifted, run_id)) + b"\n" for r, e in items)

    def _adopt(self, legacy: str) -> None:
        """Read the promises an earlier version kept in `receipts_path` into the store,
        once: the marks first, the receipts file last (its existence says it is done)."""
        kept, marked = legacy_promises(legacy)
        replace_durably(self.marks_path, self._lines(_each(marked)))
        replace_durably(self.where, b"".join(receipts.encode(r) + b"\n" for r in kept))
        receipts.log_adopted(legacy, kept, marked, self.where)


def _hold(path: Path) -> tuple[int, bool]:
    """A flock on `path`, held until its descriptor closes (or the process dies):
    exclusive, and True, when no other run holds it; else shared beside the others
    (waiting only while a starting run rewrites the marks), and False."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            return descriptor, False
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(descriptor)
        raise
    return descriptor, True
