"""Dates Leanpay echoes in the tenant's time zone (`2024-03-05` as `2024-03-04T23:00:00Z`
for a tenant in Paris) are the days sent, not changes: the real CLI against a stand-in
with `date_zone`, asserting the requests, the dead-letter file, the summary and the
zone the store keeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import STREAM, invoice, payload, run_target, schema, state, target_config
from support.dead_letters import dead_letters
from test_e2e_changes import summary

from leanpay_standin import StandIn

COUNT = 50


def dates(i: int) -> dict[str, str]:
    """Winter dates for the first half, summer dates (another UTC offset) for the rest."""
    month = 1 if i < COUNT // 2 else 7
    day = i % 25 + 1
    return {
        "issueDate": f"2024-{month:02d}-{day:02d}",
        "dueDate": f"2024-{month + 1:02d}-{day:02d}",
    }


def messages(**changed: dict[str, Any]) -> list[dict[str, Any]]:
    """The 50 invoices, with `changed` fields of some (by number, as a string)."""
    return [
        schema(),
        *(invoice(i, **{**dates(i), **changed.get(str(i), {})}) for i in range(COUNT)),
        state(COUNT),
    ]


def config(leanpay: StandIn, tmp_path: Path) -> Path:
    return target_config(
        leanpay,
        tmp_path,
        dead_letter_path=str(tmp_path / "dead.jsonl"),
        receipts_path=str(tmp_path / "receipts.jsonl"),
    )


def kept_zones(tmp_path: Path) -> list[str | None]:
    """The date zone each tenant's facts file in the store holds."""
    return [
        json.loads(p.read_text()).get("date_zone")
        for p in (tmp_path / "index").glob("*.facts.json")
    ]


def writes(leanpay: StandIn, since: int) -> list[str]:
    return [r["path"] for r in leanpay.requests()[since:] if r["method"] in ("POST", "PUT")]


def loaded_in_paris(leanpay: StandIn, tmp_path: Path) -> int:
    """Run 1: the 50 invoices created in a Paris tenant; then the tenant index (a cache:
    what this run sent) is lost, as a new schema or a damaged file loses it, so that the
    next run compares with what the listing shows. Return the journal's length."""
    leanpay.configure(date_zone="Europe/Paris")
    first = run_target(config(leanpay, tmp_path), messages())
    assert first.returncode == 0, first.stderr
    assert leanpay.store()[0]["issueDate"] == "2023-12-31T23:00:00.000Z"  # the echo's shape
    assert leanpay.store()[-1]["issueDate"] == "2024-07-24T22:00:00.000Z"
    assert summary(first)[STREAM]["acknowledged"] == COUNT
    assert kept_zones(tmp_path) == ["Europe/Paris"]  # learned from the batch answer
    indexes = list((tmp_path / "index").glob("*.sqlite*"))
    assert indexes
    for index in indexes:
        index.unlink()
    return len(leanpay.requests())


def test_unchanged_invoices_echoed_in_paris_are_not_changes(
    leanpay: StandIn, tmp_path: Path
) -> None:
    before = loaded_in_paris(leanpay, tmp_path)

    second = run_target(config(leanpay, tmp_path), messages())

    assert second.returncode == 0, second.stderr
    assert writes(leanpay, before) == []
    assert summary(second)[STREAM]["already present"] == COUNT
    assert "changed, not updatable" not in summary(second)[STREAM]
    assert dead_letters(tmp_path) == []
    assert "WARNING" not in second.stderr, second.stderr


def test_a_real_change_of_one_day_is_reported(leanpay: StandIn, tmp_path: Path) -> None:
    before = loaded_in_paris(leanpay, tmp_path)

    second = run_target(config(leanpay, tmp_path), messages(**{"30": {"dueDate": "2024-08-07"}}))

    assert second.returncode == 0, second.stderr
    assert writes(leanpay, before) == []
    assert summary(second)[STREAM]["changed, not updatable"] == 1
    lines = dead_letters(tmp_path)
    assert [(x["outcome"], x["changes"]) for x in lines] == [
        ("changed, not updatable",
         [{"field": "dueDate", "leanpay": "2024-08-06", "source": "2024-08-07"}]),
    ]  # fmt: skip
    assert "INV-00030" in lines[0]["record_id"]


def test_the_zone_kept_in_the_store_decides_a_run_that_sends_nothing(
    leanpay: StandIn, tmp_path: Path
) -> None:
    """A day earlier than Paris's is the day UTC would name: only the kept zone tells it
    from the day sent."""
    before = loaded_in_paris(leanpay, tmp_path)
    earlier = {"3": {"issueDate": "2024-01-03"}, "40": {"issueDate": "2024-07-15"}}

    second = run_target(config(leanpay, tmp_path), messages(**earlier))

    assert second.returncode == 0, second.stderr
    assert writes(leanpay, before) == []  # nothing sent: the zone is the store's fact
    assert kept_zones(tmp_path) == ["Europe/Paris"]
    changes = sorted((x["record_id"].split()[1], x["changes"]) for x in dead_letters(tmp_path))
    assert changes == [
        ("'INV-00003'", [{"field": "issueDate", "leanpay": "2024-01-04", "source": "2024-01-03"}]),
        ("'INV-00040'", [{"field": "issueDate", "leanpay": "2024-07-16", "source": "2024-07-15"}]),
    ]

    for facts in (tmp_path / "index").glob("*.facts.json"):  # without it: "cannot tell"
        facts.unlink()
    (tmp_path / "dead.jsonl").unlink()
    third = run_target(config(leanpay, tmp_path), messages(**earlier))
    assert third.returncode == 0, third.stderr
    assert summary(third)[STREAM]["already present"] == COUNT
    assert dead_letters(tmp_path) == []


def test_before_any_zone_is_known_a_paris_echo_is_no_change(
    leanpay: StandIn, tmp_path: Path
) -> None:
    """Invoices another writer created (this target never sent to the tenant)."""
    leanpay.configure(date_zone="Europe/Paris")
    leanpay.store_late([payload(i, **dates(i)) for i in range(COUNT)])
    leanpay.reveal_late()
    before = len(leanpay.requests())

    run = run_target(config(leanpay, tmp_path), messages())

    assert run.returncode == 0, run.stderr
    assert writes(leanpay, before) == []
    assert summary(run)[STREAM]["already present"] == COUNT
    assert dead_letters(tmp_path) == []
    assert kept_zones(tmp_path) == []  # nothing sent: nothing learned


def test_a_zone_the_echoes_contradict_is_replaced_with_one_warning(
    leanpay: StandIn, tmp_path: Path
) -> None:
    """A tenant first seen echoing UTC midnights, then Paris ones (its zone changed in
    Leanpay): said once however many batches show it, and the fact replaced."""
    first = run_target(config(leanpay, tmp_path), messages())
    assert first.returncode == 0, first.stderr
    assert kept_zones(tmp_path) == ["UTC"]
    leanpay.configure(date_zone="Europe/Paris")
    more = [schema(), *(invoice(i, **dates(i % COUNT)) for i in range(100, 300)), state(300)]

    second = run_target(config(leanpay, tmp_path), more)

    assert second.returncode == 0, second.stderr
    assert len([r for r in leanpay.requests() if r["path"] == "/invoices/batch"]) == 3
    warnings = [line for line in second.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, second.stderr
    assert "which is not midnight in UTC" in warnings[0]
    assert "its dates are now read in Europe/Paris" in warnings[0]
    assert kept_zones(tmp_path) == ["Europe/Paris"]
