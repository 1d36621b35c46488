"""StateOutput: STATE lines reach stdout in order from a thread of their own; a stdout that
refuses them stops the run with one paragraph."""

from __future__ import annotations

import errno
import io
import sys
import threading
from decimal import Decimal

import pytest

from target_leanpay.leanpay.errors import OutputClosed
from target_leanpay.output.state_output import StateOutput, encode_state


def test_lines_are_written_in_order_and_drain_waits_for_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    output = StateOutput()
    for n in range(50):
        output.put({"n": n, "amount": Decimal("12.50")})
    assert output.drain(timeout=10)
    assert out.getvalue().splitlines() == [f'{{"n":{n},"amount":12.50}}' for n in range(50)]


class Stalled(io.StringIO):
    """A stdout whose reader stopped reading: every write blocks until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait()
        return super().write(text)


def test_a_stalled_stdout_blocks_nobody_but_the_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Stalled()
    monkeypatch.setattr(sys, "stdout", out)
    output = StateOutput()
    output.put({"n": 1})
    output.put({"n": 2})  # returns although the first line is stuck
    assert output.drain(timeout=0.05) is False
    out.release.set()
    assert output.drain(timeout=10) is True
    assert out.getvalue() == '{"n":1}\n{"n":2}\n'


class Refusing(io.StringIO):
    def __init__(self, error: int) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise OSError(self.error, "refused")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (errno.EPIPE, "stdout was closed by the program reading it"),
        (errno.ENOSPC, "STATE can no longer be written to stdout (refused)"),
    ],
)
def test_a_stdout_that_refuses_a_line_stops_the_run(
    monkeypatch: pytest.MonkeyPatch, error: int, said: str
) -> None:
    monkeypatch.setattr(sys, "stdout", Refusing(error))
    output = StateOutput()
    output.put({"n": 1})
    with pytest.raises(OutputClosed) as closed:
        output.drain(timeout=10)
    assert said in str(closed.value)
    with pytest.raises(OutputClosed):
        output.put({"n": 2})


def test_a_lone_surrogate_is_written_back_as_its_escape() -> None:
    assert encode_state({"k": "a\ud800b"}) == '{"k":"a\\ud800b"}'
