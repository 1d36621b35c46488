"""End to end: the edges where a target could lose, double or misreport an invoice."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import (
    API_KEY,
    STREAM,
    batch_posts,
    emitted,
    invoice,
    invoices_with_state,
    run_target,
    schema,
    singer_input,
    start_target,
    state,
    target_config,
    wait_for,
)

from leanpay_standin import StandIn

BATCH = "/invoices/batch"


def stored_ids(leanpay: StandIn) -> list[str]:
    return sorted(i["externalId"] for i in leanpay.store("invoices"))


def test_a_409_after_an_unanswered_attempt_is_a_rejection_not_a_presence(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # 502 (nothing stored) -> re-list finds nothing -> re-send -> 409 on item 2 for another
    # reason: INV-00002 is not in Leanpay, so it must be dead-lettered, never "present"
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": 502},
        {
            "path": BATCH,
            "action": "status",
            "status": 409,
            "body": {"message": ["invoices.2.reference F-00002 is used by another invoice"]},
        },
    )
    dead_letters = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, dead_letter_path=str(dead_letters))

    result = run_target(config, invoices_with_state(5))

    assert result.returncode == 0, result.stderr
    assert stored_ids(leanpay) == ["INV-00000", "INV-00001", "INV-00003", "INV-00004"]
    (line,) = dead_letters.read_text().splitlines()
    rejected = json.loads(line)
    assert rejected["record"]["externalId"] == "INV-00002"
    assert rejected["http_status"] == 409
    assert "0 already present" in result.stderr


def test_a_2xx_that_confirms_nothing_is_checked_and_resent(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults({"path": BATCH, "action": "status", "status": 201, "body": {"data": []}})
    config = target_config(leanpay, tmp_path)

    result = run_target(config, invoices_with_state(10))

    assert result.returncode == 0, result.stderr
    assert stored_ids(leanpay) == [f"INV-{i:05d}" for i in range(10)]
    assert emitted(result.states) == [10]
    assert "does not confirm 10 of the 10 items" in result.stderr


def test_a_2xx_that_confirms_nothing_for_an_unlistable_resource_stops_the_run(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults(
        {"path": "/credit-notes/batch", "action": "status", "status": 200, "raw_body": "OK"}
    )
    config = target_config(leanpay, tmp_path, stream_resources={STREAM: "credit_notes"})

    result = run_target(config, invoices_with_state(3))

    assert result.returncode == 1
    assert result.stdout == ""
    assert "may or may not be stored" in result.stderr


def test_a_request_level_refusal_stops_the_run_instead_of_dead_lettering_everything(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults(
        {
            "path": BATCH,
            "action": "status",
            "status": 400,
            "body": {"message": "API version v1 is no longer supported"},
            "times": 1000,
        }
    )
    dead_letters = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, dead_letter_path=str(dead_letters))

    result = run_target(config, invoices_with_state(8))

    assert result.returncode == 1
    assert "refusal of the request" in result.stderr
    assert "no longer supported" in result.stderr
    assert not dead_letters.exists()
    assert result.stdout == ""


def test_decimal_numbers_in_a_tap_state_are_written_back_as_numbers(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path)
    tap_state = (
        '{"type": "STATE", "value": {"bookmarks": {"x": {"replication_key_value": 1712345678.25}}}}'
    )

    result = run_target(config, [schema(), invoice(1), tap_state])

    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"bookmarks":{"x":{"replication_key_value":1712345678.25}}}\n'


def test_a_quiet_stream_sends_its_partial_batch_when_the_next_state_arrives(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # stream A ends with 30 buffered records; stream B keeps going with STATE messages.
    # A's 30 must not wait for the end of input to be sent and checkpointed.
    config = target_config(leanpay, tmp_path, max_in_flight=1)
    messages = [schema("a"), *[invoice(i, stream="a") for i in range(30)], state(30, "a")]
    messages.append(schema("b"))
    for i in range(30, 80):
        messages += [invoice(i, stream="b"), state(i + 1, "a")]
    process = start_target(config)
    assert process.stdin is not None
    process.stdin.write(singer_input(messages))
    process.stdin.flush()  # input stays open: the end of input cannot be what flushes A

    wait_for(lambda: len(batch_posts(leanpay)) >= 1)  # sent while the input is open
    process.communicate(timeout=30)
    first = batch_posts(leanpay)[0]  # complete now: an entry is journaled on arrival

    assert first["items"] == 30
    assert first["body"]["invoices"][0]["externalId"] == "INV-00000"


def test_a_twin_from_another_stream_is_counted_and_dead_lettered_under_its_own_stream(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults(
        {
            "path": BATCH,
            "action": "reject_items",
            "match": {"externalId": ["INV-00001"]},
            "name_items": True,
        }
    )
    dead_letters = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, dead_letter_path=str(dead_letters))
    messages = [schema("a"), schema("b"), invoice(1, stream="a"), invoice(1, stream="b")]

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    streams = [json.loads(line)["stream"] for line in dead_letters.read_text().splitlines()]
    assert sorted(streams) == ["a", "b"]
    assert (
        "stream 'a' -> invoices: 1 record read, 0 acknowledged, 0 already present, 1 rejected"
        in result.stderr
    )
    assert (
        "stream 'b' -> invoices: 1 record read, 0 acknowledged, 0 already present, 1 rejected"
        in result.stderr
    )


def test_an_unwritable_dead_letter_path_fails_at_start(leanpay: StandIn, tmp_path: Path) -> None:
    config = target_config(leanpay, tmp_path, dead_letter_path="/dev/null/rejected.jsonl")

    result = run_target(config, invoices_with_state(3))

    assert result.returncode == 1
    assert "dead_letter_path" in result.stderr
    assert "Traceback" not in result.stderr
    assert leanpay.requests() == []


def test_batch_size_rows_zero_is_refused(leanpay: StandIn, tmp_path: Path) -> None:
    config = target_config(leanpay, tmp_path, batch_size_rows=0)

    result = run_target(config, invoices_with_state(3))

    assert result.returncode == 1
    assert "batch_size_rows must be at least 1" in result.stderr


def test_no_retries_means_an_unanswered_batch_is_not_sent_again(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults({"path": BATCH, "action": "drop_before_store"})
    config = target_config(leanpay, tmp_path, max_retries=0)

    result = run_target(config, invoices_with_state(5))

    assert result.returncode == 1
    assert len(batch_posts(leanpay)) == 1
    assert result.stdout == ""


def test_a_sending_failure_during_the_signal_grace_period_is_reported(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # the only batch is slow (1.5 s of latency) and Leanpay refuses one of its items;
    # SIGTERM arrives while it is in flight, and there is no dead-letter file
    leanpay.configure(latency_ms=1500)
    leanpay.add_faults(
        {
            "path": BATCH,
            "action": "reject_items",
            "match": {"externalId": ["INV-00005"]},
            "name_items": True,
        }
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1)
    process = start_target(config)
    assert process.stdin is not None
    process.stdin.write(singer_input(invoices_with_state(100, every=100)))
    process.stdin.flush()

    wait_for(lambda: len(batch_posts(leanpay)) == 1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 128 + signal.SIGTERM
    assert "INV-00005" in stderr and "refused by test rule" in stderr


def test_the_key_is_sent_raw(leanpay: StandIn, tmp_path: Path) -> None:
    run_target(target_config(leanpay, tmp_path), invoices_with_state(1))
    assert {r["headers"]["Authorization"] for r in leanpay.requests()} == {API_KEY}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/invoices/batch", 429), ("GET", "/invoices", 503)],
)
def test_an_odd_retry_after_is_not_a_crash(
    leanpay: StandIn, tmp_path: Path, method: str, path: str, status: int
) -> None:
    """parse_retry_after uses str.isdigit(), true for '²' (a Latin-1 byte a proxy may
    send), then float('²') raises ValueError in a sending thread: "failed
    unexpectedly" with a traceback and exit 1, instead of ignoring the header (backoff)."""
    leanpay.add_faults(
        {"action": "status", "status": status, "method": method, "path": path,
         "headers": {"Retry-After": "\u00b2"}},
    )  # fmt: skip
    config = target_config(leanpay, tmp_path, max_retry_wait=1)
    result = run_target(config, [schema(), *(invoice(i) for i in range(3)), state(3)])
    assert "Traceback" not in result.stderr, result.stderr[-1500:]
    assert result.returncode == 0, result.stderr[-800:]
