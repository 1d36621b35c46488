"""The folder store's tenant lock (`store.TenantLock`): an OS file lock per tenant.

Two runs loading one tenant (an hourly job that overran) must not both send: each would
list before the other's invoices exist and send them again. The second run *waits* for
the first (logged once at INFO, with the lock file); the wait ends with the first run
(the OS drops a dead process's lock, so a kill -9 never leaves it held), or with a
signal. Waiting rather than stopping: the tap's records are kept, and the second run
then lists what the first one sent (a delta) and sends only the rest.

The tenant is only known once an invoice shows its `tenantId`. A tenant whose listing
is empty cannot be named yet: such a run takes the host's lock exclusively, for the
whole run; a run that knows its tenant takes the host's lock shared, then the tenant's
exclusively (always in that order: no deadlock). Two runs into two different empty
tenants of one host therefore wait for each other: rare, and only for a first load.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path
from typing import IO

from target_leanpay.leanpay.errors import Stopped
from target_leanpay.store.store import TenantKey, safe_name

logger = logging.getLogger("target-leanpay.replay")

POLL_SECONDS = 0.2
"""How often a waiting run tries the lock again (and looks at its stop flag)."""


class TenantLock:
    """The locks one run holds: released by `release`, or by the process's end."""

    def __init__(self, folder: Path, host: str, *, stopping: threading.Event) -> None:
        """`host`: `store.host_of` the API URL (one tenant, one lock, however written)."""
        self._folder = folder
        self._host = safe_name(host)
        self._stopping = stopping
        self._held: list[IO[bytes]] = []
        self.waited = False

    def hold_tenant(self, key: TenantKey) -> bool:
        """Hold the host's lock shared and the tenant `key`'s exclusively; True if
        another run held them first (what was listed before is stale)."""
        self.release()
        waited = self._take(
            self._host + ".lock", fcntl.LOCK_SH, "a new Leanpay tenant of this host"
        )
        return self._take(key.stem + ".lock", fcntl.LOCK_EX, "this Leanpay tenant") or waited

    def hold_new_tenant(self) -> bool:
        """Hold the host's lock exclusively (a tenant that lists nothing yet)."""
        self.release()
        return self._take(self._host + ".lock", fcntl.LOCK_EX, "a Leanpay tenant of this host")

    def _take(self, name: str, mode: int, what: str) -> bool:
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # beside the index
        path = self._folder / name
        file = open(path, "ab")  # noqa: SIM115 - held until release()
        self._held.append(file)
        waited = False
        while True:
            try:
                fcntl.flock(file.fileno(), mode | fcntl.LOCK_NB)
                return waited
            except BlockingIOError:
                pass
            if not waited:
                waited = self.waited = True
                logger.info(
                    "Another target-leanpay run is loading %s (lock %s): waiting for it to "
                    "end before listing and sending",
                    what,
                    path,
                )
            if self._stopping.wait(POLL_SECONDS):
                raise Stopped("the run is stopping: it was waiting for another run to end")

    def release(self) -> None:
        """Let another run load the tenant."""
        for file in reversed(self._held):
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_UN)
            finally:
                file.close()
        self._held = []
