"""The folder store (`store.Store`): the `store` setting's folder on the local disk.

* the CACHE: one SQLite file per tenant (`tenant_index.py`, `<host>-<tenantId>.sqlite`);
* the lock: OS file locks beside them (`tenant_lock.py`);
* the PROMISES: `<host>.receipts.jsonl` and `<host>.sending.jsonl`
  (`folder_promises.py`), the one truth; `receipts_path`, when set, is their export;
* facts about a tenant: `<host>-<tenantId>.facts.json`, replaced atomically.

The folder is made private (0700) when first written: externalIds are the user's data.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

from target_leanpay.output.runmark import RunMark
from target_leanpay.store.folder_promises import FolderPromises
from target_leanpay.store.receipts import replace_durably
from target_leanpay.store.store import InvoiceCache, PromisesDamaged, TenantKey, TenantLock
from target_leanpay.store.tenant_index import TenantIndex
from target_leanpay.store.tenant_lock import TenantLock as FileLock


class FolderStore:
    """A store in a folder of the local disk."""

    def __init__(self, folder: Path, *, host: str, run: RunMark, export: str | None = None) -> None:
        """`host`: the API host (`store.host_of`) whose promises this run keeps; `run`:
        the mark its receipts carry; `export`: `receipts_path`, written as well."""
        self.folder = folder
        self.where = str(folder)
        self._host = host
        self._export = export
        self._run = run

    def cache(self, key: TenantKey, *, writable: bool) -> InvoiceCache:
        return TenantIndex(self.folder, key, writable=writable)

    def promises(self, *, writable: bool) -> FolderPromises:
        return FolderPromises(
            self.folder, self._host, writable=writable, run=self._run, export=self._export
        )

    def lock(self, host: str, *, stopping: threading.Event) -> TenantLock:
        return FileLock(self.folder, host, stopping=stopping)

    def close(self) -> None:
        """Nothing to close: the cache, the promises and the lock close themselves."""

    def fact(self, key: TenantKey, name: str) -> str | None:
        """A fact about tenant `key`; PromisesDamaged if its file cannot be read."""
        value = self._facts(key).get(name)
        return value if isinstance(value, str) else None

    def keep_fact(self, key: TenantKey, name: str, value: str) -> None:
        facts = {**self._facts(key), name: value}
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_durably(str(self._facts_path(key)), json.dumps(facts, sort_keys=True).encode())

    def _facts_path(self, key: TenantKey) -> Path:
        return self.folder / f"{key.stem}.facts.json"

    def _facts(self, key: TenantKey) -> dict[str, object]:
        path = self._facts_path(key)
        with contextlib.suppress(FileNotFoundError):
            try:
                facts = json.loads(path.read_bytes())
            except ValueError as exc:
                raise PromisesDamaged(
                    f"{path} cannot be read ({exc}); target-leanpay writes that file itself: "
                    "restore it, or delete it to learn its facts again"
                ) from None
            if not isinstance(facts, dict):
                raise PromisesDamaged(f"{path} holds no facts; restore it, or delete it")
            return facts
        return {}
