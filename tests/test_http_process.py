"""The HTTP process: answers and exceptions cross it unchanged; it never outlives the run."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import (
    API_KEY,
    batch_posts,
    emitted,
    in_progress,
    invoices_with_state,
    payload,
    singer_input,
    start_target,
    target_config,
    wait_for,
)

from leanpay_standin import StandIn
from target_leanpay.errors import ApiError, AuthError, ItemsRefused, RetriesExhausted
from target_leanpay.http_process import HttpProcess, _answer
from target_leanpay.resources import INVOICES

BATCH = INVOICES.path


def http_process(leanpay: StandIn, *, key: str = API_KEY) -> HttpProcess:
    settings = {
        "api_url": leanpay.url,
        "api_key": key,
        "timeout": 5.0,
        "max_retries": 2,
        "max_retry_wait": 1.0,
        "pool_size": 2,
        "backoff_base": 0.01,
    }
    return HttpProcess(settings, channels=2)


@pytest.fixture
def http(leanpay: StandIn) -> Iterator[HttpProcess]:
    process = http_process(leanpay)
    yield process
    process.close()


def test_a_batch_is_posted_by_the_child_and_its_answer_returned(
    leanpay: StandIn, http: HttpProcess
) -> None:
    listed = http.post_batch(INVOICES, [payload(1), payload(2)])

    assert listed == ["INV-00001", "INV-00002"]
    (post,) = batch_posts(leanpay)
    assert post["body"] == {"invoices": [payload(1), payload(2)]}
    assert post["headers"]["Authorization"] == API_KEY
    assert http.get_page(INVOICES.list_path or "", 1)["total"] == 2


def test_refusals_arrive_as_the_exception_the_client_raised(
    leanpay: StandIn, http: HttpProcess
) -> None:
    with pytest.raises(ItemsRefused) as refused:
        http.post_batch(INVOICES, [payload(1, amount=-5)])
    assert refused.value.status == 400
    assert "invoices.0.amount must not be less than 0" in refused.value.body

    wrong_key = http_process(leanpay, key="not-the-key")
    try:
        with pytest.raises(AuthError, match="HTTP 401"):
            wrong_key.post_batch(INVOICES, [payload(1)])
    finally:
        wrong_key.close()
    assert leanpay.store("invoices") == []


def test_retries_are_made_by_the_child_and_reported_to_the_caller(
    leanpay: StandIn, http: HttpProcess
) -> None:
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": 429, "headers": {"Retry-After": "0"}}
    )
    retries: list[str] = []

    assert http.post_batch(INVOICES, [payload(1)], on_retry=retries.append) == ["INV-00001"]
    assert [p["status"] for p in batch_posts(leanpay)] == [429, 201]
    assert len(retries) == 1
    assert "HTTP 429" in retries[0]


def test_the_child_stops_retrying_once_the_run_is_stopping(
    leanpay: StandIn, http: HttpProcess
) -> None:
    leanpay.add_faults({"path": BATCH, "action": "status", "status": 503, "times": None})
    http.stopping.set()  # set in the target's process, seen by the child

    with pytest.raises(RetriesExhausted, match="stopping"):
        http.post_batch(INVOICES, [payload(1)])
    assert len(batch_posts(leanpay)) == 1  # max_retries 2 would have made 3


def test_an_answer_is_never_handed_to_the_next_call(leanpay: StandIn, http: HttpProcess) -> None:
    # the caller gives up while the child is between attempts; its late answer must
    # not become the answer of the next call on the same channel
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": 429, "headers": {"Retry-After": "1"}}
    )

    def give_up(_message: str) -> None:
        raise RuntimeError("the caller gave up")

    with pytest.raises(RuntimeError, match="gave up"):
        http.post_batch(INVOICES, [payload(1)], on_retry=give_up)
    # two channels, one call each: both calls that follow use a channel, one of them
    # the one whose answer for INV-00001 arrives late
    assert http.post_batch(INVOICES, [payload(2)]) == ["INV-00002"]
    assert http.post_batch(INVOICES, [payload(3)]) == ["INV-00003"]


def test_an_answer_the_child_cannot_send_is_reported_not_waited_for() -> None:
    class Unpicklable:
        def __reduce__(self) -> Any:
            raise TypeError("cannot pickle this answer")

    class OddClient:
        def get_page(self, path: str, page: int) -> Any:
            return Unpicklable()

    ours, theirs = multiprocessing.Pipe()
    answering = threading.Thread(target=_answer, args=(OddClient(), theirs), daemon=True)
    answering.start()
    ours.send((7, "get", "/invoices", 1))

    assert ours.poll(5)
    call_id, kind, error = ours.recv()
    assert (call_id, kind) == (7, "error")
    assert "could not send its answer" in str(error)
    assert "cannot pickle this answer" in str(error)
    ours.close()
    answering.join(timeout=5)
    assert not answering.is_alive()


def test_a_target_that_never_closes_its_run_still_exits(leanpay: StandIn) -> None:
    # the child ignores SIGTERM, which multiprocessing's own exit hook relies on
    script = (
        "import sys\n"
        "from target_leanpay.http_process import HttpProcess, _answer\n"
        f"http = HttpProcess({{'api_url': {leanpay.url!r}, 'api_key': {API_KEY!r},"
        " 'timeout': 5.0, 'max_retries': 0, 'max_retry_wait': 1.0, 'pool_size': 1}, channels=1)\n"
        "http.get_page('/invoices', 1)  # the child is up, SIGTERM ignored\n"
        "print(http._process.pid)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not psutil.pid_exists(int(done.stdout))


def post_a_held_request(
    leanpay: StandIn, http: HttpProcess
) -> tuple[threading.Thread, list[ApiError]]:
    """A sending thread posting one invoice that Leanpay holds for 30 s; returns once the
    request is in flight. What the call raised lands in the list."""
    leanpay.add_faults({"path": BATCH, "action": "delay_before_store", "seconds": 30})
    failures: list[ApiError] = []

    def post() -> None:
        try:
            http.post_batch(INVOICES, [payload(1)])
        except ApiError as error:
            failures.append(error)

    caller = threading.Thread(target=post)
    caller.start()
    wait_for(lambda: in_progress(leanpay) == 1)
    return caller, failures


def test_a_dead_http_process_fails_the_call_instead_of_hanging(
    leanpay: StandIn, http: HttpProcess
) -> None:
    caller, failures = post_a_held_request(leanpay, http)
    os.kill(http._process.pid, signal.SIGKILL)
    caller.join(timeout=10)

    assert not caller.is_alive()
    (failure,) = failures
    assert "HTTP process ended (exit code -9) before Leanpay's answer arrived" in str(failure)
    assert "may have stored" in str(failure)
    with pytest.raises(ApiError, match="HTTP process ended"):  # the next call too, at once
        http.post_batch(INVOICES, [payload(2)])


def test_closing_ends_the_child_even_while_it_waits_for_leanpay(
    leanpay: StandIn, http: HttpProcess
) -> None:
    caller, failures = post_a_held_request(leanpay, http)

    http.close()
    http.close()  # again: harmless

    assert not http._process.is_alive()
    assert http._process.exitcode == 0  # it left on its own when its lifeline closed
    caller.join(timeout=10)
    assert not caller.is_alive()
    (failure,) = failures  # the request was abandoned with the child
    assert "HTTP process ended" in str(failure)


def http_child(target: subprocess.Popen[str]) -> psutil.Process:
    """The target's HTTP process (spawn, off Linux, may add multiprocessing's tracker)."""
    (child,) = [
        c
        for c in psutil.Process(target.pid).children()
        if "resource_tracker" not in " ".join(c.cmdline())
    ]
    return child


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_http_process_does_not_outlive_a_killed_target(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults({"path": BATCH, "action": "delay_before_store", "seconds": 30})
    target = start_target(target_config(leanpay, tmp_path), own_group=True)
    assert target.stdin is not None
    target.stdin.write(singer_input(invoices_with_state(100, every=100)))
    target.stdin.flush()
    wait_for(lambda: in_progress(leanpay) == 1)
    child = http_child(target)

    target.kill()
    target.communicate(timeout=10)

    wait_for(lambda: gone(child), timeout=5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_whole_group_still_lets_the_request_in_flight_finish(
    leanpay: StandIn, tmp_path: Path, signum: int
) -> None:
    # the first request takes 2 s; Ctrl-C (or systemd stopping a unit) reaches the
    # target and its HTTP process alike
    leanpay.add_faults({"path": BATCH, "action": "delay_before_store", "seconds": 2})
    target = start_target(target_config(leanpay, tmp_path), own_group=True)
    assert target.stdin is not None
    target.stdin.write(singer_input(invoices_with_state(150, every=50)))
    target.stdin.flush()  # stdin stays open: the tap is still running
    wait_for(lambda: in_progress(leanpay) == 1)
    child = http_child(target)

    os.killpg(target.pid, signum)
    stdout, stderr = target.communicate(timeout=30)

    assert target.returncode == 128 + signum
    assert emitted([json.loads(line) for line in stdout.splitlines()]) == [100]
    assert len(leanpay.store("invoices")) == 100
    assert [p["status"] for p in batch_posts(leanpay)] == [201]
    assert f"Received signal {signum}" in stderr
    wait_for(lambda: gone(child), timeout=5)
