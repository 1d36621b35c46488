"""End to end: the real CLI against the stand-in, asserting requests, STATE and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from conftest import (
    API_KEY,
    STREAM,
    Running,
    batch_posts,
    emitted,
    in_progress,
    invoices_with_state,
    payload,
    run_target,
    schema,
    singer_input,
    start_target,
    target_command,
    target_config,
    wait_for,
)

from leanpay_standin import StandIn


def test_250_invoices_make_three_requests_with_a_checkpoint_after_each(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, invoices_with_state(250, every=100))

    assert result.returncode == 0, result.stderr
    posts = batch_posts(leanpay)
    assert [p["items"] for p in posts] == [100, 100, 50]
    assert [p["status"] for p in posts] == [201, 201, 201]
    assert all(p["headers"]["Authorization"] == API_KEY for p in posts)
    assert [p["body"] for p in posts] == [
        {"invoices": [payload(i) for i in range(0, 100)]},
        {"invoices": [payload(i) for i in range(100, 200)]},
        {"invoices": [payload(i) for i in range(200, 250)]},
    ]
    # the newest STATE covered by each acknowledged request, in order
    assert emitted(result.states) == [100, 200, 250]
    assert len(leanpay.store("invoices")) == 250


def test_concurrent_requests_still_checkpoint_in_order(leanpay: StandIn, tmp_path: Path) -> None:
    # whichever request reaches the stand-in first is held 1.5 s, so the other one is
    # usually answered first; the journal says which was, however busy the machine
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 1.5, "times": 1}
    )
    config = target_config(leanpay, tmp_path, max_in_flight=4)

    result = run_target(config, invoices_with_state(200, every=100))

    assert result.returncode == 0, result.stderr
    posts = batch_posts(leanpay)
    assert len(posts) == 2
    (first,) = [p for p in posts if p["body"]["invoices"][0]["externalId"] == "INV-00000"]
    (second,) = [p for p in posts if p is not first]
    if second["answered"] < first["answered"]:
        assert emitted(result.states) == [200]  # the second's answer alone must not checkpoint
    else:
        assert emitted(result.states) == [100, 200]
    assert len(leanpay.store("invoices")) == 200


def test_429_with_retry_after_is_honoured_then_succeeds(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "status",
            "status": 429,
            "headers": {"Retry-After": "1"},
            "times": 1,
        }
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, invoices_with_state(50, every=50))

    assert result.returncode == 0, result.stderr
    posts = batch_posts(leanpay)
    assert [p["status"] for p in posts] == [429, 201]
    assert posts[1]["time"] - posts[0]["answered"] >= 0.99  # a lower bound: load only adds
    assert [i["externalId"] for i in leanpay.store("invoices")] == [
        f"INV-{i:05d}" for i in range(50)
    ]
    assert emitted(result.states) == [50]
    assert "HTTP 429" in result.stderr


def test_5xx_twice_then_success(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(
        {
            "path": "/invoices/batch",
            "action": "status",
            "status": 502,
            "raw_body": "<html>Bad gateway</html>",
            "times": 1,
        },
        {
            "path": "/invoices/batch",
            "action": "status",
            "status": 500,
            "body": {"statusCode": 500},
            "times": 1,
        },
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, invoices_with_state(120, every=60))

    assert result.returncode == 0, result.stderr
    assert [p["status"] for p in batch_posts(leanpay)] == [502, 500, 201, 201]
    assert len(leanpay.store("invoices")) == 120
    assert emitted(result.states) == [60, 120]
    assert "Summary: stream 'public-invoices' -> invoices: 120 records read" in result.stderr
    assert "2 retries" in result.stderr


def test_dropped_connection_is_retried_without_duplicates(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults({"path": "/invoices/batch", "action": "drop_before_store", "times": 1})
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, invoices_with_state(100, every=100))

    assert result.returncode == 0, result.stderr
    stored = [i["externalId"] for i in leanpay.store("invoices")]
    assert stored == [f"INV-{i:05d}" for i in range(100)]
    assert emitted(result.states) == [100]


def test_permanent_503_fails_without_state_past_acknowledged_data(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, max_in_flight=1, max_retries=2, max_retry_wait=0.2)
    messages = invoices_with_state(250, every=50)
    # the first request succeeds, every later one is refused
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 0, "times": 1},
        {
            "path": "/invoices/batch",
            "action": "status",
            "status": 503,
            "body": {"statusCode": 503, "message": "maintenance"},
            "times": 1000,
        },
    )

    result = run_target(config, messages)

    assert result.returncode == 1
    assert len(leanpay.store("invoices")) == 100
    assert emitted(result.states) == [100]
    error = result.stderr
    assert "stream 'public-invoices'" in error
    assert "INV-00100" in error and "INV-00199" in error
    assert "HTTP 503" in error and "maintenance" in error
    assert "Traceback" not in error


def test_wrong_key_fails_fast_and_says_to_check_api_key(leanpay: StandIn, tmp_path: Path) -> None:
    config = target_config(leanpay, tmp_path, api_key="wrong-key-0000")

    result = run_target(config, invoices_with_state(10))

    assert result.returncode == 1
    # a refused key is not retried: one request (the listing's first page), then the end
    assert [(r["method"], r["status"]) for r in leanpay.requests()] == [("GET", 401)]
    assert result.stdout == ""
    assert "check the api_key setting" in result.stderr
    assert "HTTP 401" in result.stderr
    assert "wrong-key-0000" not in result.stderr
    assert leanpay.store("invoices") == []


def test_sigterm_during_a_slow_request_prints_no_state_past_acknowledged_data(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # request 1 is quick, request 2 hangs: SIGTERM arrives while it is in flight
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 3, "times": 1},
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1)
    process = start_target(config)
    assert process.stdin is not None
    process.stdin.write(singer_input(invoices_with_state(200, every=100)))
    process.stdin.flush()  # stdin stays open: the tap is still "running"

    wait_for(lambda: len(batch_posts(leanpay)) == 2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 128 + signal.SIGTERM
    states = [json.loads(line) for line in stdout.splitlines()]
    acknowledged = len(leanpay.store("invoices"))
    # the slow request finished during the grace period (its checkpoint is legitimate),
    # or did not: either way no STATE covers a record Leanpay has not acknowledged
    assert emitted(states) in ([100], [100, 200])
    assert max(emitted(states)) <= acknowledged
    assert "Received signal 15" in stderr


def test_sigterm_twice_exits_at_once_without_more_state(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 40, "times": 1}
    )
    config = target_config(leanpay, tmp_path, max_in_flight=1)
    target = Running(config)
    target.feed(singer_input(invoices_with_state(100, every=100)))

    wait_for(lambda: len(batch_posts(leanpay)) == 1)
    target.process.send_signal(signal.SIGTERM)
    target.wait_for_stderr("Received signal 15")  # the first one is being handled
    target.process.send_signal(signal.SIGINT)

    assert target.process.wait(timeout=30) == 128 + signal.SIGINT
    (slow,) = batch_posts(leanpay)
    assert slow["answered"] is None  # it exited at once, without waiting for the answer
    target.kill()  # already gone: collects its output
    assert target.stdout == []


def test_stream_name_does_not_matter_every_stream_loads_invoices(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path)
    messages = invoices_with_state(3)
    for message in messages:
        if "stream" in message:
            message["stream"] = "erp-sales-docs"

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert len(leanpay.store("invoices")) == 3
    assert STREAM not in result.stderr


def test_a_schema_change_sends_the_retired_sinks_partial_batch_first(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, max_in_flight=1)
    changed = schema()
    changed["schema"]["properties"]["netAmount"] = {"type": ["integer", "null"]}
    messages = [
        *invoices_with_state(30, every=30),
        changed,
        *invoices_with_state(130, every=30, start=30)[1:],
    ]

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    # without the flush on schema change, the old 30 would wait for the end: [100, 30, 30]
    assert [p["items"] for p in batch_posts(leanpay)] == [30, 100, 30]
    assert emitted(result.states) == [30, 120, 160]


def test_input_can_come_from_a_file(leanpay: StandIn, tmp_path: Path) -> None:
    config = target_config(leanpay, tmp_path)
    source = tmp_path / "tap-output.singer"
    source.write_text(singer_input(invoices_with_state(3)))

    done = subprocess.run(
        [*target_command(config), "--input", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert emitted([json.loads(line) for line in done.stdout.splitlines()]) == [3]
    assert len(leanpay.store("invoices")) == 3


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_whole_group_keeps_the_checkpoint_of_the_request_in_flight(
    leanpay: StandIn, tmp_path: Path, signum: int
) -> None:
    # Ctrl-C at a terminal, or systemd stopping a unit, signals the whole process group.
    # Credit notes cannot be listed: had the request in flight been abandoned after
    # Leanpay stored it, the resumed run would store those 100 credit notes twice.
    leanpay.add_faults({"path": "/credit-notes/batch", "action": "delay_after_store", "seconds": 2})
    config = target_config(leanpay, tmp_path, stream_resources={STREAM: "credit_notes"})
    target = Running(config, own_group=True)
    target.feed(singer_input(invoices_with_state(150, every=50)))  # the tap is still running
    wait_for(lambda: in_progress(leanpay) == 1)

    os.killpg(target.process.pid, signum)

    assert target.process.wait(timeout=30) == 128 + signum
    target.kill()  # already gone: collects its output
    assert emitted(target.states) == [100]
    assert len(leanpay.store("credit_notes")) == 100
    assert f"Received signal {signum}" in "".join(target.stderr)

    resumed = run_target(config, invoices_with_state(50, every=50, start=100))
    assert resumed.returncode == 0, resumed.stderr
    stored = [c["externalId"] for c in leanpay.store("credit_notes")]
    assert sorted(stored) == [f"INV-{i:05d}" for i in range(150)]  # each exactly once


def test_a_run_starts_no_child_process_and_a_kill_leaves_nothing_running(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults({"path": "/invoices/batch", "action": "delay_before_store", "seconds": 30})
    target = Running(target_config(leanpay, tmp_path), own_group=True)
    target.feed(singer_input(invoices_with_state(100, every=100)))
    wait_for(lambda: in_progress(leanpay) == 1)  # reading, listing and sending have begun

    assert psutil.Process(target.process.pid).children(recursive=True) == []
    target.kill()
    with pytest.raises(ProcessLookupError):
        os.killpg(target.process.pid, 0)  # the process group is empty
