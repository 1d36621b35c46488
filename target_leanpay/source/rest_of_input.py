"""After a failure, read the tap's output to its end (discarding it), then exit 1.

A target that exits while its tap is still writing breaks the pipe between them. Under
`meltano run` (Meltano 4.4.1 copies the tap's output into the target's stdin) that is
Meltano's own BrokenPipeError: some hundred lines of traceback after the target's one-line
reason, which the user then takes for the cause. Meltano reports the loader's exit code as
the cause ("Loader failed", the target's lines above it) only when the tap's output has
been taken to its end. The same holds for a shell pipeline (`tap | target-leanpay`): the
tap dies of the broken pipe, with its own traceback.

So a failed run (a config error, a refused key, a record the run cannot go on from)
reads what is left of its input and drops it: nothing more is mapped or sent. The cost is
the tap's run, which goes on to its end; the target's reason is on stderr at once. A
terminal is not read (nobody would end it), nor an `--input` file (no pipe to break).
A signal stops the reading: the tap is being stopped too.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import IO, NoReturn

CHUNK = 1 << 16


def discard_rest_of_input(file_input: IO[str] | None) -> None:
    """Read stdin to its end, unless the input is a file, stdin a terminal or unreadable."""
    if file_input is not None or sys.stdin is None:
        return
    with contextlib.suppress(OSError, ValueError):  # closed, or not a readable stream
        if sys.stdin.isatty():
            return
        fd = sys.stdin.fileno()  # below any buffer: what is buffered is out of the pipe
        while os.read(fd, CHUNK):
            pass


def exit_before_reading(file_input: IO[str] | None) -> NoReturn:
    """Exit 1 for a run refused before its first line (its reason is already logged)."""
    discard_rest_of_input(file_input)
    sys.exit(1)
