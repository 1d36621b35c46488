"""StateOutput: STATE lines go to stdout from a thread of their own, so stdout never blocks
the run.

stdout is a pipe to whoever keeps the STATE (Meltano, a shell's `> state.out`). When that
reader stalls, a write blocks until it reads again: done by a sending thread or the
reading thread, it would hold the run (and, on a signal, its exit) hostage. Lines are
queued instead, in order, and written by one writer thread; the run waits for them only
where it must (the end of input), and a signal's bounded exit leaves a blocked writer
behind (`os._exit`).

When stdout cannot take a line (its reader has gone: `| head`; a full disk: `>
/dev/full`; closed at start: `>&-`), no STATE can be kept any more: stdout is pointed at
/dev/null, and the next `put` or `drain` raises `OutputClosed`, which stops the run with
one paragraph and exit code 1.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import uuid
from collections import deque
from typing import Any

import msgspec

from target_leanpay.leanpay.errors import OutputClosed
from target_leanpay.records.values import encodable

State = dict[str, Any]

_encode = msgspec.json.Encoder(decimal_format="number").encode
"""The reader turns JSON numbers with a fraction into Decimal: write them back as numbers."""


def encode_state(state: State) -> str:
    """A STATE message's value as one JSON line (what a target writes), exactly as the tap
    sent it.

    msgspec cannot encode a string holding a lone surrogate (Python's json reads one from
    `"\\ud800"`); such strings are written as JSON escapes instead, so the tap reads back
    the very same value.
    """
    try:
        return _encode(state).decode()
    except UnicodeEncodeError:
        literals: dict[str, str] = {}
        text = _encode(_with_placeholders(state, literals)).decode()
        for placeholder, literal in literals.items():
            text = text.replace(f'"{placeholder}"', literal)
        return text


def _with_placeholders(value: Any, literals: dict[str, str]) -> Any:
    """`value` with each unencodable string swapped for a unique ASCII placeholder."""
    if isinstance(value, str):
        if encodable(value):
            return value
        placeholder = f"target-leanpay-escaped-{uuid.uuid4().hex}"
        literals[placeholder] = json.dumps(value)  # ASCII, with \uXXXX escapes
        return placeholder
    if isinstance(value, dict):
        return {
            _with_placeholders(k, literals): _with_placeholders(v, literals)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_with_placeholders(item, literals) for item in value]
    return value


class StateOutput:
    """Writes STATE lines to stdout, in order, from its own thread."""

    def __init__(self) -> None:
        self._lines: deque[str] = deque()
        self._changed = threading.Condition(threading.Lock())
        self._writing = False
        self._failure: OutputClosed | None = None
        self._thread: threading.Thread | None = None

    def put(self, state: State) -> None:
        """Queue one STATE line; raise `OutputClosed` if stdout can take no more."""
        line = encode_state(state) + "\n"
        with self._changed:
            if self._failure is not None:
                raise self._failure
            self._lines.append(line)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_lines, name="leanpay-state", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued line is written (True), or `timeout` passed (False);
        raise `OutputClosed` if stdout refused one."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: self._failure is not None or not (self._lines or self._writing), timeout
            )
            if self._failure is not None:
                raise self._failure
        return done

    def _write_lines(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._lines))
                line = self._lines.popleft()
                self._writing = True
            try:
                stream = sys.stdout
                if stream is None:
                    raise OSError("stdout is closed")
                stream.write(line)
                stream.flush()
            except (OSError, ValueError, AttributeError) as exc:
                failure = _cannot_write(exc)
                with self._changed:
                    self._failure = failure
                    self._lines.clear()
                    self._writing = False
                    self._changed.notify_all()
                return
            with self._changed:
                self._writing = False
                self._changed.notify_all()


def _cannot_write(exc: BaseException) -> OutputClosed:
    """The run's one paragraph about stdout, which also stops any later write."""
    _discard_stdout()
    if isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.EBADF):
        why = "stdout was closed by the program reading it, so STATE can no longer be written"
    else:
        cause = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        why = f"STATE can no longer be written to stdout ({cause})"
    return OutputClosed(
        f"{why}; the run stops. Records Leanpay acknowledged stay loaded; run the tap again "
        "from its last saved STATE (replay safety skips what is already loaded)."
    )


def _discard_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no descriptor (None, a StringIO)
        pass
