"""Checkpoints: STATE only behind settled records, newest first, in input order."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from target_leanpay.leanpay.errors import DeadLetterError
from target_leanpay.output.checkpoint import Checkpoints
from target_leanpay.output.deadletter import DeadLetters, RejectedItem
from target_leanpay.records.mapping import Problem


def tracker() -> tuple[Checkpoints, list[dict[str, Any]]]:
    written: list[dict[str, Any]] = []
    return Checkpoints(written.append), written


def test_state_with_nothing_open_is_written_at_once() -> None:
    checkpoints, written = tracker()
    checkpoints.state_received({"n": 0})
    assert written == [{"n": 0}]


def test_state_waits_for_every_record_before_it() -> None:
    checkpoints, written = tracker()
    first = [checkpoints.open() for _ in range(3)]
    checkpoints.state_received({"n": 3})
    checkpoints.settle(first[:2])
    assert written == []
    checkpoints.settle(first[2:])
    assert written == [{"n": 3}]


def test_a_later_chunk_settling_first_does_not_release_an_earlier_state() -> None:
    checkpoints, written = tracker()
    chunk_1 = [checkpoints.open() for _ in range(100)]
    checkpoints.state_received({"n": 100})
    chunk_2 = [checkpoints.open() for _ in range(100)]
    checkpoints.state_received({"n": 200})

    checkpoints.settle(chunk_2)  # the fast second request
    assert written == []
    checkpoints.settle(chunk_1)  # the slow first one: both states are now safe
    assert written == [{"n": 200}]  # only the newest is written


def test_records_after_a_state_do_not_hold_it_back() -> None:
    checkpoints, written = tracker()
    before = checkpoints.open()
    checkpoints.state_received({"n": 1})
    checkpoints.open()  # opened after the STATE: not covered by it
    checkpoints.settle([before])
    assert written == [{"n": 1}]


def test_a_record_that_never_settles_holds_back_every_later_state() -> None:
    checkpoints, written = tracker()
    failed = checkpoints.open()
    checkpoints.state_received({"n": 1})
    later = checkpoints.open()
    checkpoints.state_received({"n": 2})
    checkpoints.settle([later])
    assert written == []
    assert checkpoints.waiting_count == 2
    assert checkpoints.open_count == 1
    _ = failed


def test_identical_consecutive_states_are_written_once() -> None:
    checkpoints, written = tracker()
    checkpoints.state_received({"n": 1})
    checkpoints.state_received({"n": 1})
    assert written == [{"n": 1}]


def test_nothing_is_written_after_close() -> None:
    checkpoints, written = tracker()
    seq = checkpoints.open()
    checkpoints.state_received({"n": 1})
    checkpoints.close()
    checkpoints.settle([seq])
    assert written == []


def test_settling_from_many_threads_writes_states_in_order() -> None:
    checkpoints, written = tracker()
    chunks = []
    for n in range(1, 51):
        chunks.append([checkpoints.open() for _ in range(10)])
        checkpoints.state_received({"n": n * 10})
    threads = [threading.Thread(target=checkpoints.settle, args=(c,)) for c in reversed(chunks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = [s["n"] for s in written]
    assert counts == sorted(counts)
    assert counts[-1] == 500


def test_what_a_state_moves_past_is_made_durable_before_it_is_written() -> None:
    events: list[str] = []
    checkpoints = Checkpoints(
        lambda state: events.append(f"write {state['n']}"),
        make_durable=lambda: events.append("durable"),
    )
    seq = checkpoints.open()
    checkpoints.state_received({"n": 1})
    checkpoints.settle([seq])
    assert events == ["durable", "write 1"]


def test_a_state_is_not_written_when_its_dead_letters_cannot_be() -> None:
    written: list[dict[str, Any]] = []

    def disk_full() -> None:
        raise DeadLetterError("no space")

    checkpoints = Checkpoints(written.append, make_durable=disk_full)
    seq = checkpoints.open()
    checkpoints.state_received({"n": 1})
    with pytest.raises(DeadLetterError):
        checkpoints.settle([seq])
    assert written == []


def test_dead_letters_reach_the_disk_with_the_state_that_covers_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    path = tmp_path / "rejected.jsonl"
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(path):  # not its sidecar (reported.py)
            synced.append(path.read_text())  # what is on disk when fsync is asked for
        real_fsync(fd)

    letters = DeadLetters(str(path), None)
    letters.reject(RejectedItem("s", "line 1", {"a": 1}, None, (Problem("a", "bad"),)))
    monkeypatch.setattr(os, "fsync", fsync)
    assert synced == []  # nothing yet: no STATE has moved past it
    letters.commit()
    assert len(synced) == 1 and '"record_id": "line 1"' in synced[0]
    letters.commit()  # nothing new: no second fsync
    assert len(synced) == 1
    letters.close()
