"""End to end: malformed input from the tap.

Most tests put the bad line at input line 124, after records 0..119 of 150 invoices with a
STATE every 50: records 0..99 have been sent and acknowledged by then, so the run must end
with exactly STATE 100, the 100 invoices stored, and one short error naming line 124.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    STREAM,
    Result,
    assert_checkpoints,
    batch_posts,
    emitted,
    invoice,
    invoices_with_state,
    payload,
    run_target,
    schema,
    state,
    target_config,
)

from leanpay_standin import StandIn

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| ")
BAD_LINE = 124
"""Where `with_line_at_124` puts the bad line: right after record 119."""
SMALL_STDERR = 4000
"""A run's whole stderr stays below this (version banner, one error, the summary)."""
HUGE = 100_000


def ext(i: int) -> str:
    return f"INV-{i:05d}"


def with_line_at_124(line: dict[str, Any] | str) -> list[dict[str, Any] | str]:
    messages: list[dict[str, Any] | str] = list(invoices_with_state(150, every=50))
    messages.insert(BAD_LINE - 1, line)
    return messages


def with_record_changed(i: int, **changes: Any) -> list[dict[str, Any] | str]:
    messages = invoices_with_state(150, every=50)
    for message in messages:
        if message["type"] == "RECORD" and message["record"]["externalId"] == ext(i):
            message["record"].update(changes)
    return list(messages)


def record_json(**record: Any) -> str:
    return json.dumps({"type": "RECORD", "stream": STREAM, "record": record})


def non_json_number(literal: str) -> str:
    """A RECORD line with `literal` where a JSON number belongs."""
    line = json.dumps({"type": "RECORD", "stream": STREAM, "record": {"amount": 0}})
    return line.replace('"amount": 0', f'"amount": {literal}')


def the_error(result: Result) -> str:
    """The run failed with exactly one short, single-line ERROR record and no traceback."""
    assert result.returncode == 1, result.stderr
    stderr = result.stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), stderr[:2000]
    errors = [line for line in lines if "| ERROR    |" in line]
    assert len(errors) == 1, stderr[:2000]
    assert len(stderr) < SMALL_STDERR, f"{len(stderr)} characters of stderr"
    return errors[0]


def assert_first_100_only(leanpay: StandIn, result: Result) -> None:
    """Records 0..99 acknowledged, checkpointed, and nothing after them."""
    assert [(p["items"], p["status"]) for p in batch_posts(leanpay)] == [(100, 201)]
    assert [i["externalId"] for i in leanpay.store("invoices")] == [ext(i) for i in range(100)]
    assert_checkpoints(result, last=100, every=50)


MALFORMED_LINES = {
    "not-json": ('{"type": "RECORD", oops', "is not valid JSON"),
    # NaN and Infinity are not JSON; Python's json module would accept them as floats
    "nan": (non_json_number("NaN"), "not valid JSON"),
    "infinity": (non_json_number("Infinity"), "not valid JSON"),
    "minus-infinity": (non_json_number("-Infinity"), "not valid JSON"),
    "unknown-type": ('{"type": "FOO"}', "unknown message type 'FOO'"),
    "no-type": ('{"stream": "public-invoices"}', "unknown message type None"),
    "array": ('[{"type": "RECORD"}]', "is not a JSON object"),
    "number": ("42", "is not a JSON object"),
    "record-not-object": (
        json.dumps({"type": "RECORD", "stream": STREAM, "record": [1, 2]}),
        "'record' is not an object",
    ),
    "record-missing": (
        json.dumps({"type": "RECORD", "stream": STREAM}),
        "missing required record key",
    ),
    "state-without-value": ('{"type": "STATE"}', "missing required value key"),
    "record-before-its-schema": (
        json.dumps({"type": "RECORD", "stream": "credit-notes", "record": {}}),
        "a RECORD for stream 'credit-notes' arrived before that stream's SCHEMA",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_LINES))
def test_a_malformed_line_stops_the_run_naming_the_line(
    leanpay: StandIn, tmp_path: Path, case: str
) -> None:
    line, what = MALFORMED_LINES[case]
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, with_line_at_124(line))

    error = the_error(result)
    assert f"Input line {BAD_LINE}" in error
    assert what in error
    assert_first_100_only(leanpay, result)


def test_a_record_before_any_schema_fails_at_line_1_without_a_request(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path)

    result = run_target(config, invoices_with_state(10)[1:])

    error = the_error(result)
    assert f"Input line 1: a RECORD for stream '{STREAM}' arrived before" in error
    assert result.stdout == ""
    assert leanpay.requests() == []


# -- the tap's own schema -----------------------------------------------------------------


def test_validate_records_refuses_a_record_that_breaks_its_own_schema(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # the SCHEMA says amount is an integer; the record holds a numeric string
    config = target_config(leanpay, tmp_path, max_in_flight=1, validate_records=True)

    result = run_target(config, with_record_changed(120, amount="1120"))

    error = the_error(result)
    assert f"Input line {BAD_LINE}: stream '{STREAM}'" in error
    assert "does not match the tap's own schema" in error
    assert "'1120' is not of type 'integer', 'null'" in error
    assert_first_100_only(leanpay, result)


def test_by_default_the_same_record_is_judged_by_leanpay_rules_only(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, with_record_changed(120, amount="1120"))

    assert result.returncode == 0, result.stderr
    # a numeric string is a valid amount for Leanpay's rules: sent as the integer
    assert leanpay.posted_items() == [payload(i) for i in range(150)]
    assert_checkpoints(result, last=150, every=50)


# -- values Leanpay cannot take -------------------------------------------------------------


def test_an_impossible_date_stops_the_run_naming_the_field(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, with_record_changed(120, issueDate="2024-13-45"))

    error = the_error(result)
    assert f"stream '{STREAM}', record externalId 'INV-00120' (input line {BAD_LINE})" in error
    assert "issueDate: '2024-13-45' is not a calendar date" in error
    assert_first_100_only(leanpay, result)


def test_an_impossible_date_is_dead_lettered_when_there_is_a_dead_letter_file(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, with_record_changed(120, issueDate="2024-13-45"))

    assert result.returncode == 0, result.stderr
    good = [i for i in range(150) if i != 120]
    assert [i["externalId"] for i in leanpay.store("invoices")] == [ext(i) for i in good]
    assert_checkpoints(result, last=150, every=50)
    [line] = [json.loads(text) for text in dead.read_text().splitlines()]
    for stamp in ("rejected_at", "run_started", "run_id"):
        del line[stamp]
    assert line == {
        "stream": STREAM,
        "record_id": f"externalId 'INV-00120' (input line {BAD_LINE})",
        "record": invoice(120, issueDate="2024-13-45")["record"],
        "payload": None,
        "reasons": [{"field": "issueDate", "reason": "'2024-13-45' is not a calendar date"}],
        "http_status": None,
        "api_message": None,
    }


def test_a_100_kb_reference_is_refused_without_quoting_it(leanpay: StandIn, tmp_path: Path) -> None:
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, with_record_changed(120, reference="R" * HUGE))

    error = the_error(result)
    assert f"externalId 'INV-00120' (input line {BAD_LINE})" in error
    assert f"reference: is {HUGE} characters long; the limit is 80" in error
    assert "R" * 200 not in result.stderr
    assert_first_100_only(leanpay, result)


HUGE_ELSEWHERE = {
    "junk-line": "J" * HUGE,
    "message-type": json.dumps({"type": "J" * HUGE}),
    "stream-name": json.dumps({"type": "RECORD", "stream": "J" * HUGE, "record": {}}),
    "external-id": record_json(
        externalId="J" * HUGE,
        clientId="6513270e-269e-4d37-b2a7-4de452e6b438",
        reference="R",
        amount=-1,
        issueDate="2024-03-01",
        dueDate="2024-03-31",
    ),
}


@pytest.mark.parametrize("case", sorted(HUGE_ELSEWHERE))
def test_a_100_kb_value_is_never_echoed_in_full(
    leanpay: StandIn, tmp_path: Path, case: str
) -> None:
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, with_line_at_124(HUGE_ELSEWHERE[case]))

    error = the_error(result)
    assert "J" * 200 not in result.stderr
    assert f"line {BAD_LINE}" in error
    assert_first_100_only(leanpay, result)


# -- BATCH messages -------------------------------------------------------------------------


def test_a_batch_message_is_loaded_never_dropped(leanpay: StandIn, tmp_path: Path) -> None:
    # singer-sdk would hand the records of a BATCH file to process_batch, past mapping;
    # here each takes the RECORD path, and STATE 3 is written once they are loaded
    # (tests/test_e2e_batch_files.py and test_e2e_batch_tap.py for the rest).
    batch_file = tmp_path / "batch-0001.jsonl"
    batch_file.write_text("".join(json.dumps(invoice(i)["record"]) + "\n" for i in range(3)))
    messages = [
        schema(),
        {
            "type": "BATCH",
            "stream": STREAM,
            "encoding": {"format": "jsonl", "compression": "none"},
            "manifest": [batch_file.as_uri()],
        },
        state(3),
    ]
    config = target_config(leanpay, tmp_path)

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert [i["externalId"] for i in leanpay.store("invoices")] == [ext(i) for i in range(3)]
    assert emitted(result.states) == [3]
