"""Records repeating an externalId within one input (issue 20, point 8): identical repeats
are quiet, repeats with other contents are rejected with both values side by side, and
the plan tells them apart from what Leanpay holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import (
    STREAM,
    Running,
    batch_posts,
    invoice,
    run_target,
    schema,
    singer_input,
    state,
    target_config,
    wait_for,
)
from support.dead_letters import dead_letters

from leanpay_standin import StandIn


def reasons_by_record(path: Path) -> dict[str, list[str]]:
    """The dead-letter file's reasons, by the record each line names."""
    found: dict[str, list[str]] = {}
    for line in dead_letters(path):
        found.setdefault(line["record_id"], []).extend(r["reason"] for r in line["reasons"])
    return found


def test_a_repeat_with_other_contents_is_rejected_side_by_side_and_a_same_one_is_quiet(
    leanpay: StandIn, tmp_path: Path
) -> None:
    rejected = tmp_path / "rejected.jsonl"
    config = target_config(
        leanpay, tmp_path, max_in_flight=1, batch_wait_limit_seconds=0.2,
        dead_letter_path=str(rejected),
    )  # fmt: skip
    target = Running(config)
    # in one chunk: INV-1 twice alike, INV-2 twice with another amount
    target.feed(singer_input([schema(), invoice(1), invoice(1), invoice(2)]))
    target.feed(singer_input([invoice(2, amount=1200), invoice(3), state(5)]))
    wait_for(lambda: len(leanpay.store("invoices")) == 3)  # the partial chunk went out
    wait_for(lambda: bool(target.states))
    # after Leanpay acknowledged INV-3: a repeat with another due date
    target.feed(singer_input([invoice(3, dueDate="2024-04-30"), state(6)]))
    target.close_input()
    assert target.process.wait(timeout=60) == 0

    stored = {o["externalId"]: o for o in leanpay.store("invoices")}
    assert sorted(stored) == ["INV-00001", "INV-00002", "INV-00003"]
    assert stored["INV-00002"]["amount"] == 1002
    assert [p["items"] for p in batch_posts(leanpay)] == [3]
    assert reasons_by_record(rejected) == {
        "externalId 'INV-00002' (input line 5)": [
            "repeats externalId 'INV-00002' of an earlier record of this input (externalId "
            "'INV-00002' (input line 4)) with other contents (amount: 1002 → 1200); only the "
            "first is sent: fix the source so that one externalId names one document"
        ],
        "externalId 'INV-00003' (input line 8)": [
            "repeats externalId 'INV-00003' of an earlier record of this input (externalId "
            "'INV-00003' (input line 6)) with other contents (dueDate: '2024-03-31' → "
            "'2024-04-30'); only the first is sent: fix the source so that one externalId "
            "names one document"
        ],
    }
    assert [s["bookmarks"][STREAM]["emitted"] for s in target.states] == [5, 6]


def test_a_plan_counts_repeats_apart_from_what_leanpay_holds(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, plan=True, dry_run_path=str(tmp_path / "plan.jsonl"))
    messages: list[dict[str, Any]] = [schema(), invoice(1), invoice(1), invoice(2), state(3)]

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert (
        "stream 'public-invoices' -> invoices: 3 records read, 2 would be sent, 0 already in "
        "Leanpay, 1 repeating an earlier record of the input, 0 would be rejected"
    ) in result.stderr
