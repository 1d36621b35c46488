"""Run: the objects one target run shares between its sinks and sending threads."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from target_leanpay.checkpoint import Checkpoints, State, write_to_stdout
from target_leanpay.deadletter import DeadLetters
from target_leanpay.dispatcher import Dispatcher, Pending, Sender
from target_leanpay.http_process import HttpProcess
from target_leanpay.interrupt import StopFlag
from target_leanpay.progress import Progress
from target_leanpay.reader import NumberedReader
from target_leanpay.replay import ReplayGuard
from target_leanpay.resources import RESOURCES, Resource
from target_leanpay.settings import DEFAULT_RESOURCE, Settings

logger = logging.getLogger("target-leanpay")

STATS_EVERY = 1000
"""Records between two looks at the clock (progress line, the SDK's periodic drain)."""


class DryRunWriter:
    """Stands in for the client: writes each request it would send, sends nothing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests = 0
        self._lock = threading.Lock()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = open(path, "w", encoding="utf-8")  # noqa: SIM115

    def post_batch(
        self,
        resource: Resource,
        items: Sequence[dict[str, Any]],
        *,
        on_retry: Callable[[str], None] | None = None,
    ) -> list[str | None] | None:
        """Write `{method, path, body}` as one JSON line; acknowledge nothing remotely."""
        body = {resource.body_key: list(items)}
        line = json.dumps({"method": "POST", "path": resource.path, "body": body})
        with self._lock:
            if self._file is None:
                raise RuntimeError("the dry run is over")
            self._file.write(line + "\n")
            self._file.flush()
            self.requests += 1
        return [item.get("externalId") for item in items]  # as if all were acknowledged

    def close(self) -> None:
        """Close the output file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _empty_tenant(_path: str, _page: int) -> dict[str, Any]:
    """A dry run reads no pages: it shows what a load into an empty tenant sends."""
    return {"data": [], "pageCount": 0}


def _discard(_state: State) -> None:
    """A dry run writes no STATE: the next real run must not skip what was not sent."""


class Run:
    """Settings plus the live machinery: client, dispatcher, checkpoints, dead letters."""

    def __init__(self, settings: Settings, reader: NumberedReader) -> None:
        self.settings = settings
        self._reader = reader
        self.interrupt = reader.interrupt
        self.progress = Progress()
        self.checkpoints = Checkpoints(_discard if settings.dry_run else write_to_stdout)
        self.dead_letters = DeadLetters(settings.dead_letter_path, settings.max_rejections)
        self.http: HttpProcess | None = None
        self.dry_run: DryRunWriter | None = None
        send: Sender
        if settings.dry_run:
            self.stopping: StopFlag = threading.Event()
            self.dry_run = DryRunWriter(settings.dry_run_path)
            send = self.dry_run.post_batch
        else:
            client_settings = {
                "api_url": settings.api_url,
                "api_key": settings.api_key,
                "timeout": settings.request_timeout,
                "max_retries": settings.max_retries,
                "max_retry_wait": settings.max_retry_wait,
                "pool_size": settings.max_in_flight + 1,
            }
            # every sending thread, and the reading thread listing for replay safety
            self.http = HttpProcess(client_settings, channels=settings.max_in_flight + 1)
            self.stopping = self.http.stopping
            send = self.http.post_batch
        self.dispatcher = Dispatcher(
            send=send,
            max_in_flight=1 if settings.dry_run else settings.max_in_flight,
            checkpoints=self.checkpoints,
            dead_letters=self.dead_letters,
            progress=self.progress,
            stopping=self.stopping,
            interrupt=self.interrupt,
            max_ambiguous_retries=settings.max_retries,
            no_answer_wait=min(settings.max_retry_wait, 2 * settings.request_timeout),
            max_wait=settings.max_retry_wait,
        )
        self._guards: dict[str, ReplayGuard[Pending]] = {}
        self._records_until_check = STATS_EVERY

    def stats_due(self) -> bool:
        """True once every STATS_EVERY records: time to look at the clock."""
        self._records_until_check -= 1
        if self._records_until_check:
            return False
        self._records_until_check = STATS_EVERY
        return True

    @property
    def line_number(self) -> int:
        """The input line being processed."""
        return self._reader.line_number

    def resource_for(self, stream: str) -> Resource:
        """The resource a stream loads (stream_resources, else invoices)."""
        return RESOURCES[self.settings.stream_resources.get(stream, DEFAULT_RESOURCE)]

    def guard_for(self, resource: Resource) -> ReplayGuard[Pending] | None:
        """The replay guard of `resource`, loaded on first use; None if it cannot have one.

        A dry run has one too, over an empty tenant: twins within the input are held back
        exactly as in a real run, so the dry-run file matches what would be sent.
        """
        if not self.settings.replay_safety or not resource.list_path:
            return None
        guard = self._guards.get(resource.name)
        if guard is None:
            read_page = self.http.get_page if self.http is not None else _empty_tenant
            guard = self._guards[resource.name] = ReplayGuard(resource, read_page)
            guard.load()
        return guard

    def close(self) -> None:
        """Release files and connections (again harmless)."""
        self.dispatcher.shutdown()
        self.dead_letters.close()
        if self.dry_run is not None:
            self.dry_run.close()
        if self.http is not None:
            self.http.close()
        for guard in self._guards.values():
            guard.close()
