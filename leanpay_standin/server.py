"""`StandIn`: the stand-in served from a daemon thread, with a Python API for tests.

Tests run the real target CLI as a subprocess against `.url`, then inspect what arrived
through this object (same process, no HTTP round trip needed for inspection).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from leanpay_standin.api import BATCHES
from leanpay_standin.app import API_PREFIX, StandInApp
from leanpay_standin.http_server import LOOPBACK, StandInServer
from leanpay_standin.state import Settings, State
from leanpay_standin.store import DuplicateMode, ListOrder

STOP_POLL_SECONDS = 0.01
"""How often the serving thread looks whether `stop` was called: `stop` waits up to this
long, once per test that runs a stand-in."""


class StandIn:
    """A local Leanpay on 127.0.0.1; `with StandIn() as leanpay: ... leanpay.url ...`.

    The settings (see `state.Settings`) can be changed while running with `configure`:
    duplicates, latency_ms, page_size (default 25), order (of `GET /invoices`: "oldest"
    first, the default, "newest" first or by "id"), log_bodies, rate_limit (requests per
    second, None or 0 = unlimited), rate_burst (None = max(1, rate_limit)), created_at
    ("millisecond", the default, or "second": see `clock`), date_zone (None, or the zone
    whose midnight invoice and credit-note dates are echoed as, e.g. "Europe/Paris") and
    omit_fields (fields left out of list rows and finds, e.g. ["creditNoteLinks"]).
    """

    def __init__(
        self,
        api_key: str = "test-key",
        duplicates: DuplicateMode = "accept",
        latency_ms: float = 0,
        page_size: int = 25,
        *,
        port: int = 0,
        verbose: bool = False,
        log_bodies: bool = True,
        rate_limit: float | None = None,
        rate_burst: float | None = None,
        order: ListOrder = "oldest",
    ) -> None:
        settings = Settings()
        settings.update(
            {
                "duplicates": duplicates,
                "latency_ms": latency_ms,
                "page_size": page_size,
                "order": order,
                "log_bodies": log_bodies,
                "rate_limit": rate_limit,
                "rate_burst": rate_burst,
            }
        )
        self.state = State(api_key=api_key, settings=settings)
        self._app = StandInApp(self.state, verbose=verbose)
        self._port = port
        self._server: StandInServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 (port 0 = any free port) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        try:
            server = StandInServer(self._port, self._app)
        except SystemExit as error:  # werkzeug exits when the port is taken
            raise OSError(f"cannot listen on {LOOPBACK}:{self._port}") from error
        self._server = server
        self.state.stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": STOP_POLL_SECONDS},
            name=f"leanpay-standin:{server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close client connections; idempotent. Requests held by a
        delay or the latency are let go at once (a test's teardown never waits them out)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.state.stopping.set()
        server.shutdown()
        thread.join(timeout=5)
        server.close_connections()
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return self._server.port

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:<port>`; the control API is under `/_control`."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL to give the target (`http://127.0.0.1:<port>/v1/public`)."""
        return self.root_url + API_PREFIX

    @property
    def connections_opened(self) -> int:
        """Client connections accepted so far: shows whether clients reuse connections."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        return self._server.connections_opened

    # -- control ---------------------------------------------------------------------

    def add_faults(self, *rules: Mapping[str, Any]) -> None:
        """Append fault rules (see `leanpay_standin.faults`); ValueError if one is malformed."""
        self.state.faults.add(rules)

    def faults(self) -> list[dict[str, Any]]:
        """The rules with their use counts."""
        return self.state.faults.describe()

    def configure(self, **settings: Any) -> None:
        """Change settings while running (names as in `__init__`); ValueError if one is bad."""
        self.state.settings.update(settings)

    def reset(self) -> None:
        """Clear stored objects, the request journal and fault rules; refill the bucket.

        The tenant id stays and createdAt never goes back (see `empty_tenant`)."""
        self.state.reset()

    def seed_invoices(
        self, n: int, client_id: str | None = None, *, batch: int | None = None
    ) -> list[str]:
        """Store `n` invoices `seed-000001`, ... as previously imported; return externalIds.

        `batch`: as a target filled the tenant, each `batch` invoices sharing one createdAt
        (distinct between batches; `seed_invoices(200_000, batch=100)`).
        """
        return self.state.store.seed_invoices(n, client_id, batch)

    def delete(
        self,
        resource_name: str = "invoices",
        *,
        ids: Collection[str] = (),
        external_ids: Collection[str] = (),
    ) -> int:
        """Delete objects as a Leanpay user might in the UI (journaled); return how many.

        Every object holding one of `external_ids` goes. ValueError, deleting nothing, if
        an id or externalId is not stored or neither is given.
        """
        return self.state.delete(resource_name, ids, external_ids)

    def empty_tenant(self) -> int:
        """Delete every object of every resource, as when a tenant is emptied in Leanpay
        (journaled); return how many. Unlike `reset`, the journal, fault rules and seed
        numbering go on; like it, the tenant id stays and createdAt never goes back."""
        return self.state.empty_tenant()

    def store_late(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Store invoices as another writer's long transaction would: invisible to
        `GET /invoices` and its total (and to finds and duplicate checks) until
        `reveal_late`, with the createdAt of now (journaled; validated as a batch)."""
        return self.state.store_late(items)

    def reveal_late(self) -> int:
        """Commit the late invoices: listed from now on, at their createdAt's place."""
        return self.state.reveal_late()

    # -- observation -----------------------------------------------------------------

    def requests(self) -> list[dict[str, Any]]:
        """Every API request received, in arrival order (see `journal`)."""
        return self.state.journal.entries()

    def store(self, resource_name: str = "invoices") -> list[dict[str, Any]]:
        """The objects of a resource, as the API shows them (dates of invoices and credit
        notes as date-times, links and paybacks nested in their documents), oldest first
        whatever the listing's `order`: creation order, except that objects sharing a
        createdAt (created_at="second") come by id; late ones are left out until
        revealed."""
        return self.state.store[resource_name].objects()[0]

    def posted_items(self, resource_name: str = "invoices") -> list[dict[str, Any]]:
        """Items of the batch POSTs of a resource that were answered 2xx, in order received.

        Needs `log_bodies=True` (the default).
        """
        batch = BATCHES[resource_name]
        items: list[dict[str, Any]] = []
        for entry in self.requests():
            status = entry["status"]
            if (
                entry["method"] == "POST"
                and entry["path"] == batch.path
                and status is not None
                and 200 <= status < 300
                and isinstance(entry["body"], dict)
            ):
                items.extend(entry["body"][batch.body_key])
        return items
