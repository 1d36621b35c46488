"""Run: the objects one target run shares between its sinks and sending threads.

It only builds them and wires them together; each does its own job. A dry run differs
in two objects only: `DryRunClient` instead of `LeanpayClient`, and checkpoints that
write nothing.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack

from target_leanpay.checkpoint import Checkpoints, State, write_to_stdout
from target_leanpay.client import DryRunClient, LeanpayClient
from target_leanpay.deadletter import DeadLetters
from target_leanpay.delivery import Delivery
from target_leanpay.pool import SendPool
from target_leanpay.progress import Progress
from target_leanpay.reader import NumberedReader
from target_leanpay.replay import ReplayGuards
from target_leanpay.settings import Settings


def _discard(_state: State) -> None:
    """A dry run writes no STATE: the next real run must not skip what was not sent."""


class Run:
    """Settings plus the live machinery: client, sending threads, checkpoints, dead letters."""

    def __init__(self, settings: Settings, reader: NumberedReader) -> None:
        self.settings = settings
        self.reader = reader
        self.interrupt = reader.interrupt
        self.stopping = threading.Event()
        """Set when the run stops (a failure, a signal): no retry, no wait."""
        self.sending_failed = threading.Event()
        """Set when a chunk failed: the run is over, no new request is made."""
        self.progress = Progress()
        self.checkpoints = Checkpoints(_discard if settings.dry_run else write_to_stdout)
        self.dead_letters = DeadLetters(settings.dead_letter_path, settings.max_rejections)
        self.client: LeanpayClient | DryRunClient
        if settings.dry_run:
            self.client = DryRunClient(settings.dry_run_path)
        else:
            self.client = LeanpayClient(
                api_url=settings.api_url,
                api_key=settings.api_key,
                timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                max_retry_wait=settings.max_retry_wait,
                max_in_flight=max(settings.max_in_flight, settings.max_list_in_flight),
                stopping=self.stopping,
            )
        read_page = None if isinstance(self.client, DryRunClient) else self.client.get_page
        self.guards = ReplayGuards(
            read_page,
            enabled=settings.replay_safety,
            concurrency=settings.max_list_in_flight,
            stopping=self.stopping,
        )
        self.pool = SendPool(
            1 if settings.dry_run else settings.max_in_flight,
            interrupt=self.interrupt,
            failed=self.sending_failed,
            stopping=self.stopping,
        )
        self.delivery = Delivery(
            send=self.client.post_batch,
            checkpoints=self.checkpoints,
            dead_letters=self.dead_letters,
            progress=self.progress,
            failed=self.sending_failed,
            stopping=self.stopping,
            max_ambiguous_retries=settings.max_retries,
            no_answer_wait=min(settings.max_retry_wait, 2 * settings.request_timeout),
            max_wait=settings.max_retry_wait,
        )
        self._closing = ExitStack()
        for resource in (self.guards, self.client, self.dead_letters):
            self._closing.callback(resource.close)
        self._closing.callback(self.pool.shutdown)

    def close(self) -> None:
        """Release threads, files and connections (again harmless)."""
        self._closing.close()
