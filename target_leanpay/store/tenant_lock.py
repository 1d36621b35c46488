"""The folder store's tenant lock (`store.TenantLock`): OS file locks beside the caches.

Two runs loading one tenant (an hourly job that overran) must not both send: each would
list before the other's invoices exist and send them again. The second run waits for the
first (the OS drops a dead process's lock, so a kill -9 never leaves it held) rather than
stopping: the tap's records are kept, and it then lists what the first one sent (a
delta) and sends only the rest. A tenant whose listing is empty cannot be named yet: its
run holds the host's lock exclusively, so two runs into two different empty tenants of
one host wait for each other (rare, and only for a first load).
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from target_leanpay.store import store
from target_leanpay.store.store import TenantKey, safe_name


class TenantLock(store.TenantLock):
    """File locks `<host>.lock` and `<host>-<tenantId>.lock`: released by `release`, or
    by the process's end."""

    def __init__(self, folder: Path, host: str, *, stopping: threading.Event) -> None:
        """`host`: `store.host_of` the API URL (one tenant, one lock, however written)."""
        super().__init__(stopping)
        self._folder = folder
        self._host = safe_name(host)
        self._held: list[IO[bytes]] = []

    def _lock(self, tenant: TenantKey | None, *, shared: bool) -> tuple[Callable[[], bool], str]:
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # beside the index
        path = self._folder / ((self._host if tenant is None else tenant.stem) + ".lock")
        file = open(path, "ab")  # noqa: SIM115 - held until release()
        self._held.append(file)
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB

        def attempt() -> bool:
            try:
                fcntl.flock(file.fileno(), mode)
            except BlockingIOError:
                return False
            return True

        return attempt, f"lock {path}"

    def release(self) -> None:
        for file in reversed(self._held):
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
            finally:
                file.close()
        self._held = []
