"""Throttle: a 429 halves the in-flight limit once per round; clean answers raise it again."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from target_leanpay.errors import Stopped
from target_leanpay.throttle import CLEAN_ANSWERS_PER_STEP, Throttle


def test_a_429_halves_the_limit_once_for_the_requests_of_one_round() -> None:
    throttle = Throttle({"POST": 4}, threading.Event())
    with throttle.admitted("POST") as first, throttle.admitted("POST") as second:
        pass
    throttle.too_many(first, pause=0)
    throttle.too_many(second, pause=0)  # sent before the cut: no second cut
    assert throttle.limit == 2
    with throttle.admitted("POST") as later:
        pass
    throttle.too_many(later, pause=0)  # sent after the cut, still refused: cut again
    assert throttle.limit == 1
    with throttle.admitted("POST") as last:
        pass
    throttle.too_many(last, pause=0)
    assert throttle.limit == 1  # never below one


def test_clean_answers_raise_the_limit_step_by_step_up_to_the_maximum() -> None:
    throttle = Throttle({"POST": 3}, threading.Event())
    with throttle.admitted("POST") as started:
        pass
    throttle.too_many(started, pause=0)
    assert throttle.limit == 1
    for _ in range(CLEAN_ANSWERS_PER_STEP * 1 - 1):
        throttle.clean()
    assert throttle.limit == 1
    throttle.clean()
    assert throttle.limit == 2
    for _ in range(CLEAN_ANSWERS_PER_STEP * 2):
        throttle.clean()
    assert throttle.limit == 3
    for _ in range(CLEAN_ANSWERS_PER_STEP * 10):
        throttle.clean()
    assert throttle.limit == 3


def test_a_429_starts_the_count_of_clean_answers_afresh() -> None:
    throttle = Throttle({"POST": 2}, threading.Event())
    with throttle.admitted("POST") as started:
        pass
    throttle.too_many(started, pause=0)
    for _ in range(CLEAN_ANSWERS_PER_STEP - 1):
        throttle.clean()
    with throttle.admitted("POST") as again:
        pass
    throttle.too_many(again, pause=0)
    throttle.clean()
    assert throttle.limit == 1


def test_each_change_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    throttle = Throttle({"POST": 2}, threading.Event())
    with throttle.admitted("POST") as first, throttle.admitted("POST") as second:
        pass
    throttle.too_many(first, pause=0.5)
    throttle.too_many(second, pause=0.5)  # neither a longer pause nor a new cut: silent
    for _ in range(CLEAN_ANSWERS_PER_STEP):
        throttle.clean()
    assert [r.getMessage() for r in caplog.records] == [
        "Leanpay answered 429 (too many requests): every request waits 0.5 s; "
        "up to 1 request in flight (halved)",
        "Leanpay answers cleanly again: up to 2 requests in flight",
    ]


def test_no_request_is_admitted_once_the_run_stops() -> None:
    stopping = threading.Event()
    throttle = Throttle({"POST": 2}, stopping)
    stopping.set()
    with pytest.raises(Stopped), throttle.admitted("POST"):
        pass


def test_each_method_has_its_own_cap_under_the_shared_limit() -> None:
    throttle = Throttle({"POST": 1, "GET": 2}, threading.Event())
    assert throttle.limit == 2
    with throttle.admitted("POST"), throttle.admitted("GET"):
        assert throttle._by_method == {"POST": 1, "GET": 1}
    with throttle.admitted("GET"), throttle.admitted("GET"):
        assert throttle._by_method == {"POST": 0, "GET": 2}


def test_at_one_request_in_flight_a_429_spaces_requests_out_and_clean_answers_undo_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    throttle = Throttle({"POST": 2}, threading.Event())
    with throttle.admitted("POST") as started:
        pass
    throttle.too_many(started, pause=0)
    assert (throttle.limit, throttle.spacing) == (1, 0)
    with throttle.admitted("POST") as started:
        pass
    before = time.monotonic()
    throttle.too_many(started, pause=0)
    first = throttle.spacing
    assert 2 * (before - started) <= first < 0.05  # twice as long as the request took
    with throttle.admitted("POST") as started:
        pass
    throttle.too_many(started, pause=0)
    assert throttle.spacing == 2 * first
    steps = 0
    while throttle.spacing:
        for _ in range(CLEAN_ANSWERS_PER_STEP):
            throttle.clean()
        steps += 1
        assert steps < 50
    assert throttle.limit == 1  # the spacing goes first, then the number in flight
    for _ in range(CLEAN_ANSWERS_PER_STEP):
        throttle.clean()
    assert throttle.limit == 2
    assert "one request in flight, starting at least" in caplog.text
    assert "requests are no longer spaced out" in caplog.text


def test_spaced_requests_start_no_closer_than_the_spacing() -> None:
    throttle = Throttle({"POST": 1}, threading.Event())
    throttle.spacing = 0.05
    starts = []
    for _ in range(3):
        with throttle.admitted("POST") as started:
            starts.append(started)
    assert all(b - a >= 0.05 for a, b in itertools.pairwise(starts))
