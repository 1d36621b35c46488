"""HttpProcess: the run's HTTP calls, made by a child process on another core.

`requests` costs ~0.3 ms of CPU per POST. Made by the target's own sending threads, that
CPU competes for the one interpreter lock with the reading thread, which a fast tap
keeps busy: it was the largest cost after reading itself (README, "Throughput"). So one
child process holds the run's `LeanpayClient` and its one `requests.Session`; a caller
hands it an encoded batch over a pipe of its own and waits for the answer. The answer is
what the client returned or raised, the exception itself, so the dispatcher's decisions
(acknowledged, refused, ambiguous) and STATE do not depend on where the HTTP call ran.

The child lives exactly as long as the run:

* it starts before the first record is read, by fork on Linux (a copy of the target,
  imports done, ready in milliseconds; no other thread exists yet) and by spawn
  elsewhere, where fork is unsafe;
* its descriptor 1 is pointed at stderr before anything else: nothing it prints can
  reach stdout, the STATE channel;
* it ignores SIGINT: Ctrl-C at a terminal reaches the whole process group, and the
  target, which decides what to wait for, still needs the answers in flight;
* it exits the moment its lifeline closes: when the run closes, or when the target's
  process ends in any way, a kill included. A request it was making then is abandoned
  as it would be had the target's own thread made it: no STATE covers its items, and
  replay safety finds any Leanpay stored on the next run. A retry it was waiting for is
  never made.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from target_leanpay import redaction
from target_leanpay.client import LeanpayClient, encode_batch
from target_leanpay.errors import ApiError
from target_leanpay.interrupt import StopFlag
from target_leanpay.resources import RESOURCES, Resource

START_METHOD = "fork" if sys.platform == "linux" else "spawn"
CLOSE_TIMEOUT = 5.0
"""Seconds the child gets to exit after its lifeline closes before it is killed."""


class HttpProcess:
    """`post_batch` and `get_page` of a `LeanpayClient` living in a child process."""

    def __init__(self, client_settings: dict[str, Any], *, channels: int) -> None:
        context = multiprocessing.get_context(START_METHOD)
        self.stopping: StopFlag = context.Event()
        """The run's stop flag, shared: the child's retries give up once it is set."""
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        ours, theirs = zip(*(context.Pipe() for _ in range(channels + 1)), strict=True)
        self._lifeline, *channel_ends = ours
        for channel in channel_ends:
            self._idle.put(channel)
        self._channels: list[Connection] = list(ours)
        for stream in (sys.stdout, sys.stderr):  # a forked copy must not write these again
            stream.flush()
        self._process = context.Process(  # type: ignore[attr-defined] # on every context but the base
            target=_serve,
            args=(client_settings, self.stopping, list(theirs), list(ours)),
            name="target-leanpay-http",
            daemon=True,
        )
        self._process.start()
        for end in theirs:
            end.close()

    def post_batch(
        self,
        resource: Resource,
        items: Sequence[dict[str, Any]],
        *,
        on_retry: Callable[[str], None] | None = None,
    ) -> list[str | None] | None:
        """`LeanpayClient.post_batch`, made by the child (the body is encoded here)."""
        result = self._call(("post", resource.name, encode_batch(resource, items)), on_retry)
        return result  # type: ignore[no-any-return]

    def get_page(self, path: str, page: int) -> dict[str, Any]:
        """`LeanpayClient.get_page`, made by the child."""
        return self._call(("get", path, page), None)  # type: ignore[no-any-return]

    def close(self) -> None:
        """End the child (abandoning whatever it is doing) and wait for it; idempotent."""
        if self._lifeline.closed:
            return
        self._lifeline.close()
        self._process.join(CLOSE_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        for channel in self._channels:
            channel.close()

    def _call(self, request: tuple[Any, ...], on_retry: Callable[[str], None] | None) -> Any:
        channel = self._idle.get()
        try:
            channel.send(request)
            while True:
                kind, value = channel.recv()
                if kind == "ok":
                    return value
                if kind == "error":
                    raise value
                if on_retry is not None:  # "retry": the child is waiting to try again
                    on_retry(value)
        except (EOFError, OSError):  # the child's end closed: it is exiting
            self._process.join(CLOSE_TIMEOUT)
            what = f"POST {RESOURCES[request[1]].path}" if request[0] == "post" else "GET"
            raise ApiError(
                f"{what}: target-leanpay's HTTP process ended (exit code "
                f"{self._process.exitcode}) before Leanpay's answer arrived; Leanpay may "
                "have stored what was sent"
            ) from None
        finally:
            self._idle.put(channel)


def _serve(
    client_settings: dict[str, Any],
    stopping: StopFlag,
    channels: list[Connection],
    parent_ends: list[Connection],
) -> None:
    """The child: answer each channel on a thread of its own until the lifeline closes."""
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for end in parent_ends:  # a forked copy of the target's ends would hide its exit
        end.close()
    lifeline, *requests = channels
    if START_METHOD != "fork":  # a forked child has the target's filters already
        redaction.install([client_settings["api_key"]])
    client = LeanpayClient(**client_settings, stopping=stopping)
    for channel in requests:
        threading.Thread(target=_answer, args=(client, channel), daemon=True).start()
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()  # nothing is ever sent: this returns at the target's end
    os._exit(0)


def _answer(client: LeanpayClient, channel: Connection) -> None:
    """Make each call a sending thread asks for; send back its result or exception."""

    def forward_retry(message: str) -> None:
        channel.send(("retry", message))

    while True:
        try:
            request = channel.recv()
        except (EOFError, OSError):
            return
        result: Any
        try:
            if request[0] == "post":
                _, resource_name, body = request
                resource = RESOURCES[resource_name]
                result = client.post_encoded(resource, body, on_retry=forward_retry)
            else:
                _, path, page = request
                result = client.get_page(path, page)
            answer: tuple[str, Any] = ("ok", result)
        except ApiError as error:
            answer = ("error", error)
        except Exception:  # a bug: the target reports it with this traceback
            answer = ("error", RuntimeError(f"in the HTTP process: {traceback.format_exc()}"))
        try:
            channel.send(answer)
        except (EOFError, OSError):
            return
