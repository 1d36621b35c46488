"""NumberedReader: line numbers, exact numbers, one-paragraph input errors, safe stops."""

from __future__ import annotations

import io
import signal
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from target_leanpay.leanpay.errors import InputError
from target_leanpay.source.interrupt import Terminated
from target_leanpay.source.reader import NumberedReader, _Blocks

SCHEMA = b'{"type": "SCHEMA", "stream": "s", "schema": {}, "key_properties": []}\n'


def read(data: bytes) -> tuple[NumberedReader, list[dict[str, Any]]]:
    reader = NumberedReader()
    seen: list[dict[str, Any]] = []
    callbacks = dict.fromkeys(("RECORD", "SCHEMA", "STATE", "ACTIVATE_VERSION", "BATCH"))
    reader.process_lines(
        io.BytesIO(data),  # type: ignore[arg-type] # bytes, as stdin.buffer gives them
        {kind: seen.append for kind in callbacks},
    )
    return reader, seen


def test_messages_are_dispatched_and_lines_counted() -> None:
    reader, seen = read(SCHEMA + b'{"type": "RECORD", "stream": "s", "record": {}}\n')
    assert [m["type"] for m in seen] == ["SCHEMA", "RECORD"]
    assert reader.line_number == 2


def test_numbers_with_a_fraction_are_exact_decimals_never_floats() -> None:
    _, seen = read(b'{"type": "RECORD", "stream": "s", "record": {"a": 0.1, "b": 7}}\n')
    assert seen[0]["record"] == {"a": Decimal("0.1"), "b": 7}
    assert type(seen[0]["record"]["a"]) is Decimal


def test_text_lines_are_read_too() -> None:
    reader = NumberedReader()
    seen: list[dict[str, Any]] = []
    reader.process_lines(io.StringIO(SCHEMA.decode()), {"SCHEMA": seen.append})
    assert seen[0]["stream"] == "s"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json\n", "Input line 2 is not valid JSON"),
        (b'{"type": "RECORD", "record": {"a": NaN}}\n', "Input line 2 is not valid JSON"),
        (b"[1, 2]\n", "Input line 2 is not a JSON object: [1, 2]"),
        (b'{"type": "HELLO"}\n', "Input line 2 has an unknown message type 'HELLO'"),
        (b'{"stream": "s"}\n', "Input line 2 has an unknown message type None"),
    ],
)
def test_malformed_input_names_its_line(line: bytes, message: str) -> None:
    with pytest.raises(InputError) as error:
        read(SCHEMA + line)
    assert str(error.value).startswith(message)


def test_a_huge_malformed_line_is_quoted_short() -> None:
    with pytest.raises(InputError) as error:
        read(b"{" + b"x" * 100_000 + b"\n")
    assert len(str(error.value)) < 400


def test_a_signal_noted_before_a_read_stops_the_reader_there() -> None:
    reader = NumberedReader()
    reader.interrupt.request(15)  # not parked: only noted
    with pytest.raises(Terminated) as stopped:
        reader.process_lines(io.BytesIO(SCHEMA), {})  # type: ignore[arg-type]
    assert stopped.value.signum == 15
    assert reader.line_number == 0  # nothing was read
    assert reader.interrupt.waiting is False


class SilentInput:
    """An input whose next line never comes (a tap that went quiet) until released."""

    def __init__(self, first: bytes = SCHEMA) -> None:
        self.first = first
        self.release = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        self.release.wait()


def test_a_signal_while_parked_on_a_read_raises_at_once() -> None:
    reader = NumberedReader()
    silent = SilentInput()
    main = threading.get_ident()

    def signal_once_parked() -> None:
        wait_until(lambda: reader.interrupt.waiting and reader.line_number == 1)
        signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(
        signal.SIGUSR1, lambda signum, _frame: reader.interrupt.request(signum)
    )
    sender = threading.Thread(target=signal_once_parked)
    sender.start()
    try:
        with pytest.raises(Terminated) as stopped:
            reader.process_lines(silent, {"SCHEMA": lambda _m: None})  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGUSR1, previous)
        silent.release.set()
        sender.join()
    assert stopped.value.signum == signal.SIGUSR1
    assert reader.line_number == 1


def test_a_partial_batch_is_due_while_the_input_is_silent() -> None:
    # `due` is asked again when the input has been silent for as long as it said
    reader = NumberedReader()
    silent = SilentInput()
    asked: list[int] = []

    def due() -> float | None:
        asked.append(reader.line_number)
        if len(asked) == 3:
            silent.release.set()  # the tap speaks again (here: its output ends)
        return 0.01

    reader.due = due
    reader.process_lines(silent, {"SCHEMA": lambda _m: None})  # type: ignore[arg-type]
    assert asked[:3] == [1, 1, 1]  # after the first block, then twice while silent


def test_blank_lines_are_skipped_and_counted() -> None:
    reader, seen = read(b"\n" + SCHEMA + b"  \r\n\n" + b'{"type": "STATE", "value": {}}\n\n')
    assert [m["type"] for m in seen] == ["SCHEMA", "STATE"]
    assert reader.line_number == 6


def test_a_last_line_without_its_newline_is_read() -> None:
    _, seen = read(SCHEMA + b'{"type": "STATE", "value": {"n": 1}}')
    assert seen[-1] == {"type": "STATE", "value": {"n": 1}}


def wait_until(condition: Callable[[], bool]) -> None:
    """Poll until true (bounded: a stuck reader fails the test instead of hanging it)."""
    for _ in range(5000):
        if condition():
            return
        time.sleep(0.002)
    raise AssertionError("condition never held")


class _Counted(bytes):
    """A block as `os.read` returns it, tallying the bytes every operation on it touches."""

    touched = 0

    def split(self, *args: Any, **kwargs: Any) -> list[bytes]:  # type: ignore[override]
        _Counted.touched += len(self)
        return super().split(*args, **kwargs)

    def __add__(self, other: bytes) -> bytes:  # type: ignore[override]
        _Counted.touched += len(self) + len(other)
        return bytes(self) + bytes(other)

    def __radd__(self, other: bytes) -> bytes:
        _Counted.touched += len(self) + len(other)
        return bytes(other) + bytes(self)


def test_stdin_is_split_in_linear_work_however_long_a_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line of 1,000 reads is scanned and copied once, not once per read (a 60 MB line
    took 26 s, a 15 MB one 2 s): the work is counted, never timed."""
    block = 4096
    long_line = b'{"type": "STATE", "value": {"pad": "' + b"x" * (1000 * block) + b'"}}'
    data = SCHEMA + long_line + b"\n" + SCHEMA + long_line  # the last line has no newline
    reads = iter(_Counted(data[i : i + block]) for i in range(0, len(data), block))

    def fake_read(descriptor: int, size: int) -> bytes:
        assert size >= block
        return next(reads, b"")

    class Stdin:
        def fileno(self) -> int:
            return 0

    monkeypatch.setattr("sys.stdin", Stdin())
    monkeypatch.setattr("os.read", fake_read)
    _Counted.touched = 0
    lines = [line for lines in _Blocks._stdin() for line in lines]

    assert lines == [SCHEMA[:-1], long_line, SCHEMA[:-1], long_line]
    assert _Counted.touched <= 2 * len(data), f"{_Counted.touched:,} bytes for {len(data):,}"
