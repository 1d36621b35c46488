"""HttpProcess: the run's HTTP calls, made by a child process on another core.

`requests` costs ~0.3 ms of CPU per POST. Made by the target's own sending threads, that
CPU competes for the one interpreter lock with the reading thread, which a fast tap
keeps busy: it was the largest cost after reading itself (README, "Throughput"). So one
child process holds the run's `LeanpayClient` and its one `requests.Session`; a caller
hands it an encoded batch over a pipe of its own and waits for the answer. The answer is
what the client returned or raised, the exception itself, so the dispatcher's decisions
(acknowledged, refused, ambiguous) and STATE do not depend on where the HTTP call ran.
Retries are logged here, by the target's logger, as before.

The child lives exactly as long as the run:

* it starts before the first record is read, by fork on Linux (a copy of the target,
  imports done, ready in milliseconds; no other thread exists yet) and by spawn
  elsewhere, where fork is unsafe;
* its descriptor 1 is pointed at stderr and its descriptor 0 at /dev/null before
  anything else: nothing it prints can reach stdout, the STATE channel, and it holds no
  end of the tap's pipe;
* it ignores SIGINT and SIGTERM: Ctrl-C at a terminal, systemd or a scheduler stopping
  the whole process group, reach it too, and the target, which decides what to wait
  for, still needs the answers in flight;
* it exits the moment its lifeline closes: when the run closes, or when the target's
  process ends in any way, a kill included. A request it was making then is abandoned
  as it would be had the target's own thread made it: no STATE covers its items, and
  replay safety finds any Leanpay stored on the next run. A retry it was waiting for is
  never made.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from target_leanpay.client import LeanpayClient, encode_batch
from target_leanpay.client import logger as client_logger
from target_leanpay.errors import ApiError
from target_leanpay.resources import RESOURCES, Resource

START_METHOD = "fork" if sys.platform == "linux" else "spawn"
CLOSE_TIMEOUT = 5.0
"""Seconds the child gets to exit after its lifeline closes before it is killed."""

_ends_in_target: weakref.WeakSet[Connection] = weakref.WeakSet()
"""Every pipe end an HttpProcess of this process holds: a forked child closes them all."""


class SharedStopFlag:
    """The run's stop flag; the child reads it (its retries give up once it is set).

    The shared part is one byte of shared memory, written and read without a lock: a
    lock shared with the child could be left held by a child that died, and then the
    target's own `set()`, the first thing it does when stopping, would never return.
    `wait()` is for the target's threads (it sees only this process's `set()`).
    """

    def __init__(self, shared: Any) -> None:
        self._shared = shared
        self._event = threading.Event()

    def set(self) -> None:
        """Stop: no more retries, here or in the child."""
        self._shared.value = 1
        self._event.set()

    def is_set(self) -> bool:
        """True once the run is stopping."""
        return bool(self._shared.value)

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until set in this process or `timeout`; True if set."""
        return self._event.wait(timeout)


class HttpProcess:
    """The dispatcher's `post_batch` and replay safety's `get_page`, made by a child process."""

    def __init__(self, client_settings: dict[str, Any], *, channels: int) -> None:
        context = multiprocessing.get_context(START_METHOD)
        shared_stop = context.RawValue("b", 0)
        self.stopping = SharedStopFlag(shared_stop)
        self._call_ids = itertools.count()
        self._reaping = threading.Lock()
        """One thread at a time waits for the child: of two racing `waitpid` calls, the
        loser is told nothing, and multiprocessing then thinks the child still runs."""
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        ours, theirs = zip(*(context.Pipe() for _ in range(channels + 1)), strict=True)
        self._lifeline, *channel_ends = ours
        for channel in channel_ends:
            self._idle.put(channel)
        self._ends: list[Connection] = list(ours)
        _ends_in_target.update(ours)
        for stream in (sys.stdout, sys.stderr):  # a forked copy must not write these again
            stream.flush()
        self._process = context.Process(  # type: ignore[attr-defined] # on every context but the base
            target=_serve,
            args=(client_settings, shared_stop, list(theirs)),
            name="target-leanpay-http",
            daemon=True,
        )
        self._process.start()
        for end in theirs:
            end.close()
        # before multiprocessing's own exit hook, which would wait forever for a child
        # that ignores SIGTERM; a weak reference, so a dropped HttpProcess is collected
        # (closing its lifeline) rather than kept alive until exit
        atexit.register(_close_if_alive, weakref.ref(self))

    def post_batch(
        self,
        resource: Resource,
        items: Sequence[dict[str, Any]],
        *,
        on_retry: Callable[[str], None] | None = None,
    ) -> list[str | None] | None:
        """POST one batch, encoded here, sent by the child (`LeanpayClient.post_encoded`)."""
        request = ("post", resource.name, encode_batch(resource, items))
        return self._call(request, f"POST {resource.path}", on_retry)  # type: ignore[no-any-return]

    def get_page(self, path: str, page: int) -> dict[str, Any]:
        """`LeanpayClient.get_page`, made by the child."""
        return self._call(("get", path, page), f"GET {path}?page={page}", None)  # type: ignore[no-any-return]

    def close(self) -> None:
        """End the child (abandoning whatever it is doing) and wait for it; idempotent."""
        if self._lifeline.closed:
            return
        self._lifeline.close()
        with self._reaping:
            self._process.join(CLOSE_TIMEOUT)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        for end in self._ends:
            end.close()

    def _call(
        self, request: tuple[Any, ...], where: str, on_retry: Callable[[str], None] | None
    ) -> Any:
        """One exchange on an idle channel. Each carries a fresh id, and an answer with
        another id is skipped: a call abandoned mid-exchange (its caller raised) can
        never hand its late answer to the next call on the channel."""
        call_id = next(self._call_ids)
        channel = self._idle.get()
        try:
            channel.send((call_id, *request))
            while True:
                answer_id, kind, value = channel.recv()
                if answer_id != call_id:
                    continue
                if kind == "ok":
                    return value
                if kind == "error":
                    raise value
                client_logger.warning("%s", value)  # "retry": the child waits to try again
                if on_retry is not None:
                    on_retry(value)
        except (EOFError, OSError):  # the child's end closed: it is exiting
            with self._reaping:
                self._process.join(CLOSE_TIMEOUT)
            raise ApiError(
                f"{where}: target-leanpay's HTTP process ended (exit code "
                f"{self._process.exitcode}) before Leanpay's answer arrived; Leanpay may "
                "have stored what was sent"
            ) from None
        finally:
            self._idle.put(channel)


def _close_if_alive(reference: weakref.ref[HttpProcess]) -> None:
    http = reference()
    if http is not None:
        http.close()


def _serve(client_settings: dict[str, Any], shared_stop: Any, channels: list[Connection]) -> None:
    """The child: answer each channel on a thread of its own until the lifeline closes."""
    os.dup2(2, 1)
    with open(os.devnull, "rb") as nothing:
        os.dup2(nothing.fileno(), 0)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    for end in list(_ends_in_target):  # forked copies of the target's ends hide its exit
        end.close()
    client_logger.disabled = True  # retries are forwarded, and logged by the target
    lifeline, *requests = channels
    client = LeanpayClient(**client_settings, stopping=SharedStopFlag(shared_stop))
    for channel in requests:
        threading.Thread(target=_answer, args=(client, channel), daemon=True).start()
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()  # nothing is ever sent: this returns at the target's end
    os._exit(0)


def _answer(client: LeanpayClient, channel: Connection) -> None:
    """Make each call a sending thread asks for; send back its result or exception."""
    while True:
        try:
            call_id, kind, *arguments = channel.recv()
        except (EOFError, OSError):
            return

        def forward_retry(message: str, call_id: int = call_id) -> None:
            channel.send((call_id, "retry", message))

        result: Any
        try:
            if kind == "post":
                resource_name, body = arguments
                resource = RESOURCES[resource_name]
                result = client.post_encoded(resource, body, on_retry=forward_retry)
            else:
                path, page = arguments
                result = client.get_page(path, page)
            answer: tuple[int, str, Any] = (call_id, "ok", result)
        except ApiError as error:
            answer = (call_id, "error", error)
        except BaseException:  # a bug: the target reports it with this traceback
            answer = (call_id, "error", _bug("failed"))
        try:
            channel.send(answer)
        except (EOFError, OSError):
            return
        except BaseException:  # e.g. an answer that cannot be pickled: say so, not hang
            channel.send((call_id, "error", _bug("could not send its answer")))


def _bug(what: str) -> RuntimeError:
    return RuntimeError(f"target-leanpay's HTTP process {what}: {traceback.format_exc()}")
