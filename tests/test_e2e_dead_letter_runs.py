"""End to end: the dead-letter file over several runs of one input.

Each line names its run (`run_id`, `run_started`, the latter shared with the run's
receipts); a dry run writes its would-be rejections beside its requests, a plan only
counts them, a run whose key is refused adds nothing, a failed run keeps only the lines
its STATE carried, a re-run counts what an earlier run wrote in one line (reported.py),
and a new file gets every rejection again, under the run's own id.
"""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path
from typing import Any

from conftest import (
    STREAM,
    assert_checkpoints,
    emitted,
    invoice,
    invoices_with_state,
    run_target,
    target_config,
)

from leanpay_standin import StandIn

BAD = {
    20: ({"amount": -1}, "amount", "must be >= 0, got -1"),
    30: ({"dueDate": "2024-02-30"}, "dueDate", "'2024-02-30' is not a calendar date"),
}
"""Invoice number -> (change that makes it invalid, field, reason)."""


def messages() -> list[dict[str, Any]]:
    """250 invoices, STATE every 50; invoices 20 and 30 cannot be sent."""
    result = invoices_with_state(250, every=50)
    for message in result:
        if message["type"] == "RECORD":
            number = int(message["record"]["externalId"][4:])
            if number in BAD:
                message["record"].update(BAD[number][0])
    return result


def rejection(number: int) -> dict[str, Any]:
    """The line of invoice `number`, without its run and time."""
    change, field, reason = BAD[number]
    line = number + 2 + number // 50  # the SCHEMA line and one STATE per 50 records before
    record = invoice(number, **change)["record"]
    return {
        "stream": STREAM,
        "record_id": f"externalId 'INV-{number:05d}' (input line {line})",
        "record": record,
        "payload": None,
        "reasons": [{"field": field, "reason": reason}],
        "http_status": None,
        "api_message": None,
    }


def read_lines(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(run_id, run_started, rest of the line) per line; `rejected_at` checked and dropped."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = []
    for raw in text.splitlines():
        line = json.loads(raw)
        assert list(line)[:2] == ["run_id", "run_started"]
        assert datetime.datetime.fromisoformat(line.pop("rejected_at")).tzinfo is not None
        run_id, started = line.pop("run_id"), line.pop("run_started")
        uuid.UUID(run_id)
        assert datetime.datetime.fromisoformat(started).tzinfo is not None
        lines.append((run_id, started, line))
    return lines


def runs_of(lines: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """The run ids, in the order their first line appears."""
    return list(dict.fromkeys(run_id for run_id, _, _ in lines))


def test_each_run_adds_its_own_rejections_once_and_only_what_it_meant(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    receipts = tmp_path / "receipts.jsonl"
    dry_requests = tmp_path / "dry" / "requests.jsonl"
    dry_rejected = tmp_path / "dry" / "requests.rejected.jsonl"
    settings: dict[str, Any] = {
        "max_in_flight": 1,
        "dead_letter_path": str(dead),
        "receipts_path": str(receipts),
        "dry_run_path": str(dry_requests),
    }
    every_bad = [rejection(n) for n in BAD]

    # a dry run: its would-be rejections beside its requests, the real file untouched
    dry = run_target(target_config(leanpay, tmp_path, dry_run=True, **settings), messages())
    assert dry.returncode == 0, dry.stderr
    assert not dead.exists()
    dry_lines = read_lines(dry_rejected)
    assert [line for _, _, line in dry_lines] == every_bad
    assert len(runs_of(dry_lines)) == 1
    assert f"set aside in {dry_rejected}" in dry.stderr

    # a second dry run replaces that file: it holds the last dry run only
    again = run_target(target_config(leanpay, tmp_path, dry_run=True, **settings), messages())
    assert again.returncode == 0, again.stderr
    again_lines = read_lines(dry_rejected)
    assert [line for _, _, line in again_lines] == every_bad
    assert runs_of(again_lines) != runs_of(dry_lines)

    # a plan: counted in its report, written nowhere
    plan = run_target(target_config(leanpay, tmp_path, plan=True, **settings), messages())
    assert plan.returncode == 0, plan.stderr
    assert "2 would be rejected" in plan.stderr
    assert not dead.exists()
    assert read_lines(dry_rejected) == again_lines

    # the key is refused at the first request (the replay-safety listing): no line
    wrong_key = {**settings, "api_key": "wrong-key-0000"}
    refused = run_target(target_config(leanpay, tmp_path, **wrong_key), messages())
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr
    assert not dead.exists()
    assert "of this run not written to" in refused.stderr

    # Leanpay fails after the first request: the STATE it relied on wrote the lines
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": "/invoices/batch", "action": "status", "status": 503, "times": 1000},
    )
    failing = {**settings, "max_retries": 1, "max_retry_wait": 0.1}
    failed = run_target(target_config(leanpay, tmp_path, **failing), messages())
    assert failed.returncode == 1
    assert emitted(failed.states) == [100]
    after_failure = read_lines(dead)
    assert [line for _, _, line in after_failure] == every_bad
    assert len(runs_of(after_failure)) == 1

    # the same input again: the 100 loaded invoices are present, 20 and 30 rejected again,
    # as the failed run already wrote them: counted in one line, not written again
    leanpay.state.faults.clear()
    rerun = run_target(target_config(leanpay, tmp_path, **settings), messages())
    assert rerun.returncode == 0, rerun.stderr
    assert_checkpoints(rerun, last=250, every=50)
    assert read_lines(dead) == after_failure
    failed_started = after_failure[0][1]
    since = datetime.datetime.fromisoformat(failed_started).strftime("%Y-%m-%dT%H:%MZ")
    assert (
        f"Summary: 2 records still set aside, unchanged since {since} (2 rejected); see the "
        f"dead-letter file {dead}"
    ) in rerun.stderr
    assert "Rejected stream" not in rerun.stderr
    # one start per run, on its receipts and its rejections alike
    starts = [json.loads(line)["run_started"] for line in receipts.read_text().splitlines()]
    assert starts[0] == failed_started

    # the dead-letter file moved away (rotated): the next run writes them again
    dead.rename(tmp_path / "rejected.old.jsonl")
    rotated = run_target(target_config(leanpay, tmp_path, **settings), messages())
    assert rotated.returncode == 0, rotated.stderr
    final = read_lines(dead)
    assert [line for _, _, line in final] == every_bad
    assert runs_of(final) != runs_of(after_failure)
    assert "Summary: 2 rejected records set aside in the dead-letter file" in rotated.stderr
