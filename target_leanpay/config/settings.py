"""Every setting of target-leanpay, declared once, with its description and default.

`parse` is the one check of a config: unknown settings (with the closest known name),
values of the wrong type, and everything the JSON schema cannot say (the key, the URL,
files), all reported at once so that a user fixes the config in one go. Checking writes
nothing: folders are created when a file is first written.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import FLATTENING_CONFIG, STREAM_MAPS_CONFIG
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR

from target_leanpay.config.credentials import key_problem, url_credentials, url_problem
from target_leanpay.config.store_location import (
    StoreLocation,
    default_store_dir,
    is_store_url,
    store_secrets,
)
from target_leanpay.config.store_location import url_problem as store_url_problem
from target_leanpay.leanpay.errors import ConfigError, quote
from target_leanpay.records.mapping import MappingSettings
from target_leanpay.records.resources import MAX_ITEMS_PER_REQUEST, RESOURCES, Resource
from target_leanpay.records.values import date_format_problem

DEFAULT_RESOURCE = "invoices"
REQUIRED_UNLESS_DRY_RUN = "Required unless dry_run is on."
"""How --about and the plugin definition say when api_key is needed."""

SCHEMA = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        title="API key",
        description="Leanpay API key, sent as-is in the Authorization header. "
        + REQUIRED_UNLESS_DRY_RUN,
    ),
    th.Property(
        "api_url",
        th.StringType,
        default="https://api.leanpay.fr/v1/public",
        title="API URL",
        description="Base URL of the Leanpay public API. Plain http:// is accepted only "
        "for localhost / 127.0.0.1 (a local stand-in).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType,
        default=60,
        title="Request timeout",
        description="Seconds to wait for Leanpay to answer one request.",
    ),
    th.Property(
        "max_retries",
        th.IntegerType,
        default=5,
        title="Retry budget",
        description="Retries per request after 429, 5xx or a connection failure, and "
        "checked re-sends after an unanswered one (0 = never); a 429 that made the target "
        "slow down is not counted. Other 4xx are never retried.",
    ),
    th.Property(
        "max_retry_wait",
        th.NumberType,
        default=60,
        title="Longest wait between retries",
        description="Cap, in seconds, on every wait between attempts: Retry-After, "
        "exponential backoff, and the wait (2 x request_timeout) before checking what "
        "Leanpay stored of an unanswered request. Lowering it narrows that safety window.",
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType,
        default=MAX_ITEMS_PER_REQUEST,
        title="Items per request",
        description="Items per batch request, 1-100. Leanpay refuses more than 100; "
        "a larger value is lowered to 100.",
    ),
    th.Property(
        "batch_wait_limit_seconds",
        th.NumberType,
        default=30,
        title="Longest wait of a partial batch",
        description="Seconds a batch smaller than batch_size_rows waits for more records "
        "before it is sent anyway (and the STATE behind it written): a slow tap's records "
        "do not wait for the end of its output.",
    ),
    th.Property(
        "max_in_flight",
        th.IntegerType,
        default=4,
        title="Requests in flight",
        description="Batch requests sent concurrently while reading continues. STATE is "
        "still written strictly in input order.",
    ),
    th.Property(
        "max_list_in_flight",
        th.IntegerType,
        default=4,
        title="List pages in flight",
        description="Pages of GET /invoices that replay safety reads at once (the first "
        "page gives the page count). Records are read and mapped meanwhile; nothing is "
        "sent before the listing is complete.",
    ),
    th.Property(
        "stream_resources",
        th.ObjectType(additional_properties=th.StringType),
        default={},
        title="Stream to resource routing",
        description="Maps a stream name to the Leanpay resource it loads: "
        + ", ".join(RESOURCES)
        + ". Streams not listed load invoices.",
    ),
    th.Property(
        "amount_unit",
        th.StringType,
        default="minor",
        allowed_values=["minor", "major"],
        title="Unit of amounts in the source",
        description="`minor`: amounts are integer cents (Leanpay's unit). `major`: amounts "
        "are in euros etc. (123.45) and are converted exactly to cents; an amount with "
        "more than 2 decimals is rejected.",
    ),
    th.Property(
        "decimal_separator",
        th.StringType,
        default=".",
        allowed_values=[".", ","],
        title="Decimal separator of amounts written as text",
        description="`.`: amounts written 1234.50 (no thousands separators). `,`: written "
        "1234,50, 1 234,50 or 1.234,50 (groups of three digits between spaces, no-break "
        "spaces or dots). Numbers that are not text are read as they are.",
    ),
    th.Property(
        "date_formats",
        th.ArrayType(th.StringType),
        default=[],
        title="Date formats of the source",
        description="Formats of dates written as text other than ISO 8601, as strptime "
        'patterns (e.g. ["%d/%m/%Y"]). ISO 8601 dates are always read. A value that two '
        "formats read as different days, or as an impossible day, is rejected.",
    ),
    th.Property(
        "client_ids",
        th.ObjectType(additional_properties=th.StringType),
        default={},
        title="Client id mapping",
        description="Maps your client id (record field `clientExternalId`) to the Leanpay "
        "client UUID. Leanpay has no API to look clients up.",
    ),
    th.Property(
        "client_ids_file",
        th.StringType,
        title="Client id mapping file",
        description="CSV file with a header `externalId,id` mapping your client ids to "
        "Leanpay client UUIDs; merged with client_ids (client_ids wins).",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        title="Dead-letter file",
        description="JSON-lines file receiving every rejected record with its reasons; the "
        "run then goes on. Unset: the first rejected record stops the run.",
    ),
    th.Property(
        "max_rejections",
        th.IntegerType,
        title="Rejections tolerated",
        description="With dead_letter_path: fail the run once more records than this are "
        "rejected. Unset: no limit.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        title="Dry run",
        description="Send nothing: write each request that would be sent to dry_run_path. "
        "No API key needed, no STATE written.",
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        default="leanpay-dry-run.jsonl",
        title="Dry-run output file",
        description="Where a dry run writes one JSON line per request: {method, path, body}.",
    ),
    th.Property(
        "plan",
        th.BooleanType,
        default=False,
        title="Plan",
        description="A dry run that reads the real tenant (needs api_key; GET requests "
        "only): reports per stream what would be sent, what Leanpay already holds and what "
        "would be rejected, writes the requests it would send to dry_run_path, and ends "
        "with a verdict. Sends nothing, writes no STATE.",
    ),
    th.Property(
        "receipts_path",
        th.StringType,
        title="Receipts file",
        description="An export of the receipts, for your warehouse: a JSON-lines file where "
        "every item Leanpay acknowledges is appended (resource, externalId, Leanpay id, "
        "stream, run start, tenantId, fields sent, run id) once the store holds it. Never "
        "read back: the store is the truth (a file an earlier version wrote is read into the "
        "store once).",
    ),
    th.Property(
        "store",
        th.StringType,
        secret=True,
        title="Store",
        description="Where the target keeps what it must remember between runs (what it "
        "learned of each Leanpay tenant, the receipts and sending marks, the tenant's lock): "
        "a folder, or a postgresql:// URL that runs on different machines share (needs the "
        "postgres extra; its schema is target_leanpay unless the URL's "
        "options=-csearch_path=... names another). Unset: $XDG_STATE_HOME/target-leanpay, "
        "else ~/.local/state/target-leanpay.",
    ),
    th.Property(
        "replay_safety",
        th.BooleanType,
        default=True,
        title="Replay safety",
        description="Read the externalIds Leanpay already holds (GET /invoices) and never "
        "send one again. The first run reads every page, max_list_in_flight at a time; "
        "later runs read only the pages of invoices created since (see store). Turn "
        "off only for loads into an empty tenant (records repeating an externalId within "
        "one input are held back either way).",
    ),
    th.Property(
        "require_external_id",
        th.BooleanType,
        default=False,
        title="Require externalId",
        description="Reject records without externalId, which replay safety cannot "
        "protect against duplicates.",
    ),
    th.Property(
        "validate_records",
        th.BooleanType,
        default=False,
        title="Validate against the tap's schema",
        description="Also validate each record against the tap's own JSON schema (slow). "
        "Records are always validated against what Leanpay accepts.",
    ),
).to_dict()

for _builtin in (STREAM_MAPS_CONFIG, FLATTENING_CONFIG):
    # The SDK's own settings for the capabilities target-leanpay declares (stream maps,
    # flattening), merged here rather than at first use so that SCHEMA is the same
    # whenever it is read: what --about lists is exactly what a config may hold.
    for _name, _spec in _builtin["properties"].items():
        SCHEMA["properties"].setdefault(_name, _spec)

KNOWN = frozenset(SCHEMA["properties"])
"""Every setting a config may hold; any other key is refused."""
REPLACED = {
    "index_dir": "index_dir was replaced by store (a folder or a postgresql:// URL, where "
    "the target keeps what it must remember between runs): rename the setting to store",
}
"""Settings of earlier versions, each refused with what replaced it."""

SECRETS = frozenset(name for name, spec in SCHEMA["properties"].items() if spec.get("secret"))

DEFAULTS: dict[str, Any] = {
    name: spec["default"] for name, spec in SCHEMA["properties"].items() if "default" in spec
}
"""Each setting's default, as the schema declares it (and `--about` shows it)."""


@dataclass(frozen=True)
class Settings:
    """The validated settings, typed."""

    api_key: str
    api_url: str
    request_timeout: float
    max_retries: int
    max_retry_wait: float
    request_size: int
    batch_wait_limit: float
    max_in_flight: int
    max_list_in_flight: int
    stream_resources: Mapping[str, str]
    mapping: MappingSettings
    dead_letter_path: str | None
    max_rejections: int | None
    dry_run: bool
    dry_run_path: str
    plan: bool
    receipts_path: str | None
    store: StoreLocation
    replay_safety: bool
    validate_records: bool

    def resource_for(self, stream: str) -> Resource:
        """The resource a stream loads: stream_resources, else invoices."""
        return RESOURCES[self.stream_resources.get(stream, DEFAULT_RESOURCE)]


def closest(name: str) -> str | None:
    """The setting `name` most likely misspells, if any is close enough."""
    found = difflib.get_close_matches(name.lower(), sorted(KNOWN), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_settings(config: Mapping[str, Any]) -> list[str]:
    """A problem per key that is not a setting (only the name is quoted: values may be secret)."""
    problems = []
    for name in config:
        if name in KNOWN:
            continue
        if name in REPLACED:
            problems.append(REPLACED[name])
            continue
        guess = closest(str(name))
        hint = f"; did you mean {guess}?" if guess else " (target-leanpay --about lists them)"
        problems.append(f"{quote(repr(name), 80)} is not a target-leanpay setting{hint}")
    return problems


def _schema_problems(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Values of the wrong type or shape, per setting; a secret's value is never echoed.

    A null means the default (a scheduler may write every setting, set or not).
    """
    known = {name: value for name, value in config.items() if name in KNOWN and value is not None}
    found: dict[str, list[str]] = {}
    for error in DEFAULT_JSONSCHEMA_VALIDATOR(SCHEMA).iter_errors(known):
        name = str(error.path[0]) if error.path else ""
        where = "config" + "".join(f"[{p!r}]" for p in error.path)
        if name in SECRETS:
            text = f"{where} is invalid ({error.validator}: {error.validator_value})"
        else:
            text = f"{where}: {quote(error.message, 200)}"
        found.setdefault(name, []).append(text)
    return found


def secret_values(config: Mapping[str, Any]) -> list[str]:
    """What the log filter must mask before anything of this config is checked or logged."""
    secrets: list[str] = []
    for name in SECRETS - {"store"}:
        value = config.get(name)
        if isinstance(value, str):
            secrets += [value, value.strip()]
    url = config.get("api_url")
    if isinstance(url, str):
        secrets += url_credentials(url)
    store = config.get("store")
    if isinstance(store, str):  # a folder is shown; a URL's password never
        secrets += store_secrets(store)
    return secrets


def read_client_ids(path: str) -> dict[str, str]:
    """Read a CSV `externalId,id` into a mapping."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"externalId", "id"} <= set(reader.fieldnames):
                raise ConfigError(
                    f"client_ids_file {path!r} needs a header row 'externalId,id' "
                    f"(found {reader.fieldnames})"
                )
            return {row["externalId"].strip(): row["id"].strip() for row in reader}
    except OSError as exc:
        raise ConfigError(f"client_ids_file {path!r} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"client_ids_file {path!r} is not UTF-8 text") from None


def check_writable(path: str, setting: str) -> None:
    """Fail at start, not at the first rejection, when a file could not be written.

    Only looks: the file's folder is created when the file is first written, so that a
    refused config leaves nothing behind.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{setting} {path!r} is a folder, not a file")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise ConfigError(f"{setting} {path!r} is not a writable file")
        return
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{setting} {path!r}: cannot create its folder ({folder} is a file)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{setting} {path!r}: cannot create it ({folder} is not writable)")


MOST_SECONDS = 86_400
"""The longest wait any setting may ask for (a day): far longer is a typo, and an
operating system's timer refuses some (1e12 s)."""
MOST_IN_FLIGHT = 100
"""The most requests in flight a setting may ask for: each is a thread and a connection."""


def _positive(value: Any, name: str, problems: list[str], most: float) -> float:
    if value <= 0:
        problems.append(f"{name} must be greater than 0 (got {value})")
        return 1.0
    if value > most:
        problems.append(f"{name} must be at most {most:,} (got {value})")
        return 1.0
    return float(value)


def _within_limits(values: Mapping[str, Any], problems: list[str]) -> dict[str, float]:
    """The settings of seconds and of requests in flight, each checked against its range;
    max_retries 0 or more."""
    limits = {
        "request_timeout": MOST_SECONDS,
        "max_retry_wait": MOST_SECONDS,
        "batch_wait_limit_seconds": MOST_SECONDS,
        "max_in_flight": MOST_IN_FLIGHT,
        "max_list_in_flight": MOST_IN_FLIGHT,
    }
    if values["max_retries"] < 0:
        problems.append(f"max_retries must be 0 or more (got {values['max_retries']})")
    return {name: _positive(values[name], name, problems, most) for name, most in limits.items()}


def _store(given: str | None, problems: list[str]) -> StoreLocation:
    """The store: a PostgreSQL URL, or a folder (checked like a file's folder), else the
    default folder."""
    if given is None:
        return StoreLocation(folder=default_store_dir())
    if is_store_url(given):
        problem = store_url_problem(given)
        if problem is not None:
            problems.append(problem)
        return StoreLocation(url=given.strip())
    if "://" in given:
        problems.append(
            f"store {given!r} is neither a folder nor a postgresql:// URL (the only kind of "
            "URL a store can be)"
        )
        return StoreLocation(folder=Path(given))
    try:
        check_writable(str(Path(given) / "index.sqlite"), "store")
    except ConfigError as unwritable:
        problems += unwritable.problems
    return StoreLocation(folder=Path(given))


def _date_formats(formats: list[str], problems: list[str]) -> tuple[str, ...]:
    """The declared date formats, each checked once here rather than on every record."""
    for index, fmt in enumerate(formats):
        problem = date_format_problem(fmt)
        if problem is not None:
            problems.append(f"date_formats[{index}]: {problem}")
    return tuple(formats)


def parse(config: Mapping[str, Any]) -> Settings:
    """Check every setting and build typed settings; `ConfigError` lists every problem."""
    problems = unknown_settings(config)
    invalid = _schema_problems(config)
    problems += [text for texts in invalid.values() for text in texts]
    given = {
        name: value
        for name, value in config.items()
        if value is not None and name in KNOWN and name not in invalid
    }
    values = {**DEFAULTS, **given}
    plan = bool(values["plan"])  # a plan reads the tenant: it is not a plain dry run
    dry_run = bool(values["dry_run"]) and not plan
    api_key = str(values.get("api_key") or "").strip()  # a key file's trailing newline
    if plan and not api_key and "api_key" not in invalid:
        problems.append("api_key is required for a plan, which reads the tenant")
    elif not dry_run and not api_key and "api_key" not in invalid:
        problems.append(
            "api_key is required unless dry_run is on (set dry_run: true to send nothing)"
        )
    problems += [
        problem
        for problem in (key_problem(api_key), url_problem(values["api_url"]))
        if problem is not None
    ]
    routing = dict(values["stream_resources"])
    unknown = {s: r for s, r in routing.items() if r not in RESOURCES}
    if unknown:
        problems.append(
            f"stream_resources names unknown resources {unknown}; known: {', '.join(RESOURCES)}"
        )
    client_ids: dict[str, str] = {}
    if values.get("client_ids_file"):
        try:
            client_ids.update(read_client_ids(values["client_ids_file"]))
        except ConfigError as unreadable:
            problems += unreadable.problems
    client_ids.update(values["client_ids"])
    date_formats = _date_formats(values["date_formats"], problems)
    batch_size = values["batch_size_rows"]
    if batch_size < 1:
        problems.append(f"batch_size_rows must be at least 1 (got {batch_size})")
    dead_letter_path = values.get("dead_letter_path") or None
    receipts_path = values.get("receipts_path") or None
    files = [(dead_letter_path, "dead_letter_path"), (receipts_path, "receipts_path")]
    if dry_run or plan:
        files.append((values["dry_run_path"], "dry_run_path"))
    for path, setting in files:
        if path is not None:
            try:
                check_writable(path, setting)
            except ConfigError as unwritable:
                problems += unwritable.problems
    store = _store(values.get("store") or None, problems)
    max_rejections = values.get("max_rejections")
    if max_rejections is not None and max_rejections < 0:
        problems.append(f"max_rejections must be 0 or more (got {max_rejections})")
    limited = _within_limits(values, problems)
    if problems:
        raise ConfigError(problems)
    return Settings(
        api_key=api_key,
        api_url=values["api_url"],
        request_timeout=limited["request_timeout"],
        max_retries=int(values["max_retries"]),
        max_retry_wait=limited["max_retry_wait"],
        request_size=min(int(batch_size), MAX_ITEMS_PER_REQUEST),
        batch_wait_limit=limited["batch_wait_limit_seconds"],
        max_in_flight=int(limited["max_in_flight"]),
        max_list_in_flight=int(limited["max_list_in_flight"]),
        stream_resources=routing,
        mapping=MappingSettings(
            amount_unit=values["amount_unit"],
            client_ids=client_ids,
            require_external_id=bool(values["require_external_id"]),
            date_formats=date_formats,
            decimal_separator=values["decimal_separator"],
        ),
        dead_letter_path=dead_letter_path,
        max_rejections=max_rejections,
        dry_run=dry_run,
        dry_run_path=values["dry_run_path"],
        plan=plan,
        receipts_path=receipts_path,
        store=store,
        replay_safety=bool(values["replay_safety"]),
        validate_records=bool(values["validate_records"]),
    )
