"""End to end: a scheduled full-table tap sends the same rows every run. A problem an
earlier run already wrote to the dead-letter file (same record, same contents, same
reason) is counted in one summary line, not written or logged again; new contents or a
new problem are reported in full; a dead-letter file that is gone makes the next run
report everything again (reported.py)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from conftest import Result, invoice, run_target, schema, target_config

from leanpay_standin import StandIn

CHANGED = {0: 5_000, 1: 5_001, 2: 5_002}
"""Invoice number -> the amount the source now says (Leanpay holds 1000 + n)."""
BAD = {10: {"amount": -1}, 11: {"amount": -2}, 12: {"dueDate": "2024-02-30"}}
"""Invoice number -> what makes it invalid (rejected before sending)."""


def loaded() -> list[dict[str, Any]]:
    """The rows a first sync loaded: invoices 0 to 9."""
    return [schema(), *(invoice(n) for n in range(10)), {"type": "STATE", "value": {"at": 0}}]


def hourly(**bad: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row again, as a full-table tap sends it each hour: 0 to 2 changed since
    (Leanpay cannot update an invoice), 10 to 12 invalid (`bad` overrides them), 13 new."""
    changes: dict[int, dict[str, Any]] = {n: {"amount": a} for n, a in CHANGED.items()}
    changes.update({n: {**BAD[n], **bad.get(str(n), {})} for n in BAD})
    rows = [invoice(n, **changes.get(n, {})) for n in range(14)]
    return [schema(), *rows, {"type": "STATE", "value": {"at": 14}}]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reported(result: Result) -> list[str]:
    """The per-record WARNINGs of a run: rejections and changes it reports in full."""
    return [
        line
        for line in result.stderr.splitlines()
        if "WARNING" in line and ("Rejected stream" in line or "Not updated:" in line)
    ]


def to_the_minute(run_started: str) -> str:
    started = datetime.datetime.fromisoformat(run_started)
    return started.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")


def test_a_scheduled_run_reports_only_what_is_new_and_counts_the_rest_in_one_line(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, dead_letter_path=str(dead), max_in_flight=2)
    assert run_target(config, loaded()).returncode == 0

    # run 1: every problem in full, a WARNING and a line each
    first = run_target(config, hourly())
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.states == [{"at": 14}]
    assert len(reported(first)) == 6
    after_first = lines(dead)
    ids = sorted(line["record"]["externalId"] for line in after_first)
    assert ids == ["INV-00000", "INV-00001", "INV-00002", "INV-00010", "INV-00011", "INV-00012"]
    assert "still set aside" not in first.stderr
    since = to_the_minute(after_first[0]["run_started"])

    # runs 2 and 3: nothing new: no line, no per-record WARNING, one summary line
    for _ in range(2):
        again = run_target(config, hourly())
        assert again.returncode == 0, again.stderr[-3000:]
        assert again.states == [{"at": 14}]
        assert reported(again) == []
        assert lines(dead) == after_first
        assert (
            "Summary: 6 records still set aside, unchanged since "
            f"{since} (3 rejected, 3 changed, not updatable); see the dead-letter file {dead}"
        ) in again.stderr
        assert "rejected records set aside in the dead-letter file" not in again.stderr
    stored = [r["externalId"] for r in leanpay.store()]
    assert stored == [*(f"INV-{n:05d}" for n in range(10)), "INV-00013"]  # each once

    # new contents for invoice 10: reported in full; the other five counted
    changed = run_target(config, hourly(**{"10": {"amount": -7}}))
    assert changed.returncode == 0, changed.stderr[-3000:]
    [warning] = reported(changed)
    assert "INV-00010" in warning and "got -7" in warning
    [new_line] = lines(dead)[len(after_first) :]
    assert new_line["record"]["amount"] == -7
    assert f"5 records still set aside, unchanged since {since} (2 rejected, 3 changed" in (
        changed.stderr
    )

    # the dead-letter file is gone (its sidecar kept): everything is reported again
    dead.unlink()
    fresh = run_target(config, hourly())
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert len(reported(fresh)) == 6
    assert len(lines(dead)) == 6
    assert "still set aside" not in fresh.stderr

    # and both gone: the same
    dead.unlink()
    Path(f"{dead}.reported").unlink()
    both = run_target(config, hourly())
    assert both.returncode == 0, both.stderr[-3000:]
    assert len(reported(both)) == 6 and len(lines(dead)) == 6
    assert "still set aside" not in both.stderr
