"""End to end: `dry_run` writes exactly the requests a real run sends, and sends nothing.

Each dry run is compared with a real run of the same input against an empty stand-in
(with `max_in_flight=1`, so the real requests arrive in the order they were made).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import (
    assert_checkpoints,
    batch_posts,
    invoice,
    invoices_with_state,
    run_target,
    schema,
    state,
    target_config,
)

from leanpay_standin import StandIn

CLOSED_PORT_URL = "http://127.0.0.1:9/v1/public"
LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| ")


def varied_invoices(count: int) -> list[dict[str, Any]]:
    """Invoices whose payload differs from the record: aliases, date-times, extra keys."""
    messages = invoices_with_state(count, every=40)
    for message in messages:
        if message["type"] != "RECORD":
            continue
        record = message["record"]
        number = int(record["externalId"][4:])
        if number % 3 == 0:
            record["issue_date"] = "2024-02-29T23:30:00-05:00"
            del record["issueDate"]
        if number % 5 == 0:
            record["net_amount"] = "800"
            record["unknownColumn"] = {"nested": True}
        if number % 7 == 0:
            record["sentDate"] = "2024-03-02"
    return messages


def dry_config(tmp_path: Path, **settings: Any) -> tuple[Path, Path]:
    """A dry-run config with no api_key and no reachable API; (config, dry-run file)."""
    out = tmp_path / "dry" / "requests.jsonl"
    directory = tmp_path / "dry-config"
    directory.mkdir()
    settings.setdefault("api_url", CLOSED_PORT_URL)
    config = target_config(None, directory, dry_run=True, dry_run_path=str(out), **settings)
    return config, out


def real_requests(leanpay: StandIn) -> list[dict[str, Any]]:
    """The batch POSTs that reached the stand-in, as the dry-run file writes them."""
    return [{"method": "POST", "path": p["path"], "body": p["body"]} for p in batch_posts(leanpay)]


def dry_requests(path: Path) -> list[dict[str, Any]]:
    """The dry-run file: one JSON object per line, each {method, path, body}."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(list(line) == ["method", "path", "body"] for line in lines)
    return lines


def without_timestamps(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        del line["rejected_at"], line["run_id"], line["run_started"]
    return lines


def error_lines(stderr: str) -> list[str]:
    return [LOG_PREFIX.sub("", line) for line in stderr.splitlines() if "| ERROR    |" in line]


def test_dry_run_writes_the_requests_a_real_run_sends_and_nothing_else(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = varied_invoices(250)
    real = run_target(target_config(leanpay, tmp_path, max_in_flight=1), messages)
    assert real.returncode == 0, real.stderr
    assert [p["status"] for p in batch_posts(leanpay)] == [201, 201, 201]
    config, out = dry_config(tmp_path)

    dry = run_target(config, messages)

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == ""  # a dry run writes no STATE: nothing was loaded
    assert_checkpoints(real, last=250, every=40)
    assert dry_requests(out) == real_requests(leanpay)
    assert [len(r["body"]["invoices"]) for r in dry_requests(out)] == [100, 100, 50]
    assert "Dry run: 3 requests written to" in dry.stderr
    assert "Traceback" not in dry.stderr


def test_dry_run_pointed_at_the_api_sends_it_nothing(leanpay: StandIn, tmp_path: Path) -> None:
    config, out = dry_config(tmp_path, api_url=leanpay.url)

    dry = run_target(config, invoices_with_state(150))

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == ""
    assert leanpay.requests() == []  # not even the replay-safety listing
    assert [len(r["body"]["invoices"]) for r in dry_requests(out)] == [100, 50]


def test_dry_run_sets_aside_what_a_real_run_would_beside_its_requests_not_in_the_real_file(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = invoices_with_state(150, every=50)
    for message in messages:
        if message["type"] == "RECORD" and message["record"]["externalId"] in (
            "INV-00020",
            "INV-00120",
        ):
            message["record"]["dueDate"] = "2024-02-30"
    real_dead = tmp_path / "real-rejected.jsonl"
    real = run_target(
        target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(real_dead)),
        messages,
    )
    assert real.returncode == 0, real.stderr
    real_lines = real_dead.read_text(encoding="utf-8")
    config, out = dry_config(tmp_path, dead_letter_path=str(real_dead))
    dry_dead = out.with_name("requests.rejected.jsonl")

    dry = run_target(config, messages)

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == ""
    assert real_dead.read_text(encoding="utf-8") == real_lines
    assert dry_requests(out) == real_requests(leanpay)
    assert [len(r["body"]["invoices"]) for r in dry_requests(out)] == [100, 48]
    assert without_timestamps(dry_dead) == without_timestamps(real_dead)
    assert [line["record"]["externalId"] for line in without_timestamps(dry_dead)] == [
        "INV-00020",
        "INV-00120",
    ]
    assert "2 rejected" in dry.stderr


def test_dry_run_without_dead_letter_path_stops_at_a_rejection_like_a_real_run(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = invoices_with_state(250, every=50)
    for message in messages:
        if message["type"] == "RECORD" and message["record"]["externalId"] == "INV-00120":
            message["record"]["amount"] = -1
    real = run_target(target_config(leanpay, tmp_path, max_in_flight=1), messages)
    assert real.returncode == 1
    assert_checkpoints(real, last=100, every=50)
    config, out = dry_config(tmp_path)

    dry = run_target(config, messages)

    assert dry.returncode == 1
    assert dry.stdout == ""
    assert "Traceback" not in dry.stderr
    assert dry_requests(out) == real_requests(leanpay)
    assert len(dry_requests(out)) == 1
    [error] = error_lines(dry.stderr)
    [real_error] = error_lines(real.stderr)
    rejected = "externalId 'INV-00120' (input line 124): amount: must be >= 0, got -1"
    assert rejected in error and rejected in real_error
    # the same record and reason; a dry run writes no STATE, so its message does not
    # speak of it (issue 12)
    assert "STATE" in real_error
    assert "STATE" not in error and "A real run would not send it either" in error


def test_dry_run_of_a_repeated_external_id_matches_the_real_run(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # A tap re-emits INV-00001 (updated): the real run sends it once (the second copy is
    # "already present"); a dry run must show the same single item, not two.
    messages = [schema(), invoice(1), invoice(2), invoice(1), state(3)]
    real = run_target(target_config(leanpay, tmp_path), messages)
    assert real.returncode == 0, real.stderr
    config, out = dry_config(tmp_path)

    dry = run_target(config, messages)

    assert dry.returncode == 0, dry.stderr
    assert dry_requests(out) == real_requests(leanpay)


def test_dry_run_that_would_send_nothing_leaves_no_stale_requests(tmp_path: Path) -> None:
    # the dry-run file of an earlier run must not pass for this run's requests
    config, out = dry_config(tmp_path, dead_letter_path=str(tmp_path / "rejected.jsonl"))
    out.parent.mkdir(parents=True)
    out.write_text(
        json.dumps({"method": "POST", "path": "/invoices/batch", "body": {"invoices": []}}) + "\n"
    )

    dry = run_target(config, [schema(), invoice(1, clientId="not-a-uuid"), state(1)])

    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == ""
    assert not out.exists() or out.read_text() == ""
