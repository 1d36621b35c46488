"""Run: the objects one target run shares between its sinks and sending threads.

It only builds them and wires them together; each does its own job. The three kinds of
run differ in a few objects:

* a real run: `LeanpayClient` lists and sends; checkpoints write STATE;
* a dry run: `DryRunClient` writes what would be sent, nothing is read from Leanpay,
  checkpoints write nothing;
* a plan: like a dry run, but `LeanpayClient` reads the tenant (GET only), and
  rejections are tallied by `Plan` instead of stopping the run.

A dry run never writes to the real dead-letter file: with `dead_letter_path` set, the
records it would set aside go to a file beside its requests (`dry_run_rejections_path`),
emptied at its start; a plan only counts them in its report.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from target_leanpay.config.settings import Settings
from target_leanpay.leanpay.client import DryRunClient, LeanpayClient
from target_leanpay.leanpay.pool import SendPool
from target_leanpay.listings.finds import Finds
from target_leanpay.listings.listing import PageReader
from target_leanpay.listings.replay import ReplayGuards
from target_leanpay.output.checkpoint import Checkpoints, State
from target_leanpay.output.deadletter import DeadLetters
from target_leanpay.output.plan import Plan
from target_leanpay.output.progress import Progress
from target_leanpay.output.runmark import RunMark
from target_leanpay.output.state_output import StateOutput
from target_leanpay.records.resources import RESOURCES
from target_leanpay.records.values import amount_shown
from target_leanpay.sending.delivery import Delivery, Sender
from target_leanpay.sending.parking import Parking
from target_leanpay.sending.references import References
from target_leanpay.sending.updates import Putter, Updates
from target_leanpay.source.reader import NumberedReader
from target_leanpay.store.date_zone import DateZones
from target_leanpay.store.folder_store import FolderStore
from target_leanpay.store.store import host_of

if TYPE_CHECKING:  # psycopg is an optional extra
    from target_leanpay.store.pg_store import PgStore


def _discard(_state: State) -> None:
    """A dry run or a plan writes no STATE: the next real run must not skip what was not
    sent."""


def _put_of(client: LeanpayClient | None) -> Putter:
    """The real client's PUT (a run that sends is never without its client)."""
    assert client is not None
    return client.put


def open_store(
    settings: Settings, run: RunMark, failed: Callable[[BaseException], None]
) -> FolderStore | PgStore:
    """The folder store, or the PostgreSQL one when `store` is a URL: connected now, so
    that PostgreSQL down or refusing is one line before anything is read or sent.
    `failed`: how a lost lock stops the run (the pool's first failure)."""
    host = host_of(settings.api_url)
    if settings.store.url is None:
        assert settings.store.folder is not None
        return FolderStore(settings.store.folder, host=host, run=run, export=settings.receipts_path)
    from target_leanpay.store.pg_store import PgStore  # noqa: PLC0415 - psycopg: an optional extra

    url = settings.store.url
    return PgStore(url, host=host, run=run, export=settings.receipts_path, fail_run=failed)


def dry_run_rejections_path(dry_run_path: str) -> str:
    """Where a dry run writes the records a real run would dead-letter: beside its
    requests (`out/requests.jsonl` -> `out/requests.rejected.jsonl`)."""
    path = Path(dry_run_path)
    return str(path.with_name(f"{path.stem if path.suffix else path.name}.rejected.jsonl"))


class Run:
    """Settings plus the live machinery: clients, sending threads, checkpoints, files."""

    def __init__(self, settings: Settings, reader: NumberedReader) -> None:
        self.settings = settings
        self.reader = reader
        self.interrupt = reader.interrupt
        self.stopping = threading.Event()
        """Set when the run stops (a failure, a signal): no retry, no wait."""
        self.sending_failed = threading.Event()
        """Set when a chunk failed: the run is over, no new request is made."""
        self.mark = RunMark.new()
        """This run's id and start time, on its dead-letter lines and receipts."""
        writes_nothing = settings.dry_run or settings.plan
        self.progress = Progress(dry_run=writes_nothing)
        self.plan = Plan(settings.dead_letter_path) if settings.plan else None
        dead_letter_path = settings.dead_letter_path
        if settings.dry_run and dead_letter_path is not None:
            dead_letter_path = dry_run_rejections_path(settings.dry_run_path)
        self.dead_letters = DeadLetters(
            dead_letter_path,
            settings.max_rejections,
            dry_run=writes_nothing,
            counted_by=None if self.plan is None else self.plan.rejected,
            run=self.mark,
            fresh=settings.dry_run,
        )
        self.state_output = StateOutput()
        self.checkpoints = Checkpoints(
            _discard if writes_nothing else self.state_output.put,
            make_durable=self.dead_letters.commit,
        )
        # a dry run writes its requests in input order: one thread; a real run one per
        # request in flight: a chunk keeps its thread through retries and waits, so
        # max_in_flight chunks at most are being delivered
        self.pool = SendPool(
            1 if writes_nothing else settings.max_in_flight,
            interrupt=self.interrupt,
            failed=self.sending_failed,
            stopping=self.stopping,
        )
        self.store = open_store(settings, self.mark, self.pool.fail)
        self.promises = self.store.promises(writable=not writes_nothing)
        self.client: LeanpayClient | None = None
        if not settings.dry_run:
            self.client = LeanpayClient(
                api_url=settings.api_url,
                api_key=settings.api_key,
                timeout=settings.request_timeout,
                max_retries=settings.max_retries,
                max_retry_wait=settings.max_retry_wait,
                max_in_flight=settings.max_in_flight,
                max_list_in_flight=settings.max_list_in_flight,
                stopping=self.stopping,
                unowned_retry=self.progress.unowned_retry,
            )
        self.dry_run = DryRunClient(settings.dry_run_path) if writes_nothing else None
        send: Sender
        read_page: PageReader | None = None
        if self.client is not None:
            read_page = self.client.get_page
            send = self.client.post_batch
        if self.dry_run is not None:
            send = self.dry_run.post_batch
        self.guards = ReplayGuards(
            read_page,
            enabled=settings.replay_safety,
            concurrency=settings.max_list_in_flight,
            stopping=self.stopping,
            receipts=self.promises,
            api_url=settings.api_url,
            store=self.store,
            writes=not writes_nothing,
        )
        self.parking = Parking(self._is_read)
        """Links and paybacks read before the documents they name (parking.py)."""
        date_zones = DateZones(
            self.store, settings.api_url, self.guards.tenant, writes=not writes_nothing
        )
        self.delivery = Delivery(
            send=send,
            checkpoints=self.checkpoints,
            dead_letters=self.dead_letters,
            progress=self.progress,
            references=References(self.guards.for_resource, dry_run=writes_nothing),
            promises=self.promises,
            failed=self.sending_failed,
            stopping=self.stopping,
            max_ambiguous_retries=settings.max_retries,
            no_answer_wait=min(settings.max_retry_wait, 2 * settings.request_timeout),
            max_wait=settings.max_retry_wait,
            dry_run=settings.dry_run,
            date_zones=date_zones,
            updates=Updates(
                put=self.dry_run.put if self.dry_run is not None else _put_of(self.client),
                dead_letters=self.dead_letters,
                receipts=self.promises,
                noted=None if self.plan is None else self.plan.changed,
                amount_shown=amount_shown(
                    settings.mapping.unit_places, settings.mapping.decimal_separator
                ),
                date_zones=date_zones,
            ),
            finds=Finds(
                None if self.client is None else self.client.find,
                concurrency=settings.max_list_in_flight,
            ),
        )
        self._closing = ExitStack()
        for resource in (
            self.store,
            self.guards,
            self.client,
            self.dry_run,
            self.promises,
            self.parking,
        ):
            if resource is not None:
                self._closing.callback(resource.close)
        self._closing.callback(self._close_dead_letters)
        self._closing.callback(self.pool.shutdown)

    def _is_read(self, resource: str, external_id: str) -> bool:
        """Whether this run has read the document, or Leanpay is known to hold it."""
        return self.guards.for_resource(RESOURCES[resource]).read_before(external_id)

    def _close_dead_letters(self) -> None:
        """A run that ended well writes its last rejections; one that failed or was
        stopped (`stopping`) drops those no STATE covered (see deadletter.py)."""
        read = [name for name, stats in self.progress.streams.items() if stats.read]
        self.dead_letters.close(keep_waiting=not self.stopping.is_set(), streams_read=read)

    def close(self) -> None:
        """Release threads, files and connections (again harmless)."""
        self._closing.close()
