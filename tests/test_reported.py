"""The memory of problems written to the dead-letter file (reported.py), and how
DeadLetters uses it: what an earlier run wrote is counted, not written again."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from target_leanpay.output.deadletter import DeadLetters, RejectedItem
from target_leanpay.output.reported import Reported, sidecar_of
from target_leanpay.output.runmark import RunMark
from target_leanpay.records.mapping import Problem


def item(n: int, reason: str = "must be >= 0", stream: str = "s", **record: Any) -> RejectedItem:
    fields = {"externalId": f"INV-{n}", "amount": -n, "_sdc_extracted_at": f"t{n}", **record}
    return RejectedItem(stream, f"externalId 'INV-{n}' (input line {n})", fields, None,
                        (Problem("amount", reason),))  # fmt: skip


def run(path: Path, started: str, *items: RejectedItem, streams: tuple[str, ...] = ("s",)) -> int:
    """One run that rejects `items` and ends well; return the lines it wrote."""
    before = len(path.read_text().splitlines()) if path.exists() else 0
    letters = DeadLetters(str(path), None, run=RunMark(f"run-{started}", started))
    for rejected in items:
        letters.reject(rejected)
    letters.close(streams_read=streams)
    return len(path.read_text().splitlines()) - before


T1, T2, T3 = "2026-12-03T09:00:05+00:00", "2026-12-03T10:00:04+00:00", "2026-12-03T11:00:02+00:00"


def test_a_problem_written_once_is_counted_not_written_by_later_runs(tmp_path: Path) -> None:
    dead = tmp_path / "rejected.jsonl"
    assert run(dead, T1, item(1), item(2)) == 2
    letters = DeadLetters(str(dead), None, run=RunMark("r2", T2))
    letters.reject(item(1, _sdc_extracted_at="another extraction"))  # metadata is not contents
    letters.reject(item(2, amount=-5))  # new contents
    letters.reject(item(3))  # a new record
    letters.close(streams_read=["s"])
    assert letters.count == 3 and letters.repeated == {"rejected": 1, "changed": 0}
    assert len(dead.read_text().splitlines()) == 4


def test_the_same_problem_twice_within_one_run_is_written_twice(tmp_path: Path) -> None:
    dead = tmp_path / "rejected.jsonl"
    assert run(dead, T1, item(1), item(1)) == 2
    assert run(dead, T2, item(1), item(1)) == 0


def test_a_problem_not_met_again_by_a_run_that_read_its_stream_is_forgotten(
    tmp_path: Path,
) -> None:
    dead = tmp_path / "rejected.jsonl"
    run(dead, T1, item(1), item(2, stream="other"), streams=("s", "other"))
    run(dead, T2, streams=("s",))  # item 1 loaded or no longer sent; "other" not read
    assert run(dead, T3, item(1), item(2, stream="other"), streams=("s", "other")) == 1
    entries = sidecar_of(str(dead)).read_text().splitlines()
    assert len(entries) == 2


def test_a_failed_run_remembers_what_it_wrote_and_forgets_nothing(tmp_path: Path) -> None:
    dead = tmp_path / "rejected.jsonl"
    run(dead, T1, item(1))
    letters = DeadLetters(str(dead), None, run=RunMark("r2", T2))
    letters.reject(item(2))
    letters.commit()  # a STATE moved past it
    letters.reject(item(3))
    letters.close(keep_waiting=False)  # stopped: item 3's line is dropped
    assert run(dead, T3, item(1), item(2), item(3)) == 1


@pytest.mark.parametrize("damage", ["deleted", "emptied", "edited", "torn sidecar"])
def test_an_entry_whose_line_is_gone_is_dropped(tmp_path: Path, damage: str) -> None:
    dead = tmp_path / "rejected.jsonl"
    run(dead, T1, item(1), item(2))
    sidecar = sidecar_of(str(dead))
    if damage == "deleted":
        dead.unlink()
    elif damage == "emptied":
        dead.write_text("")
    elif damage == "edited":
        first, second = dead.read_text().splitlines()
        dead.write_text(first.replace("INV-1", "INV-9") + "\n" + second + "\n")
    else:
        sidecar.write_text(sidecar.read_text()[:-10])
    memory = Reported(str(dead), run_started=T2)
    expected = {"deleted": 0, "emptied": 0, "edited": 1, "torn sidecar": 1}[damage]
    assert len(sidecar.read_text().splitlines()) == expected  # rewritten at once
    assert len(memory._entries) == expected


def test_the_summary_counts_both_kinds_since_the_earliest_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = tmp_path / "rejected.jsonl"
    run(dead, T1, item(1))
    first = DeadLetters(str(dead), None, run=RunMark("r2", T2))
    first.reject(item(1))
    first.changed(item(2, "changed in the source (amount: 1 → 2)"), [])
    first.close(streams_read=["s"])
    letters = DeadLetters(str(dead), None, run=RunMark("r3", T3))
    caplog.set_level(logging.INFO, logger="target-leanpay")
    caplog.clear()
    letters.reject(item(1))
    letters.changed(item(2, "changed in the source (amount: 1 → 2)"), [])
    letters.log_summary()
    letters.close(streams_read=["s"])
    assert [r.getMessage() for r in caplog.records] == [
        "Summary: 2 records still set aside, unchanged since 2026-12-03T09:00Z (1 rejected, "
        f"1 changed, not updatable); see the dead-letter file {dead}"
    ]


def test_a_sidecar_that_cannot_be_written_costs_a_warning_not_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = tmp_path / "rejected.jsonl"
    sidecar_of(str(dead)).mkdir()  # a folder where the file should be
    assert run(dead, T1, item(1)) == 1
    assert "the problems of this run will be reported in full again" in caplog.text
    assert run(dead, T2, item(1)) == 1


def test_a_dry_run_and_a_plan_keep_no_memory(tmp_path: Path) -> None:
    dead = tmp_path / "rejected.jsonl"
    dry = DeadLetters(str(dead), None, run=RunMark("r1", T1), fresh=True, dry_run=True)
    dry.reject(item(1))
    dry.close()
    assert not sidecar_of(str(dead)).exists()
    tallied: list[RejectedItem] = []
    DeadLetters(str(dead), None, counted_by=tallied.append).reject(item(1))
    assert len(tallied) == 1


def test_a_refusal_naming_another_place_in_the_batch_is_the_same_problem(tmp_path: Path) -> None:
    dead = tmp_path / "rejected.jsonl"

    def refused(place: int) -> RejectedItem:
        problem = Problem("amount", f"invoices.{place}.amount must not be less than 1")
        return RejectedItem("s", "externalId 'INV-1' (input line 1)", {"externalId": "INV-1"},
                            {"externalId": "INV-1"}, (problem,), 422, "{}")  # fmt: skip

    assert run(dead, T1, refused(3)) == 1
    assert run(dead, T2, refused(7)) == 0
