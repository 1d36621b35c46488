"""SendPool: the sending threads, with backpressure, and the run's first failure.

Reading goes on while up to `size` chunks are being sent and as many again wait, mapped
and ready, so a freed thread never idles while the reader prepares the next one;
`submit` blocks beyond that, so memory stays flat whatever the input size. (How many
requests are on the wire at once is the client's throttle's business.) The first
job to raise stops the run: the error is kept, `failed` is set (no new request) and so is
`stopping` (no retry), and the reading thread re-raises it at its next `submit` or at
the end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from target_leanpay.source.interrupt import Interrupt

THREAD_PREFIX = "leanpay-send"


class SendPool:
    """Runs jobs on `size` threads; at most `2 * size` are queued or running."""

    def __init__(
        self,
        size: int,
        *,
        interrupt: Interrupt,
        failed: threading.Event,
        stopping: threading.Event,
    ) -> None:
        self._interrupt = interrupt
        self._failed = failed
        self._stopping = stopping
        self._threads = ThreadPoolExecutor(size, thread_name_prefix=THREAD_PREFIX)
        self._slots = threading.BoundedSemaphore(2 * size)
        self._idle = threading.Condition(threading.Lock())
        self._pending = 0
        self.failure: BaseException | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Queue `job`; blocks (a signal may cut the wait short) while every slot is taken,
        noticing a failure within a second (a lost store lock, while requests hang)."""
        self.raise_failure()
        with self._interrupt.blocking():
            while not self._slots.acquire(timeout=1.0):
                self.raise_failure()
        with self._idle:
            self._pending += 1
        self._threads.submit(self._run, job)

    def wait_all(self, timeout: float | None = None) -> bool:
        """Wait until every job has ended; True if none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def busy(self) -> bool:
        """Whether any job is queued or running."""
        with self._idle:
            return self._pending > 0

    def raise_failure(self) -> None:
        """Re-raise, in the reading thread, the first failure of a sending thread."""
        if self.failure is not None:
            raise self.failure

    def fail(self, error: BaseException) -> None:
        """The run must stop (a sending thread failed, or the store's lock was lost): the
        first failure is what the reading thread raises."""
        with self._idle:
            if self.failure is None:
                self.failure = error
        self._failed.set()
        self._stopping.set()

    def shutdown(self) -> None:
        """Let the threads go (after `wait_all`); jobs not started are dropped."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as error:  # reported by the reading thread (a bug: traceback)
            self.fail(error)
        finally:
            self._slots.release()
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
