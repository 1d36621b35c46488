"""A plan that names what to fix, through the CLI against the stand-in: every reason
counted (a record with two bad fields under both), the first values and records of each,
the unmapped client codes, the requests file named; the verdict first: NOT READY when nothing
could be sent, NOTHING NEW TO SEND when everything is already in Leanpay or set aside.

The input is a French ERP export as `tap-csv` emits it (every column a string)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import CLIENT_ID, invoice, run_target, schema, state, target_config

from leanpay_standin import StandIn

STREAM = "factures"
LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| INFO +\| [\w.-]+ +\| Plan: ")
OTHER_CLIENT = "9d0c4a8e-6f1b-4e2a-b3c5-d7e9f1a2b4c6"

ROWS = [
    # externalId, clientExternalId, amount, issueDate, dueDate
    ("F-1", "C-017", "1 234,50", "05/03/2024", "05/04/2024"),
    ("F-2", "C-404", "12.50", "06/03/2024", "06/04/2024"),
    ("F-3", "C-405", "99,00", "2024-03-07", "2024-04-07"),
    ("F-4", "C-404", "1.000,00", "08/03/2024", "31/02/2024"),
]


POINT = (
    "is not a decimal number with a decimal point; for amounts written with a decimal "
    "comma (1 234,50), set decimal_separator to ,"
)
COMMA = (
    "is not an amount written with a decimal comma (1234,50, 1 234,50 or 1.234,50: "
    "groups of three digits)"
)
NOT_ISO = (
    "is not an ISO 8601 date (YYYY-MM-DD) or date-time; to read dates written otherwise, "
    "list their formats in date_formats (e.g. %d/%m/%Y)"
)
UNMAPPED = "has no Leanpay id in client_ids / client_ids_file"


def french_export() -> list[dict[str, Any]]:
    columns = ["externalId", "reference", "clientExternalId", "amount", "issueDate", "dueDate"]
    messages: list[dict[str, Any]] = [
        {
            "type": "SCHEMA",
            "stream": STREAM,
            "schema": {
                "type": "object",
                "properties": {c: {"type": ["string", "null"]} for c in columns},
            },
            "key_properties": ["externalId"],
        }
    ]
    for external_id, client, amount, issued, due in ROWS:
        record = dict(
            zip(columns, [external_id, external_id, client, amount, issued, due], strict=True)
        )
        messages.append({"type": "RECORD", "stream": STREAM, "record": record})
    messages.append({"type": "STATE", "value": {"bookmarks": {STREAM: {"line": 4}}}})
    return messages


def plan_lines(stderr: str) -> list[str]:
    """The plan's report: the messages of its `Plan: ` INFO lines, in order."""
    return [line[m.end() :] for line in stderr.splitlines() if (m := LOG_PREFIX.match(line))]


def test_a_plan_with_nothing_to_send_names_every_reason_value_and_client_code(
    leanpay: StandIn, tmp_path: Path
) -> None:
    requests_file = tmp_path / "would-send.jsonl"
    config = target_config(
        leanpay,
        tmp_path,
        plan=True,
        dry_run_path=str(requests_file),
        dead_letter_path=str(tmp_path / "rejected.jsonl"),
        amount_unit="major",
        client_ids={"C-017": CLIENT_ID},
    )

    result = run_target(config, french_export())

    assert result.returncode == 0, result.stderr
    assert plan_lines(result.stderr) == [
        "NOT READY: no record could be sent (4 rejected records); fix the reasons below. "
        f"The requests file {requests_file} is empty",
        "stream 'factures' -> invoices: 4 records read, 0 would be sent, 0 already in "
        "Leanpay, 4 would be rejected (0 with an unresolved reference)",
        f"    3 x amount: … {POINT}",
        "        e.g. '1 234,50' in externalId 'F-1' (input line 2); '99,00' in externalId "
        "'F-3' (input line 4); '1.000,00' in externalId 'F-4' (input line 5)",
        f"    3 x issueDate: … {NOT_ISO}",
        "        e.g. '05/03/2024' in externalId 'F-1' (input line 2); '06/03/2024' in "
        "externalId 'F-2' (input line 3); '08/03/2024' in externalId 'F-4' (input line 5)",
        f"    3 x dueDate: … {NOT_ISO}",
        "        e.g. '05/04/2024' in externalId 'F-1' (input line 2); '06/04/2024' in "
        "externalId 'F-2' (input line 3); '31/02/2024' in externalId 'F-4' (input line 5)",
        f"    3 x clientId: client … (clientExternalId) {UNMAPPED}",
        "        e.g. 'C-404' in externalId 'F-2' (input line 3); 'C-405' in externalId "
        "'F-3' (input line 4); 'C-404' in externalId 'F-4' (input line 5)",
        f"2 client codes with {UNMAPPED[4:]}: 'C-404' (2 records), 'C-405' (1 record)",
    ]
    # nothing sent; the listing may not even have begun when a run with nothing to send ends
    assert {r["method"] for r in leanpay.requests()} <= {"GET"}
    assert requests_file.read_text() == ""
    assert not (tmp_path / "rejected.jsonl").exists()  # a plan writes no dead letter
    assert result.states == []


def test_a_plan_after_declaring_the_formats_names_what_is_left_and_the_requests_file(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.seed_invoices(3)
    requests_file = tmp_path / "would-send.jsonl"
    config = target_config(
        leanpay,
        tmp_path,
        plan=True,
        dry_run_path=str(requests_file),
        dead_letter_path=str(tmp_path / "rejected.jsonl"),
        amount_unit="major",
        decimal_separator=",",
        date_formats=["%d/%m/%Y"],
        client_ids={"C-017": CLIENT_ID, "C-405": OTHER_CLIENT},
    )

    result = run_target(config, french_export())

    assert result.returncode == 0, result.stderr
    assert plan_lines(result.stderr) == [
        "READY WITH REJECTIONS: a real run would send 2 records in 1 request and set 2 "
        f"aside in {tmp_path / 'rejected.jsonl'}; the requests are written to {requests_file}",
        "stream 'factures' -> invoices: 4 records read, 2 would be sent, 0 already in "
        "Leanpay, 2 would be rejected (0 with an unresolved reference)",
        f"    2 x clientId: client … (clientExternalId) {UNMAPPED}",
        "        e.g. 'C-404' in externalId 'F-2' (input line 3); 'C-404' in externalId "
        "'F-4' (input line 5)",
        f"    1 x amount: … {COMMA}",
        "        e.g. '12.50' in externalId 'F-2' (input line 3)",
        "    1 x dueDate: … is not a calendar date (%d/%m/%Y)",
        "        e.g. '31/02/2024' in externalId 'F-4' (input line 5)",
        f"1 client code with {UNMAPPED[4:]}: 'C-404' (2 records)",
    ]
    [written] = [json.loads(line) for line in requests_file.read_text().splitlines()]
    assert written == {
        "method": "POST",
        "path": "/invoices/batch",
        "body": {
            "invoices": [
                {
                    "clientId": CLIENT_ID,
                    "reference": "F-1",
                    "amount": 123450,
                    "issueDate": "2024-03-05",
                    "dueDate": "2024-04-05",
                    "externalId": "F-1",
                },
                {
                    "clientId": OTHER_CLIENT,
                    "reference": "F-3",
                    "amount": 9900,
                    "issueDate": "2024-03-07",
                    "dueDate": "2024-04-07",
                    "externalId": "F-3",
                },
            ]
        },
    }
    assert {r["method"] for r in leanpay.requests()} == {"GET"}


def test_a_plan_without_dead_letters_says_a_real_run_stops_and_names_the_requests_file(
    leanpay: StandIn, tmp_path: Path
) -> None:
    requests_file = tmp_path / "would-send.jsonl"
    config = target_config(
        leanpay,
        tmp_path,
        plan=True,
        dry_run_path=str(requests_file),
        amount_unit="major",
        decimal_separator=",",
        date_formats=["%d/%m/%Y"],
        client_ids={"C-017": CLIENT_ID, "C-404": OTHER_CLIENT, "C-405": OTHER_CLIENT},
    )

    result = run_target(config, french_export())

    assert result.returncode == 0, result.stderr
    assert plan_lines(result.stderr)[0] == (
        "NOT READY: a real run would stop at the first of 2 rejected records (the first: "
        "stream 'factures', externalId 'F-2' (input line 3)); fix them, or set "
        f"dead_letter_path to set them aside. The requests file {requests_file} holds the "
        "other 2 records in 1 request"
    )


def test_a_plan_of_the_steady_state_says_nothing_new_to_send_first(
    leanpay: StandIn, tmp_path: Path
) -> None:
    """A scheduled full-table tap's second run: every sendable record already in Leanpay,
    some set aside again, some changed at the source. A real run exits 0 and does the right
    thing, so the plan's end opens with NOTHING NEW TO SEND, not NOT READY."""
    dead_letters = tmp_path / "rejected.jsonl"

    def export(changed_amount: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [schema()]
        messages += [invoice(i) for i in range(5)]
        messages.append(invoice(5, amount=changed_amount))
        messages += [invoice(i, amount=-1) for i in (6, 7)]  # rejected each run
        return [*messages, state(8)]

    first = run_target(
        target_config(leanpay, tmp_path, dead_letter_path=str(dead_letters)), export(1005)
    )
    assert first.returncode == 0, first.stderr
    requests_file = tmp_path / "would-send.jsonl"
    plan_config = target_config(
        leanpay,
        tmp_path,
        plan=True,
        dry_run_path=str(requests_file),
        dead_letter_path=str(dead_letters),
    )

    plan = run_target(plan_config, export(2005))

    assert plan.returncode == 0, plan.stderr
    lines = plan_lines(plan.stderr)
    # the verdict opens the plan's end, before the per-stream details and the summary
    assert plan.stderr.index("Plan: NOTHING NEW TO SEND") < plan.stderr.index("Summary")
    assert lines[0] == (
        "NOTHING NEW TO SEND: every record is already in Leanpay (5), changed but cannot be "
        "updated (1, listed below) or would be set aside (2, in "
        f"{dead_letters}); a real run would send nothing and exit 0. The requests file "
        f"{requests_file} is empty"
    )
    assert requests_file.read_text() == ""

    again = run_target(
        target_config(leanpay, tmp_path, dead_letter_path=str(dead_letters)), export(2005)
    )
    assert again.returncode == 0, again.stderr
    assert [r["method"] for r in leanpay.requests()].count("POST") == 1  # the first run's


def test_a_plan_where_every_record_is_rejected_says_not_ready_first(
    leanpay: StandIn, tmp_path: Path
) -> None:
    """Nothing could be sent: distinct from nothing new to send, and also the first line."""
    requests_file = tmp_path / "would-send.jsonl"
    config = target_config(
        leanpay,
        tmp_path,
        plan=True,
        dry_run_path=str(requests_file),
        dead_letter_path=str(tmp_path / "rejected.jsonl"),
    )

    result = run_target(config, [schema(), *(invoice(i, amount=-1) for i in range(3)), state(3)])

    assert result.returncode == 0, result.stderr
    assert plan_lines(result.stderr)[0] == (
        "NOT READY: no record could be sent (3 rejected records); fix the reasons below. "
        f"The requests file {requests_file} is empty"
    )
