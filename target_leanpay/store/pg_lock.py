"""The tenant lock in PostgreSQL: one run per tenant at a time, across machines.

Session advisory locks, on the store's own connection: a process that dies closes its
connection and PostgreSQL drops its locks at once. A machine that dies (or is cut off)
closes nothing: PostgreSQL keeps its session until TCP keepalives find it gone. The
store's connection asks the server to probe after 60 s of silence, 6 times 10 s apart
(`pg_store.SERVER_KEEPALIVES`): a dead holder's lock goes within **2 minutes**.

The other side of that bound: a holder cut off from PostgreSQL but not from Leanpay must
stop sending before its lock goes. While a lock is held, a heartbeat asks the server
every 10 s; the connection gives up on a silent server after 30 s (`tcp_user_timeout`),
so a holder knows within 40 s that its lock may be gone: it says so, and stops the run
(no new request; STATE stays behind what the store recorded).

The host's and the tenant's locks (`store.TenantLock`) are keyed by a 64-bit hash of the
store's schema, the host and the tenant.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

import psycopg

from target_leanpay.config.store_location import StoreError
from target_leanpay.store import store
from target_leanpay.store.pg_session import Session, one_line
from target_leanpay.store.store import TenantKey

logger = logging.getLogger("target-leanpay.replay")

HEARTBEAT_SECONDS = 10.0
"""How often a holder checks that its connection, hence its lock, is still alive."""


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for `parts` (a collision only makes one run wait)."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgTenantLock(store.TenantLock):
    """`store.TenantLock` on advisory locks of the store's connection."""

    def __init__(
        self,
        session: Session,
        *,
        schema: str,
        host: str,
        stopping: threading.Event,
        lost: Callable[[str], None],
    ) -> None:
        """`lost(message)`: called once when the connection fails while a lock is held."""
        super().__init__(stopping)
        self._connection, self._where, self._guard = session
        self._schema = schema
        self._host = host
        self._lost = lost
        self._held: list[tuple[int, bool]] = []
        self._beating: threading.Event | None = None

    def _lock(self, tenant: TenantKey | None, *, shared: bool) -> tuple[Callable[[], bool], str]:
        names = (self._host,) if tenant is None else (tenant.host, tenant.tenant_id)
        key = lock_key(self._schema, *names)
        function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"

        def attempt() -> bool:
            try:
                with self._guard:
                    row = self._connection.execute(f"SELECT {function}(%s)", (key,)).fetchone()
            except psycopg.Error as failed:
                raise StoreError(
                    f"The store {self._where} failed while taking the tenant's lock: "
                    f"{one_line(failed)}"
                ) from None
            if row is None or not row[0]:
                return False
            self._held.append((key, shared))
            if self._beating is None:  # one heartbeat for the locks held
                beating = self._beating = threading.Event()
                threading.Thread(
                    target=self._heartbeat, args=(beating,), name="leanpay-store-lock", daemon=True
                ).start()
            return True

        return attempt, f"store {self._where}"

    def _heartbeat(self, beating: threading.Event) -> None:
        while not beating.wait(HEARTBEAT_SECONDS):
            try:
                with self._guard:
                    self._connection.execute("SELECT 1")
            except psycopg.Error as failed:
                if beating.is_set():
                    return  # released meanwhile: nothing was lost
                self._lost(
                    f"The store {self._where} stopped answering while this run held the "
                    f"tenant's lock ({one_line(failed)}): the lock may be "
                    "another run's by now, so this run stops; STATE stays behind what "
                    "the store recorded"
                )
                return

    def release(self) -> None:
        """Let another run load the tenant (a lost connection released it already)."""
        if self._beating is not None:
            self._beating.set()
            self._beating = None
        held, self._held = self._held, []
        if self._connection.closed:
            return
        for key, shared in reversed(held):
            function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
            try:
                with self._guard:
                    self._connection.execute(f"SELECT {function}(%s)", (key,))
            except psycopg.Error:
                return  # the session is gone, and its locks with it
