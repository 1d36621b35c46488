"""Every setting of target-leanpay, declared once, with its description and default."""

from __future__ import annotations

import contextlib
import csv
import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from singer_sdk import typing as th

from target_leanpay.errors import ConfigError
from target_leanpay.mapping import MappingSettings
from target_leanpay.resources import MAX_ITEMS_PER_REQUEST, RESOURCES, Resource

DEFAULT_RESOURCE = "invoices"

SCHEMA = th.PropertiesList(
    th.Property(
        "api_key",
        th.StringType,
        secret=True,
        title="API key",
        description="Leanpay API key, sent as-is in the Authorization header. "
        "Not needed for a dry run.",
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
        "checked re-sends after an unanswered one (0 = never). Other 4xx are never retried.",
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
        description="JSON-lines file where every item Leanpay acknowledges is recorded "
        "(resource, externalId, Leanpay id, stream, run start), durably, before the STATE "
        "that covers it. Later runs read it: to refer to credit notes by externalId in "
        "links and paybacks, and to never send again what this target created.",
    ),
    th.Property(
        "replay_safety",
        th.BooleanType,
        default=True,
        title="Replay safety",
        description="Read the externalIds Leanpay already holds (GET /invoices, every page) "
        "and never send one again. Costs one request per page of existing invoices per "
        "run, max_list_in_flight at a time; turn off only for loads into an empty tenant "
        "(records repeating an externalId within one input are held back either way).",
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


@dataclass(frozen=True)
class Settings:
    """The validated settings, typed."""

    api_key: str
    api_url: str
    request_timeout: float
    max_retries: int
    max_retry_wait: float
    request_size: int
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
    replay_safety: bool
    validate_records: bool

    def resource_for(self, stream: str) -> Resource:
        """The resource a stream loads: stream_resources, else invoices."""
        return RESOURCES[self.stream_resources.get(stream, DEFAULT_RESOURCE)]


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and _is_local(parts.hostname):
        return url
    raise ConfigError(
        f"api_url {url!r} must be https:// (plain http:// only for localhost / 127.0.0.1)"
    )


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


def check_writable(path: str, setting: str) -> None:
    """Fail at start, not at the first rejection, when a file cannot be written."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"{setting} {path!r}: cannot create its folder ({exc.strerror})"
        ) from None
    if target.is_dir() or not os.access(target if target.exists() else target.parent, os.W_OK):
        raise ConfigError(f"{setting} {path!r} is not a writable file")


DEFAULTS: dict[str, Any] = {
    name: spec["default"] for name, spec in SCHEMA["properties"].items() if "default" in spec
}
"""Each setting's default, as the schema declares it (and `--about` shows it)."""


def _positive(value: Any, name: str) -> float:
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0 (got {value})")
    return float(value)


def parse(config: Mapping[str, Any]) -> Settings:
    """Check what the JSON schema cannot, and build typed settings."""
    given = {name: value for name, value in config.items() if value is not None}
    values = {**DEFAULTS, **given}
    plan = bool(values["plan"])  # a plan reads the tenant: it is not a plain dry run
    dry_run = bool(values["dry_run"]) and not plan
    api_key = str(values.get("api_key") or "").strip()  # a key file's trailing newline
    if plan and not api_key:
        raise ConfigError("api_key is required for a plan, which reads the tenant")
    if not dry_run and not api_key:
        raise ConfigError("api_key is required (or set dry_run: true to send nothing)")
    if any(not c.isprintable() or c.isspace() for c in api_key):
        raise ConfigError(
            "api_key contains spaces or control characters, which an HTTP header cannot "
            "carry; copy the key again"
        )
    routing = dict(values["stream_resources"])
    unknown = {s: r for s, r in routing.items() if r not in RESOURCES}
    if unknown:
        raise ConfigError(
            f"stream_resources names unknown resources {unknown}; known: {', '.join(RESOURCES)}"
        )
    client_ids: dict[str, str] = {}
    if values.get("client_ids_file"):
        client_ids.update(read_client_ids(values["client_ids_file"]))
    client_ids.update(values["client_ids"])
    batch_size = values["batch_size_rows"]
    if batch_size < 1:
        raise ConfigError(f"batch_size_rows must be at least 1 (got {batch_size})")
    dead_letter_path = values.get("dead_letter_path") or None
    if dead_letter_path is not None:
        check_writable(dead_letter_path, "dead_letter_path")
    max_rejections = values.get("max_rejections")
    if max_rejections is not None and max_rejections < 0:
        raise ConfigError(f"max_rejections must be 0 or more (got {max_rejections})")
    return Settings(
        api_key=api_key,
        api_url=_check_url(values["api_url"]),
        request_timeout=_positive(values["request_timeout"], "request_timeout"),
        max_retries=max(0, int(values["max_retries"])),
        max_retry_wait=_positive(values["max_retry_wait"], "max_retry_wait"),
        request_size=min(int(batch_size), MAX_ITEMS_PER_REQUEST),
        max_in_flight=int(_positive(values["max_in_flight"], "max_in_flight")),
        max_list_in_flight=int(_positive(values["max_list_in_flight"], "max_list_in_flight")),
        stream_resources=routing,
        mapping=MappingSettings(
            amount_unit=values["amount_unit"],
            client_ids=client_ids,
            require_external_id=bool(values["require_external_id"]),
        ),
        dead_letter_path=dead_letter_path,
        max_rejections=max_rejections,
        dry_run=dry_run,
        dry_run_path=values["dry_run_path"],
        plan=plan,
        receipts_path=values.get("receipts_path") or None,
        replay_safety=bool(values["replay_safety"]),
        validate_records=bool(values["validate_records"]),
    )


NUMBER_SETTINGS = frozenset(
    name for name, spec in SCHEMA["properties"].items() if "number" in str(spec.get("type"))
)


def coerce_numbers(config: dict[str, Any]) -> dict[str, Any]:
    """Turn numeric strings of `number` settings (from the environment) into numbers."""
    for name in NUMBER_SETTINGS & config.keys():
        value = config[name]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):  # else left as is: validation names it
                config[name] = float(value)
    return config
