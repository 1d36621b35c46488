"""Throttle: a 429 halves the in-flight limit once per round; clean answers raise it again."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from target_leanpay.leanpay.errors import Stopped
from target_leanpay.leanpay.throttle import (
    CLEAN_ANSWERS_PER_STEP,
    LONGEST_SPACING,
    SHORTEST_SPACING,
    Throttle,
)


def test_a_429_halves_the_limit_once_for_the_requests_of_one_round() -> None:
    throttle = Throttle({"POST": 4}, threading.Event())
    with throttle.admitted("POST") as first, throttle.admitted("POST") as second:
        pass
    assert throttle.too_many(first)  # slowed down: its retry is not counted
    assert not throttle.too_many(second)  # sent before the cut: no second cut
    assert throttle.limit == 2
    with throttle.admitted("POST") as later:
        pass
    assert throttle.too_many(later)  # sent after the cut, still refused: cut again
    assert throttle.limit == 1
    with throttle.admitted("POST") as last:
        pass
    throttle.too_many(last)
    assert throttle.limit == 1  # never below one


def test_clean_answers_raise_the_limit_step_by_step_up_to_the_maximum() -> None:
    throttle = Throttle({"POST": 3}, threading.Event())
    with throttle.admitted("POST") as started:
        pass
    throttle.too_many(started)
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
    throttle.too_many(started)
    for _ in range(CLEAN_ANSWERS_PER_STEP - 1):
        throttle.clean()
    with throttle.admitted("POST") as again:
        pass
    throttle.too_many(again)
    throttle.clean()
    assert throttle.limit == 1


def test_each_change_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    throttle = Throttle({"POST": 2}, threading.Event())
    with throttle.admitted("POST") as first, throttle.admitted("POST") as second:
        pass
    throttle.too_many(first)
    throttle.pause(0.5)
    throttle.too_many(second)  # neither a new cut ...
    throttle.pause(0.2)  # ... nor a longer pause: silent
    for _ in range(CLEAN_ANSWERS_PER_STEP):
        throttle.clean()
    assert [r.getMessage() for r in caplog.records] == [
        "Leanpay answered 429 (too many requests): up to 1 request in flight (halved)",
        "Leanpay answered 429: every request waits 0.5 s",
        "Leanpay answers cleanly again: up to 2 requests in flight",
    ]


def test_a_pause_holds_every_request_until_it_ends() -> None:
    throttle = Throttle({"POST": 2, "GET": 2}, threading.Event())
    before = time.monotonic()
    throttle.pause(0.3)
    with throttle.admitted("GET") as started:
        pass
    assert started >= before + 0.3


def test_the_spacing_stops_doubling_at_its_longest_and_429s_then_count() -> None:
    throttle = Throttle({"POST": 1}, threading.Event())
    throttle.spacing = LONGEST_SPACING / 1.5
    started = time.monotonic()
    assert throttle.too_many(started)
    assert throttle.spacing == LONGEST_SPACING
    assert not throttle.too_many(time.monotonic())  # no slower pace: this one costs a retry
    assert throttle.spacing == LONGEST_SPACING


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
    throttle.too_many(started)
    assert (throttle.limit, throttle.spacing) == (1, 0)
    with throttle.admitted("POST") as started:
        pass
    before = time.monotonic()
    throttle.too_many(started)
    after = time.monotonic()
    first = throttle.spacing
    # twice as long as the request took (from its start to the 429)
    assert 2 * (before - started) <= first <= max(2 * (after - started), SHORTEST_SPACING)
    assert first >= SHORTEST_SPACING  # and never below what counts as spaced
    with throttle.admitted("POST") as started:
        pass
    throttle.too_many(started)
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
