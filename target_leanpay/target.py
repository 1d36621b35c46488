"""TargetLeanpay: settings, stream routing and the run's lifecycle.

Where singer-sdk 0.54 would let STATE run ahead of the data, this class takes over:

* STATE messages go to `Checkpoints`, never to the SDK's `_latest_state`, so the SDK's
  own drains (end of input, the 5-minute drain, a signal) never write STATE;
* SIGTERM / SIGINT do not drain from inside the interrupted code (the SDK's hole, which
  printed the latest STATE over an unfinished batch and exited 0): the handler notes the
  signal, reading stops at the next safe point (`interrupt.py`), the requests in flight
  get a bounded time, their checkpoints go out, and the exit code is 128 + signal;
* expected failures (bad input, rejected record, API refusal, wrong key) end the run with
  one paragraph on stderr and exit code 1; tracebacks are kept for bugs;
* the config is read and checked here, not by the SDK: `--config` files by
  `config_input` (the SDK's reader raised tracebacks), every setting by `settings.parse`
  (every problem at once), and the secrets it holds are masked in the logs before
  anything of it is checked or logged.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import os
import sys
import time
from types import FrameType
from typing import IO, Any, ClassVar

import click
from singer_sdk import Target
from singer_sdk.exceptions import InvalidJSONSchema, MapExpressionError, StreamMapConfigError
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities
from singer_sdk.mapper import SameRecordTransform, StreamMap

from target_leanpay.config import redaction
from target_leanpay.config.about import render_markdown, render_text
from target_leanpay.config.config_input import ConfigSources, read_config_args, read_environment
from target_leanpay.config.settings import SCHEMA, parse, secret_values
from target_leanpay.config.store_location import StoreError
from target_leanpay.leanpay.errors import (
    ConfigError,
    InputError,
    MissingKeyProperties,
    OutputClosed,
    RecordBeforeSchema,
    Stopped,
    TargetLeanpayError,
    quote,
)
from target_leanpay.output.progress import plural
from target_leanpay.run import Run
from target_leanpay.sinks import LeanpaySink
from target_leanpay.source import batch_files
from target_leanpay.source.interrupt import Terminated
from target_leanpay.source.reader import NumberedReader
from target_leanpay.source.rest_of_input import discard_rest_of_input, exit_before_reading

HELP = (
    "Load receivables into Leanpay from a Singer tap's output on stdin: invoices by "
    "default, or credit notes, paybacks, links, misc operations and addresses "
    "(stream_resources). A STATE line goes to stdout once Leanpay has acknowledged every "
    "record before it; logs go to stderr. Settings: --about."
)
SHUTDOWN_GRACE_SECONDS = 30.0
"""How long a signal waits for requests in flight before exiting anyway."""
STATS_EVERY = 1000
"""Records between two looks at the clock (progress line, the SDK's periodic drain)."""


class TargetLeanpay(Target):
    """Loads receivables (invoices by default) into Leanpay, 100 per request."""

    name = "target-leanpay"
    package_name = "target-leanpay"
    config_jsonschema: ClassVar[dict[str, Any]] = SCHEMA
    default_sink_class = LeanpaySink
    message_reader_class = NumberedReader
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    def __init__(self, **kwargs: Any) -> None:
        """Check the whole config (files and environment) before the SDK sees it.

        `ConfigError` lists every problem; nothing has been created, sent or written.
        """
        config = kwargs.get("config") or {}
        if not isinstance(config, dict):
            raise TypeError("target-leanpay takes its config as a dict")
        config = dict(config)
        problems: list[str] = []
        if kwargs.get("parse_env_config"):
            environment = read_environment(self._env_var_prefix)
            config.update(environment.values)
            problems += environment.problems
        redaction.install(secret_values(config))
        try:
            self.settings = parse(config)
        except ConfigError as invalid:
            problems += invalid.problems
        if problems:
            raise ConfigError(problems)
        super().__init__(**{**kwargs, "config": config})
        self.max_parallelism = 1  # process_batch only queues a chunk: nothing to overlap
        assert isinstance(self.message_reader, NumberedReader)
        self.run = Run(self.settings, self.message_reader)
        self.message_reader.due = self._send_due_batches
        self._routes: dict[str, list[tuple[StreamMap | None, LeanpaySink]]] = {}
        self._records_until_clock = STATS_EVERY
        self._null_state_seen = False

    @classproperty
    def _env_var_config(cls) -> dict[str, Any]:  # noqa: N805 - a class property
        """Nothing: `__init__` has already merged TARGET_LEANPAY_* variables.

        The SDK's reader raises tracebacks on a value it cannot convert and leaves numbers
        as strings; `config_input.read_environment` reports each such variable instead.
        """
        return {}

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict[str, Any]) -> None:
        """Nothing to add: SCHEMA already holds the SDK settings of stream maps and
        flattening (settings.py), and record metadata or load methods do not apply."""

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Nothing left to check: `__init__` ran `settings.parse`, which checks the schema
        and more, reports every problem at once and never echoes a secret."""
        return []

    @classmethod
    def cb_config(  # type: ignore[override] # returns ConfigSources, not the SDK's _ConfigInput
        cls, ctx: click.Context, param: click.Option, value: tuple[str, ...]
    ) -> ConfigSources:
        """Read the `--config` files (the click callback) with `config_input`, whose
        problems `invoke` reports: the SDK's reader raised tracebacks before `invoke` ran."""
        return read_config_args(value)

    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, with a help text that says what this target does."""
        command = super().get_singer_command()
        command.help = HELP
        return command

    @classmethod
    def print_about(cls, output_format: str | None = None) -> None:
        """Text and Markdown say each setting's default, description and when it is required."""
        info = cls._get_about_info()
        if output_format is None or output_format == "text":
            print(render_text(info))  # noqa: T201 - --about prints to stdout
        elif output_format == "markdown":
            print(render_markdown(info))  # noqa: T201
        else:
            super().print_about(output_format)

    # Messages

    def _process_record_message(self, message_dict: dict[str, Any]) -> None:
        """The SDK's record path minus per-record work Leanpay does not need.

        Dropped: jsonschema validation (opt-in, see validate_records), timestamp parsing
        (the mapper reads dates itself), _sdc metadata (never sent), the stream-map call
        when the map is the SDK's do-nothing default. Kept: stream maps, key properties.
        """
        try:
            stream_name, record = message_dict["stream"], message_dict["record"]
        except KeyError:
            missing = " and ".join(k for k in ("stream", "record") if k not in message_dict)
            raise InputError(
                f"Input line {self.run.reader.line_number}: the RECORD message is missing required "
                f"{missing} key"
            ) from None
        routes = self._routes.get(stream_name)
        if routes is None:
            routes = self._route(stream_name)
        if not isinstance(record, dict):
            raise InputError(f"Input line {self.run.reader.line_number}: 'record' is not an object")
        for stream_map, sink in routes:
            if stream_map is not None:
                record_copy = copy.copy(record) if len(routes) > 1 else record
                try:
                    transformed = stream_map.transform(record_copy)
                except Exception as failed:  # any error of the user's expression
                    raise self._map_failed(stream_name, record, failed) from None
                if transformed is None:
                    continue  # filtered out by a stream map
            else:
                transformed = record
            if not transformed.keys() >= sink.key_property_set:
                raise MissingKeyProperties(
                    f"Input line {self.run.reader.line_number}: stream '{sink.stream_name}': "
                    f"the record lacks its key properties {list(sink.key_properties_tuple)}"
                )
            sink.process_record(transformed, {})
        self._records_until_clock -= 1
        if not self._records_until_clock:
            self._records_until_clock = STATS_EVERY
            self.run.progress.maybe_log()
            self._handle_max_record_age()

    def _map_failed(
        self, stream_name: str, record: dict[str, Any], failed: Exception
    ) -> InputError:
        """A stream map (the user's expressions) failed on one record: say which, and why."""
        cause = failed.__cause__ or failed.__context__
        why = str(failed) if cause is None else f"{failed} ({type(cause).__name__}: {cause})"
        external_id = record.get("externalId", record.get("external_id"))
        which = f" (externalId {quote(str(external_id), 80)!r})" if external_id else ""
        return InputError(
            f"Input line {self.run.reader.line_number}: stream '{stream_name}': the stream map "
            f"failed on this record{which}: {quote(why, 300)}. Fix the stream_maps setting."
        )

    def _route(self, stream_name: str) -> list[tuple[StreamMap | None, LeanpaySink]]:
        """Where a stream's records go: (stream map, or None when it does nothing; sink)."""
        stream_maps = self.mapper.stream_maps.get(stream_name)
        if stream_maps is None:
            raise RecordBeforeSchema(
                f"Input line {self.run.reader.line_number}: a RECORD for stream "
                f"{quote(str(stream_name), 80)!r} arrived before that stream's SCHEMA"
            )
        routes: list[tuple[StreamMap | None, LeanpaySink]] = []
        for stream_map in stream_maps:
            sink = self._sinks_active.get(stream_map.stream_alias)
            if not isinstance(sink, LeanpaySink):
                continue  # mapped away (e.g. `__else__: __NULL__`): no sink, no records
            identity = type(stream_map) is SameRecordTransform and not stream_map.flattening_enabled
            routes.append((None if identity else stream_map, sink))
        self._routes[stream_name] = routes
        return routes

    def _process_activate_version_message(self, message_dict: dict[str, Any]) -> None:
        """Refused, like a RECORD, before its stream's SCHEMA (the SDK raised a KeyError)."""
        stream = message_dict.get("stream")
        if stream not in self.mapper.stream_maps:
            raise RecordBeforeSchema(
                f"Input line {self.run.reader.line_number}: an ACTIVATE_VERSION for stream "
                f"{quote(str(stream), 80)!r} arrived before that stream's SCHEMA"
            )
        super()._process_activate_version_message(message_dict)

    def _process_batch_message(self, message_dict: dict[str, Any]) -> None:
        """Each record of each file of a BATCH goes through the RECORD path, in order
        (batch_files.py), with its `Place` as the reader's line number so that every message
        and dead letter names the file and line; a signal stops between two records."""
        reader = self.run.reader
        input_line = reader.line_number
        stream = message_dict.get("stream")
        try:
            for place, record in batch_files.records(message_dict, input_line):
                reader.interrupt.check()
                reader.line_number = place
                self._process_record_message({"stream": stream, "record": record})
        finally:
            reader.line_number = input_line

    def _process_schema_message(self, message_dict: dict[str, Any]) -> None:
        """A changed schema retires a sink: send its partial chunk now, not at the next drain."""
        try:
            super()._process_schema_message(message_dict)
        except TargetLeanpayError:
            raise
        except (
            InvalidJSONSchema,
            MapExpressionError,
            StreamMapConfigError,
            TypeError,
            ValueError,
        ) as exc:
            self.logger.debug("Unusable SCHEMA", exc_info=exc)
            raise InputError(
                f"Input line {self.run.reader.line_number}: the SCHEMA for stream "
                f"{quote(str(message_dict.get('stream')), 80)!r} cannot be used: {quote(str(exc))}"
            ) from None
        self._routes.clear()
        for sink in self._sinks_to_clear:
            if isinstance(sink, LeanpaySink):
                sink.flush()

    def flush_streams_of(self, resources: frozenset[str]) -> None:
        """Hand over the buffered records of every stream loading one of `resources`."""
        for sink in [*self._sinks_to_clear, *self._sinks_active.values()]:
            if isinstance(sink, LeanpaySink) and sink.resource.name in resources:
                sink.flush()

    def _send_due_batches(self) -> float | None:
        """Send every partial batch whose first record has waited batch_wait_limit_seconds
        (a slow tap); return the seconds until the next look is due: when one is, and at
        least every second while requests are under way (a failure among them stops the
        run); None when nothing waits."""
        self.run.pool.raise_failure()  # noticed within a second while the tap is quiet
        now = time.monotonic()
        limit = self.settings.batch_wait_limit
        next_due: float | None = 1.0 if self.run.pool.busy else None
        for sink in list(self._sinks_active.values()):
            if not isinstance(sink, LeanpaySink) or not sink.current_size:
                continue
            wait = sink.buffered_since + limit - now
            if wait <= 0:
                sink.flush()
            elif next_due is None or wait < next_due:
                next_due = wait
        return next_due

    def _process_state_message(self, message_dict: dict[str, Any]) -> None:
        """Hold the STATE until every record before it is safe (never the SDK's way); a
        null one is ignored, as its warning says."""
        self._assert_line_requires(message_dict, requires={"value"})
        if message_dict["value"] is None:
            if not self._null_state_seen:
                self._null_state_seen = True
                self.logger.warning(
                    "Input line %d: a STATE whose value is null is ignored (it would erase "
                    "the tap's bookmarks), as are any later ones; the STATE before it stands",
                    self.run.reader.line_number,
                )
            return
        for sink in [*self._sinks_active.values(), *self._sinks_to_clear]:
            if isinstance(sink, LeanpaySink):
                sink.state_received()
        self.run.checkpoints.state_received(message_dict["value"])

    def process_endofpipe(self) -> None:
        """Release what waited for documents, send what is buffered, wait for every
        answer, then summarise."""
        self.run.parking.release_all()
        super().process_endofpipe()
        with self.run.interrupt.blocking():
            self.run.pool.wait_all()
        self.run.pool.raise_failure()
        with self.run.interrupt.blocking():  # until the STATE reader has taken the last line
            self.run.state_output.drain()
        self.run.close()
        dry_run = self.run.dry_run
        if self.run.plan is not None and dry_run is not None:  # its verdict opens the end
            self.run.plan.report(self.run.progress.streams, dry_run.requests, dry_run.path)
        self._log_summary()
        if self.run.plan is None and dry_run is not None:
            self.logger.info(
                "Dry run: %s written to %s; nothing was sent to Leanpay and no STATE is written",
                plural(dry_run.requests, "request"),
                dry_run.path,
            )

    def _log_summary(self) -> None:
        """A line per stream, then where the rejected records are."""
        self.run.progress.log_summary()
        self.run.dead_letters.log_summary()

    # Ending the run

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """Note the signal; it stops the reading thread at its next safe point.

        During start-up, or at a second signal, exit at once: no STATE can follow, and
        nothing that could be held by the interrupted frame (a lock) is touched.
        """
        run: Run | None = getattr(self, "run", None)
        if run is None or run.interrupt.signum is not None:
            os._exit(128 + signum)
        run.interrupt.request(signum)

    def finish_after_signal(self, signum: int) -> None:
        """Let the requests in flight finish (bounded), keep their checkpoints, exit."""
        self.run.stopping.set()
        if self.settings.dry_run:
            self.logger.warning("Received signal %d: the dry run stops", signum)
        else:
            self.logger.warning(
                "Received signal %d: no more records are read; waiting up to %.0f s for the "
                "requests in flight. STATE covers only what Leanpay acknowledged.",
                signum,
                SHUTDOWN_GRACE_SECONDS,
            )
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        self.run.pool.wait_all(timeout=SHUTDOWN_GRACE_SECONDS)
        self._report_sending_failure(None)
        self._write_last_states(deadline)
        self._log_summary()
        self._exit(128 + signum)

    def fail(self, error: BaseException, file_input: IO[str] | None = None) -> None:
        """Report an error, let the chunks already handed over finish (bounded: the
        records before the failure are worth keeping), exit 1.

        Unlike a signal, a failure does not cut their retries or a listing short: the
        run is over, but what it already prepared is still sent and checkpointed. The
        rest of the input is then read and dropped (`rest_of_input`: the target's reason,
        not a broken pipe, is what `meltano run` shows); a signal ends that reading.
        """
        self._report(error)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        if not isinstance(error, StoreError):  # a lost store records nothing more: no wait
            self.run.pool.wait_all(timeout=SHUTDOWN_GRACE_SECONDS)
        self.run.stopping.set()
        self._report_sending_failure(error)
        if not isinstance(error, OutputClosed):
            self._write_last_states(deadline)
        self._log_summary()
        with contextlib.suppress(Terminated), self.run.interrupt.blocking():
            discard_rest_of_input(file_input)
        self._exit(1)

    def _write_last_states(self, deadline: float) -> None:
        """Give the STATE lines still queued until `deadline` to reach stdout: a stalled
        reader of stdout must not hold the exit beyond the documented bound."""
        try:
            if not self.run.state_output.drain(timeout=max(0.0, deadline - time.monotonic())):
                self.logger.warning(
                    "stdout did not take the last STATE in time (its reader is not reading); "
                    "the tap resumes from the last STATE it stored"
                )
        except OutputClosed as closed:
            self._report(closed)

    def _report(self, error: BaseException) -> None:
        if isinstance(error, TargetLeanpayError):
            self.logger.error("%s", error)
        else:
            self.logger.error("target-leanpay failed unexpectedly", exc_info=error)

    def _report_sending_failure(self, already_reported: BaseException | None) -> None:
        """A sending thread's failure that the reading thread did not raise: say it too
        (not a chunk that gave up because the run was already stopping)."""
        failure = self.run.pool.failure
        if failure not in (None, already_reported) and not isinstance(failure, Stopped):
            self._report(failure)

    def _exit(self, code: int) -> None:
        """Exit without waiting for sending threads; no STATE can follow."""
        self.run.checkpoints.close()
        self.run.close()
        # stdout belongs to the STATE writer, which may be blocked on a stalled reader
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed: nothing to save
            sys.stderr.flush()
        logging.shutdown()
        os._exit(code)

    @classmethod
    def invoke(  # type: ignore[override]
        cls,
        *,
        about: bool = False,
        about_format: str | None = None,
        config: ConfigSources | None = None,
        file_input: IO[str] | None = None,
    ) -> None:
        """CLI entry: run, and turn every expected failure into one paragraph + exit 1
        (a refused config: a line per problem, and the input read to its end)."""
        if about:
            cls.print_about(about_format)
            sys.exit(0)
        sources = config or ConfigSources()
        redaction.install(secret_values(sources.values))
        cls.print_version(print_fn=cls.logger.info)
        if sources.problems:
            for problem in sources.problems:
                cls.logger.error("%s", problem)
            exit_before_reading(file_input)
        try:
            target = cls(config=sources.values, parse_env_config=sources.parse_env)
        except ConfigError as invalid:
            for problem in invalid.problems:
                cls.logger.error("Invalid setting: %s", problem)
            exit_before_reading(file_input)
        except TargetLeanpayError as error:
            cls.logger.error("%s", error)
            exit_before_reading(file_input)
        if sys.stdout is None and not (target.settings.dry_run or target.settings.plan):
            cls.logger.error(
                "stdout is closed, and target-leanpay writes the STATE lines that let a tap "
                "resume there; nothing was read or sent. Run it with stdout open (for example "
                "`> state.out`), or with dry_run or plan, which write no STATE."
            )
            exit_before_reading(file_input)
        # Start-up made ~150k long-lived objects (singer-sdk, jsonschema, requests...).
        # Reading allocates a few dicts per record, which triggers the cyclic collector;
        # frozen, those objects are no longer walked by each full collection (about a
        # fifth of the reading thread's CPU otherwise).
        gc.freeze()
        try:
            target.listen(file_input)
        except Terminated as signal_received:
            target.finish_after_signal(signal_received.signum)
        except BaseException as error:
            target.fail(error, file_input)
