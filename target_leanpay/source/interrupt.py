"""Interrupt: SIGTERM / SIGINT act only where the reading thread may safely stop.

Raising from a signal handler at an arbitrary bytecode can tear shared state (a chunk
handed to a thread but not yet tracked, a lock held by an interrupted frame). So the
handler only records the signal, and raises at once only if the reading thread is
parked in a blocking wait (the next input line, a free sending slot, the last answers);
everywhere else the request is honoured at the next such point, microseconds later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(BaseException):
    """Raised in the reading thread by SIGTERM / SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class Interrupt:
    """The termination request of the reading thread, and where it may be raised."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.waiting = False
        """True while parked in a wait; set it *before* the last `check()` of the wait."""

    def request(self, signum: int) -> None:
        """Called by the signal handler: raise now if parked in a wait, else note it."""
        self.signum = signum
        if self.waiting:
            raise Terminated(signum)

    def check(self) -> None:
        """Raise if a signal was noted (call after setting `waiting`, before waiting)."""
        if self.signum is not None:
            raise Terminated(self.signum)

    @contextmanager
    def blocking(self) -> Iterator[None]:
        """Around a wait that a signal may cut short."""
        self.waiting = True
        try:
            self.check()  # arrived just before the wait began
            yield
        finally:
            self.waiting = False
