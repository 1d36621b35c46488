"""End to end: records refused locally or by Leanpay, through the real CLI and the stand-in.

Every test asserts what reached the server (request sizes and bodies), the STATE lines
printed, the exit code, and the dead-letter file line by line. `max_in_flight=1` makes the
order of requests exact, and so the STATE lines wherever the tap's STATE message is read
before the record that fills a request (`assert_checkpoints` covers the other case).
"""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    STREAM,
    assert_checkpoints,
    batch_posts,
    emitted,
    invoice,
    invoices_with_state,
    payload,
    run_target,
    target_config,
)
from support.dead_letters import dead_letters

from leanpay_standin import StandIn

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| ")
BISECTION_BOUND = 14
"""Extra requests to find one bad item among 100 (dispatcher.py: 2 * ceil(log2 100))."""


def ext(i: int) -> str:
    return f"INV-{i:05d}"


def with_record(
    messages: list[dict[str, Any]], i: int, *, drop: tuple[str, ...] = (), **changes: Any
) -> list[dict[str, Any]]:
    """Change invoice `i` in place (and return the messages for chaining)."""
    for message in messages:
        if message["type"] == "RECORD" and message["record"]["externalId"] == ext(i):
            message["record"].update(changes)
            for name in drop:
                del message["record"][name]
            return messages
    raise AssertionError(f"no invoice {i}")


def record_of(i: int, *, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    record = invoice(i, **changes)["record"]
    for name in drop:
        del record[name]
    return record


def unstamped_dead_letters(path: Path) -> list[dict[str, Any]]:
    """The dead-letter file's lines, `rejected_at` and the run's mark (`run_id`,
    `run_started`, one per run: tests/test_e2e_dead_letter_runs.py) dropped."""
    assert path.read_text(encoding="utf-8").endswith("\n")
    lines = dead_letters(path)
    for line in lines:
        stamp = datetime.datetime.fromisoformat(line.pop("rejected_at"))
        assert stamp.tzinfo is not None
        del line["run_id"], line["run_started"]
    return lines


def stored_ids(leanpay: StandIn) -> list[str]:
    return [item["externalId"] for item in leanpay.store("invoices")]


def sizes(leanpay: StandIn) -> list[tuple[int, int]]:
    return [(post["items"], post["status"]) for post in batch_posts(leanpay)]


def assert_one_paragraph_error(stderr: str) -> str:
    """Exactly one ERROR record, every stderr line a log record (no traceback); return it."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), stderr
    errors = [line for line in lines if "| ERROR    |" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def nest_body(messages: list[str]) -> dict[str, Any]:
    return {"statusCode": 400, "message": messages, "error": "Bad Request"}


# -- dead-letter file: two records refused, the other 248 loaded ---------------------------


def test_local_and_server_rejections_go_to_the_dead_letter_file_and_the_rest_loads(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    messages = with_record(invoices_with_state(250, every=50), 30, drop=("dueDate",))
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "reject_items",
            "match": {"reference": ["F-00170"]},
            "name_items": True,
        }
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    # replay safety reads the (empty) tenant first, then the batches
    requests = leanpay.requests()
    assert [(r["method"], r["path"], r["query"]) for r in requests[:1]] == [
        ("GET", "/invoices", {"page": "1"})
    ]
    # the refusal is checked before the other 99 are sent again: a delta (oldest first:
    # page 1, then the last page, newest, where the walk meets the boundary at once)
    listings = [int(r["query"]["page"]) for r in requests if r["method"] == "GET"]
    assert listings == [1, 1, 4]
    assert len(requests) == 4 + len(listings)
    # 0..100 without 30; 101..200 refused for 170, then without it; 201..249
    chunk_1 = [i for i in range(101) if i != 30]
    chunk_2 = list(range(101, 201))
    chunk_2_retry = [i for i in chunk_2 if i != 170]
    chunk_3 = list(range(201, 250))
    assert sizes(leanpay) == [(100, 201), (100, 400), (99, 201), (49, 201)]
    assert [p["body"] for p in batch_posts(leanpay)] == [
        {"invoices": [payload(i) for i in chunk]}
        for chunk in (chunk_1, chunk_2, chunk_2_retry, chunk_3)
    ]
    assert stored_ids(leanpay) == [ext(i) for i in range(250) if i not in (30, 170)]

    refusal = nest_body(["invoices.69.reference refused by test rule"])
    lines = unstamped_dead_letters(dead)
    assert len(lines) == 2
    local, server = lines
    assert json.loads(server.pop("api_message")) == refusal
    assert local == {
        "stream": STREAM,
        "record_id": "externalId 'INV-00030' (input line 32)",
        "record": record_of(30, drop=("dueDate",)),
        "payload": None,
        "reasons": [{"field": "dueDate", "reason": "is required"}],
        "http_status": None,
        "api_message": None,
    }
    assert server == {
        "stream": STREAM,
        "record_id": "externalId 'INV-00170' (input line 175)",
        "record": record_of(170),
        "payload": payload(170),
        "reasons": [{"field": "reference", "reason": "invoices.69.reference refused by test rule"}],
        "http_status": 400,
    }

    # requests 1 and 2 are filled by records 100 and 200, read after STATEs 100 and 200
    assert emitted(result.states) == [100, 200, 250]
    assert (
        "Summary: stream 'public-invoices' -> invoices: 250 records read, 248 acknowledged, "
        "0 already present, 2 rejected, 4 requests, 0 retries"
    ) in result.stderr
    assert "Traceback" not in result.stderr


# -- no dead-letter file: the first rejection stops the run ------------------------------


def test_without_dead_letter_path_a_locally_invalid_record_stops_the_run_before_it(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = with_record(invoices_with_state(250, every=50), 120, amount=-5)
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, messages)

    assert result.returncode == 1
    # records 0..99 were acknowledged before record 120 was read; nothing after them
    assert sizes(leanpay) == [(100, 201)]
    assert stored_ids(leanpay) == [ext(i) for i in range(100)]
    assert_checkpoints(result, last=100, every=50)
    error = assert_one_paragraph_error(result.stderr)
    assert "stream 'public-invoices'" in error
    assert "externalId 'INV-00120' (input line 124)" in error
    assert "amount: must be >= 0, got -5" in error
    assert "dead_letter_path" in error


def test_without_dead_letter_path_a_server_refused_record_stops_the_run_before_it(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "reject_items",
            "match": {"reference": ["F-00120"]},
            "name_items": True,
        }
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, invoices_with_state(250, every=50))

    assert result.returncode == 1
    assert sizes(leanpay) == [(100, 201), (100, 400)]
    assert stored_ids(leanpay) == [ext(i) for i in range(100)]
    assert_checkpoints(result, last=100, every=50)
    error = assert_one_paragraph_error(result.stderr)
    assert "stream 'public-invoices'" in error
    assert "externalId 'INV-00120' (input line 124)" in error
    assert "reference: invoices.20.reference refused by test rule" in error
    assert "HTTP 400" in error


# -- isolating the bad item of a refused batch ---------------------------------------------

# (items, status) of every batch POST for one bad item among 100, found by halving
# (first half first): index 99 is the worst case, exactly the documented bound.
BISECTIONS = {
    99: [
        (100, 400),
        (50, 201),
        (50, 400),
        (25, 201),
        (25, 400),
        (12, 201),
        (13, 400),
        (6, 201),
        (7, 400),
        (3, 201),
        (4, 400),
        (2, 201),
        (2, 400),
        (1, 201),
        (1, 400),
    ],
    37: [
        (100, 400),
        (50, 400),
        (25, 201),
        (25, 400),
        (12, 201),
        (13, 400),
        (6, 400),
        (3, 400),
        (1, 400),
        (2, 201),
        (3, 201),
        (7, 201),
        (50, 201),
    ],
}


@pytest.mark.parametrize("bad", sorted(BISECTIONS))
def test_a_refusal_that_names_no_item_is_bisected_to_the_bad_item(
    leanpay: StandIn, tmp_path: Path, bad: int
) -> None:
    dead = tmp_path / "rejected.jsonl"
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "reject_items",
            "match": {"externalId": [ext(bad)]},
            "name_items": False,
        }
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, invoices_with_state(100, every=100))

    assert result.returncode == 0, result.stderr
    assert sizes(leanpay) == BISECTIONS[bad]
    assert len(batch_posts(leanpay)) - 1 <= BISECTION_BOUND
    good = [i for i in range(100) if i != bad]
    stored = stored_ids(leanpay)
    assert sorted(stored) == [ext(i) for i in good]
    assert max(Counter(stored).values()) == 1
    accepted = leanpay.posted_items()
    assert sorted(accepted, key=lambda item: item["externalId"]) == [payload(i) for i in good]
    refusal = nest_body(["Validation failed"])
    [line] = unstamped_dead_letters(dead)
    assert json.loads(line.pop("api_message")) == refusal
    assert line == {
        "stream": STREAM,
        "record_id": f"externalId '{ext(bad)}' (input line {bad + 2})",
        "record": record_of(bad),
        "payload": payload(bad),
        "reasons": [
            {
                "field": "(item)",
                "reason": "refused by Leanpay: HTTP 400: "
                + json.dumps(refusal, separators=(",", ":")),
            }
        ],
        "http_status": 400,
    }
    assert emitted(result.states) == [100]


def test_two_unnamed_bad_items_cost_at_most_the_bound_each(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "reject_items",
            "match": {"externalId": [ext(10), ext(90)]},
            "name_items": False,
        }
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, invoices_with_state(100, every=100))

    assert result.returncode == 0, result.stderr
    assert len(batch_posts(leanpay)) - 1 <= 2 * BISECTION_BOUND
    stored = stored_ids(leanpay)
    assert sorted(stored) == [ext(i) for i in range(100) if i not in (10, 90)]
    assert len(stored) == len(set(stored))
    assert [line["record"]["externalId"] for line in unstamped_dead_letters(dead)] == [
        ext(10),
        ext(90),
    ]
    assert emitted(result.states) == [100]


@pytest.mark.parametrize(
    "message",
    [
        ["invoices.3.amount must not be less than 0"],
        "invoices.3.amount must not be less than 0",
        ["invoices[3].amount must not be less than 0"],
    ],
    ids=["list", "string", "brackets"],
)
def test_a_refusal_naming_the_item_index_costs_exactly_one_more_request(
    leanpay: StandIn, tmp_path: Path, message: str | list[str]
) -> None:
    dead = tmp_path / "rejected.jsonl"
    body = {"statusCode": 400, "message": message, "error": "Bad Request"}
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "status", "status": 400, "body": body, "times": 1}
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, invoices_with_state(100, every=100))

    assert result.returncode == 0, result.stderr
    good = [i for i in range(100) if i != 3]
    assert sizes(leanpay) == [(100, 400), (99, 201)]
    assert [p["body"] for p in batch_posts(leanpay)] == [
        {"invoices": [payload(i) for i in range(100)]},
        {"invoices": [payload(i) for i in good]},
    ]
    assert stored_ids(leanpay) == [ext(i) for i in good]
    text = message if isinstance(message, str) else message[0]
    [line] = unstamped_dead_letters(dead)
    assert json.loads(line.pop("api_message")) == body
    assert line == {
        "stream": STREAM,
        "record_id": "externalId 'INV-00003' (input line 5)",
        "record": record_of(3),
        "payload": payload(3),
        "reasons": [{"field": "amount", "reason": text}],
        "http_status": 400,
    }
    assert emitted(result.states) == [100]


def test_an_item_index_outside_the_batch_is_not_trusted(leanpay: StandIn, tmp_path: Path) -> None:
    # "invoices.150" cannot be an index of a 100-item batch: the API numbers items some
    # other way, so "invoices.3" may not be our item 3 either. The target must not
    # dead-letter item 3 on that word; it bisects, and this time both halves pass.
    dead = tmp_path / "rejected.jsonl"
    body = nest_body(
        [
            "invoices.3.amount must not be less than 0",
            "invoices.150.amount must not be less than 0",
        ]
    )
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "status", "status": 400, "body": body, "times": 1}
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, invoices_with_state(100, every=100))

    assert result.returncode == 0, result.stderr
    assert sizes(leanpay) == [(100, 400), (50, 201), (50, 201)]
    assert stored_ids(leanpay) == [ext(i) for i in range(100)]
    assert not dead.exists()
    assert emitted(result.states) == [100]


# -- max_rejections -----------------------------------------------------------------------


def test_max_rejections_stops_the_run_at_the_first_rejection_past_the_limit(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    messages = invoices_with_state(250, every=50)
    for bad in (30, 130, 230):
        with_record(messages, bad, amount=-1)
    config = target_config(
        leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead), max_rejections=1
    )

    result = run_target(config, messages)

    assert result.returncode == 1
    assert sizes(leanpay) == [(100, 201)]
    assert stored_ids(leanpay) == [ext(i) for i in range(101) if i != 30]
    assert emitted(result.states) == [100]
    assert [line["record"]["externalId"] for line in unstamped_dead_letters(dead)] == [
        ext(30),
        ext(130),
    ]
    error = assert_one_paragraph_error(result.stderr)
    assert "max_rejections (1)" in error
    assert "INV-00130" in error
    assert str(dead) in error


def test_max_rejections_counts_server_refusals_too(leanpay: StandIn, tmp_path: Path) -> None:
    dead = tmp_path / "rejected.jsonl"
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "reject_items",
            "match": {"externalId": [ext(10), ext(20), ext(30)]},
            "name_items": True,
        }
    )
    config = target_config(
        leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead), max_rejections=1
    )

    result = run_target(config, invoices_with_state(100, every=50))

    assert result.returncode == 1
    assert sizes(leanpay) == [(100, 400)]
    assert stored_ids(leanpay) == []
    assert result.stdout == ""
    assert [line["record"]["externalId"] for line in unstamped_dead_letters(dead)] == [
        ext(10),
        ext(20),
    ]
    error = assert_one_paragraph_error(result.stderr)
    assert "max_rejections (1)" in error


# -- error bodies that are not JSON -------------------------------------------------------


def test_a_non_json_refusal_of_a_single_item_is_dead_lettered_with_the_text(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "status",
            "status": 400,
            "raw_body": "<html>oops</html>",
            "times": 1,
        }
    )
    config = target_config(leanpay, tmp_path, dead_letter_path=str(dead))

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 0, result.stderr
    assert sizes(leanpay) == [(1, 400)]
    assert stored_ids(leanpay) == []
    assert unstamped_dead_letters(dead) == [
        {
            "stream": STREAM,
            "record_id": "externalId 'INV-00000' (input line 2)",
            "record": record_of(0),
            "payload": payload(0),
            "reasons": [
                {"field": "(item)", "reason": "refused by Leanpay: HTTP 400: <html>oops</html>"}
            ],
            "http_status": 400,
            "api_message": "<html>oops</html>",
        }
    ]
    assert emitted(result.states) == [1]
    assert "1 rejected" in result.stderr


def test_a_non_json_refusal_of_a_full_batch_is_bisected_and_nothing_is_doubled(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "status",
            "status": 400,
            "raw_body": "<html>oops</html>",
            "times": 1,
        }
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, invoices_with_state(100, every=100))

    assert result.returncode == 0, result.stderr
    assert sizes(leanpay) == [(100, 400), (50, 201), (50, 201)]
    assert stored_ids(leanpay) == [ext(i) for i in range(100)]
    assert not dead.exists()
    assert emitted(result.states) == [100]
