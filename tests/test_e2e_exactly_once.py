"""Exactly once: kill the target anywhere, replay the input like a tap would, count invoices.

Leanpay documents no idempotency key and nothing about a repeated externalId. The stand-in
has three plausible modes: it accepts a duplicate (the dangerous one: a second invoice is
created), refuses it (409 naming the items), or ignores it (answers with the existing
invoice). The scenarios run against the first: a mode decides only the answer to a POST
carrying an externalId Leanpay holds, which no scenario may make; accepting one shows as an
invoice stored twice (and the journal shows the POST), where refusing or ignoring it would
hide the very mistake. After the scenario and a resumed run, each invoice 0..N-1 must be in
Leanpay exactly once. What the other two modes answer when a run does repeat an invoice
(replay_safety off) is pinned by the last scenario of section 6.

The resumed run is fed what a tap sends after a crash: everything after the last STATE the
target printed on stdout, so records Leanpay already holds are sent to the target again.

Documented limits, pinned here so that a change is noticed: records without an externalId
are not protected (a replay stores them again), and `replay_safety: false` makes a repeated
run that lacks the store's receipts (another store) store duplicates wherever Leanpay
accepts them.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest
from conftest import (
    API_KEY,
    STREAM,
    Result,
    Running,
    batch_posts,
    emitted,
    in_progress,
    invoice,
    invoices_with_state,
    run_target,
    schema,
    singer_input,
    state,
    target_config,
    wait_for,
)

from leanpay_standin import StandIn

BATCH = "/invoices/batch"
MODES = ("accept", "refuse", "ignore")
N = 500

every_mode = pytest.mark.parametrize("server", MODES, indirect=True)
"""Only where a run repeats an invoice on purpose (replay safety off): what each mode
answers it. Elsewhere a mode decides nothing a passing scenario does (module notes)."""
both_stores = pytest.mark.parametrize("store_setting", ["folder", "postgres"], indirect=True)
"""Where the store matters (what the killed or earlier run recorded): the folder store and
a PostgreSQL store, against a stand-in that accepts duplicates."""


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    """A stand-in accepting duplicates, or in the mode given by indirect parametrization."""
    with StandIn(api_key=API_KEY, duplicates=getattr(request, "param", "accept")) as standin:
        yield standin


# -- helpers ---------------------------------------------------------------------------


def ids(stop: int, start: int = 0) -> list[str]:
    """The externalIds of invoice(start) .. invoice(stop - 1)."""
    return [f"INV-{i:05d}" for i in range(start, stop)]


def stored(leanpay: StandIn) -> Counter[str | None]:
    """How many invoices Leanpay holds per externalId."""
    return Counter(item["externalId"] for item in leanpay.store("invoices"))


def assert_exactly_once(leanpay: StandIn, n: int) -> None:
    """Invoices INV-00000 .. n-1 are each stored once, and nothing else is."""
    counts = stored(leanpay)
    doubled = sorted(k for k, v in counts.items() if v > 1 and k is not None)
    missing = [k for k in ids(n) if k not in counts]
    unexpected = sorted(str(k) for k in set(counts) - set(ids(n)))
    assert not doubled and not missing and not unexpected, (
        f"{len(doubled)} invoices stored more than once (e.g. {doubled[:5]}), "
        f"{len(missing)} lost (e.g. {missing[:5]}), {len(unexpected)} unexpected"
    )
    assert sum(counts.values()) == n


def posted_ids(entries: Sequence[dict[str, Any]]) -> Counter[str]:
    """How often each externalId was sent in a batch POST (answered or not)."""
    return Counter(
        item["externalId"]
        for entry in entries
        if entry["method"] == "POST" and entry["path"] == BATCH and entry["body"]
        for item in entry["body"]["invoices"]
    )


def gets(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The list requests (GET /invoices?page=N) among `entries`."""
    return [e for e in entries if e["method"] == "GET" and e["path"] == "/invoices"]


SUMMARY = re.compile(
    r"Summary: stream '(?P<stream>[^']+)' -> \w+: (?P<read>\d+) records? read, "
    r"(?P<acknowledged>\d+) acknowledged, (?P<present>\d+) already present, "
    r"(?P<rejected>\d+) rejected, (?P<requests>\d+) requests?, (?P<retries>\d+) retr(?:y|ies)"
)


def summary(stderr: str, stream: str = STREAM) -> dict[str, int]:
    """The end-of-run counters of `stream` (the last summary line for it)."""
    found = [m for m in SUMMARY.finditer(stderr) if m.group("stream") == stream]
    assert found, f"no summary line for stream {stream!r} in stderr:\n{stderr[-3000:]}"
    return {k: int(v) for k, v in found[-1].groupdict().items() if k != "stream"}


def kill(killed: Running, n: int) -> int:
    """SIGKILL the target; return the last STATE it printed (where a tap resumes)."""
    code = killed.kill()
    assert code == -signal.SIGKILL, "the target had already stopped: the kill tested nothing"
    done = max(emitted(killed.states), default=0)
    assert done < n, "everything was checkpointed before the kill: nothing left to resume"
    return done


def check_resumed(
    leanpay: StandIn,
    tmp_path: Path,
    done: int,
    n: int,
    *,
    exact_present: int | None = None,
    expect_replay: bool = True,
    **settings: Any,
) -> Result:
    """Run the rest of the input from STATE `done`, and assert exactly once."""
    held_before = set(stored(leanpay))
    # STATE never runs ahead of the data: everything it covers is in Leanpay
    assert set(ids(done)) <= held_before
    leanpay.state.faults.clear()
    journal_before = len(leanpay.requests())
    config = target_config(leanpay, tmp_path, **settings)

    result = run_target(config, invoices_with_state(n - done, every=50, start=done))

    assert result.returncode == 0, result.stderr
    assert_exactly_once(leanpay, n)
    replayed_but_held = held_before & set(ids(n, done))
    counts = summary(result.stderr)
    assert counts["read"] == n - done
    assert counts["present"] == len(replayed_but_held)
    assert counts["acknowledged"] == n - done - len(replayed_but_held)
    assert counts["rejected"] == 0
    if exact_present is not None:
        assert counts["present"] == exact_present
    if expect_replay:
        assert counts["present"] > 0, "the tap re-sent nothing Leanpay held: nothing tested"
    # nothing Leanpay already held was sent again, and nothing was sent twice
    sent_again = posted_ids(leanpay.requests()[journal_before:])
    assert not set(sent_again) & held_before
    assert set(sent_again.values()) <= {1}
    assert emitted(result.states)[-1] == n
    return result


# -- 1. kill -9 anywhere, resume from the last STATE -------------------------------------


def test_kill_right_after_the_first_acknowledged_batch(server: StandIn, tmp_path: Path) -> None:
    # 75 per request, STATE every 50: the first checkpoint (50) lands inside a batch, so
    # the tap re-sends 25 invoices Leanpay holds (100 when the second request got there:
    # it is stored at once and answered 8 s later, in flight at the kill), and no STATE can pass
    # 50 before it, however busy the machine (the kill follows the first STATE). One
    # request at a time: the first to arrive is the first batch. stdin stays open (the tap
    # is still running).
    server.add_faults(
        {"path": BATCH, "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": BATCH, "action": "delay_after_store", "seconds": 8, "times": 1},
    )
    config = target_config(server, tmp_path, batch_size_rows=75, max_in_flight=1)
    target = Running(config)
    target.feed(singer_input(invoices_with_state(N, every=50)))

    wait_for(lambda: target.states)
    done = kill(target, N)
    assert done == 50
    # the request in flight at the kill is stored (its answer, 8 s later, changes nothing
    # Leanpay holds): the resumed run need not wait for it

    check_resumed(server, tmp_path, done, N, batch_size_rows=75)


@both_stores
def test_kill_while_leanpay_stored_a_batch_but_has_not_answered(
    server: StandIn, tmp_path: Path, store_setting: str
) -> None:
    # request 1 is answered (STATE 100); request 2 is stored, then the answer hangs
    server.add_faults(
        {"path": BATCH, "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": BATCH, "action": "delay_after_store", "seconds": 30, "times": 1},
    )
    config = target_config(server, tmp_path, max_in_flight=1, store=store_setting)
    target = Running(config)
    target.feed(singer_input(invoices_with_state(N, every=50)))
    target.close_input()

    wait_for(lambda: len(server.store("invoices")) == 200)
    wait_for(lambda: emitted(target.states) == [100])  # STATE lines have a thread of their own
    done = kill(target, N)

    assert done == 100
    check_resumed(server, tmp_path, done, N, exact_present=100, store=store_setting)


def test_kill_while_a_request_is_in_flight_before_leanpay_stored_it(
    server: StandIn, tmp_path: Path
) -> None:
    # four requests in flight; whichever arrives second is held before storing, the
    # others are stored and acknowledged, but STATE cannot pass the held one.
    # Six chunks: the sixth can only be sent once two requests have finished, so the
    # held (second) one is never the last and a later chunk is stored behind it: the
    # resumed run must find those already present. (With five, the fifth chunk could be
    # the second to arrive under load, leaving nothing stored behind the held one.)
    n = 600
    server.add_faults(
        {"path": BATCH, "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": BATCH, "action": "delay_before_store", "seconds": 30, "times": 1},
    )
    config = target_config(server, tmp_path, max_in_flight=4)
    target = Running(config)
    target.feed(singer_input(invoices_with_state(n, every=50)))
    target.close_input()

    wait_for(lambda: len(batch_posts(server)) == 6 and len(server.store("invoices")) == 500)
    wait_for(lambda: in_progress(server) == 1)  # only the held request is left
    held = [p for p in batch_posts(server) if p["status"] is None]
    assert len(held) == 1
    before_held = int(held[0]["body"]["invoices"][0]["externalId"][4:])
    # STATE reaches the held batch (or stays at the start if it was the first one), and
    # no further: it is written on its own thread, so wait for it before the kill
    wait_for(lambda: max(emitted(target.states), default=0) >= before_held)
    done = kill(target, n)
    assert done == before_held

    # the held batch would be stored 30 s later, after this test, whose end drops it (a
    # request stored after its client gave up: test_a_timed_out_batch_that_leanpay_stores_later)
    check_resumed(server, tmp_path, done, n)


def test_kill_in_the_middle_of_reading(server: StandIn, tmp_path: Path) -> None:
    # the tap has written 230 records and half of the next line, then paused
    config = target_config(server, tmp_path, batch_size_rows=75, max_in_flight=1)
    messages = invoices_with_state(N, every=50)
    upto = next(
        i for i, m in enumerate(messages) if m.get("record", {}).get("reference") == "F-00230"
    )
    text = singer_input(messages[:upto])
    next_line = singer_input(messages[upto : upto + 1])
    target = Running(config)
    target.feed(text + next_line[: len(next_line) // 2])

    # requests 0-74, 75-149, 150-224 are acknowledged; 225-229 wait in the buffer
    wait_for(lambda: emitted(target.states)[-1:] == [200])
    wait_for(lambda: len(server.store("invoices")) == 225 and in_progress(server) == 0)
    done = kill(target, N)

    assert done == 200
    check_resumed(server, tmp_path, done, N, exact_present=25, batch_size_rows=75)


def test_kill_while_a_schema_change_strands_a_partial_batch(
    server: StandIn, tmp_path: Path
) -> None:
    # The tap sends a new SCHEMA after record 249: the SDK retires the old sink with
    # records 200-249 still buffered. Records 250-349 go out through the new sink; STATE
    # may pass 200 only once the retired sink's records are acknowledged too.
    changed = schema()
    changed["schema"]["properties"]["note"] = {"type": ["string", "null"]}
    messages: list[dict[str, Any] | str] = list(invoices_with_state(250, every=50))
    messages.append(changed)
    messages += invoices_with_state(150, every=50, start=250)[1:]
    config = target_config(server, tmp_path, max_in_flight=2)
    target = Running(config)
    target.feed(singer_input(messages))  # stdin stays open

    # the retired sink's partial batch is sent at once: every record up to 349 is
    # acknowledged and STATE 350 comes out (350-399 wait in the new sink's buffer)
    wait_for(lambda: emitted(target.states)[-1:] == [350])
    done = kill(target, N)

    assert done == 350
    assert emitted(target.states) == sorted(set(emitted(target.states)))
    check_resumed(server, tmp_path, done, N, expect_replay=False)


def test_sigterm_then_resume(server: StandIn, tmp_path: Path) -> None:
    # the polite stop: request 2 is slow; SIGTERM lets it finish, keeps its checkpoint
    server.add_faults(
        {"path": BATCH, "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": BATCH, "action": "delay_after_store", "seconds": 1, "times": 1},
    )
    config = target_config(server, tmp_path, max_in_flight=1)
    target = Running(config)
    target.feed(singer_input(invoices_with_state(N, every=50)))  # stdin stays open

    wait_for(lambda: len(server.store("invoices")) == 200)
    target.process.send_signal(signal.SIGTERM)
    assert target.process.wait(timeout=30) == 128 + signal.SIGTERM
    target.kill()  # already gone: collects its output
    done = max(emitted(target.states), default=0)

    assert done in (100, 200, 300)  # 300 if request 3 went out before the signal
    check_resumed(server, tmp_path, done, N, expect_replay=False)


# -- 2. a stored batch whose answer never came ------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"action": "delay_after_store", "seconds": 3}, id="timeout"),
        pytest.param({"action": "drop_after_store"}, id="dropped"),
    ],
)
def test_a_stored_but_unanswered_batch_is_checked_not_sent_again(
    server: StandIn, tmp_path: Path, fault: dict[str, Any]
) -> None:
    server.add_faults({"path": BATCH, "times": 1, **fault})
    config = target_config(server, tmp_path, request_timeout=1, max_in_flight=1)

    result = run_target(config, invoices_with_state(250, every=50))

    assert result.returncode == 0, result.stderr
    assert_exactly_once(server, 250)
    journal = server.requests()
    assert set(posted_ids(journal).values()) == {1}  # no item was sent twice
    # the listing before sending (empty tenant: one page), and one after the ambiguous
    # POST, which reads every page of the 100 invoices then stored once
    pages = math.ceil(100 / server.state.settings.page_size)
    listed = [int(g["query"]["page"]) for g in gets(journal)]
    assert listed[0] == 1
    assert sorted(listed[1:]) == list(range(1, pages + 1))
    counts = summary(result.stderr)
    assert (counts["acknowledged"], counts["present"], counts["rejected"]) == (150, 100, 0)
    assert counts["retries"] >= 1
    assert emitted(result.states) == [100, 200, 250]
    assert "checking which items Leanpay holds before sending again" in result.stderr


def test_concurrent_ambiguous_batches_are_each_checked(server: StandIn, tmp_path: Path) -> None:
    # two of five concurrent requests are stored and their connections dropped
    server.add_faults({"path": BATCH, "action": "drop_after_store", "times": 2})
    config = target_config(server, tmp_path, max_in_flight=4)

    result = run_target(config, invoices_with_state(N, every=50))

    assert result.returncode == 0, result.stderr
    assert_exactly_once(server, N)
    assert set(posted_ids(server.requests()).values()) == {1}
    counts = summary(result.stderr)
    assert (counts["acknowledged"], counts["present"]) == (300, 200)
    assert emitted(result.states)[-1] == N


def test_a_timed_out_batch_that_leanpay_stores_later_is_not_doubled(
    server: StandIn, tmp_path: Path
) -> None:
    # Leanpay is slow: it stores the first batch 2.5 s after it arrived, long after the
    # client gave up (1 s). Listing at 1 s does not show it yet. A duplicate-accepting
    # Leanpay must still end with one invoice each.
    server.add_faults({"path": BATCH, "action": "delay_before_store", "seconds": 2.5, "times": 1})
    config = target_config(server, tmp_path, request_timeout=1, max_in_flight=1)

    result = run_target(config, invoices_with_state(150, every=50))
    wait_for(lambda: in_progress(server) == 0, timeout=10)  # the slow request finished

    assert result.returncode == 0, result.stderr
    assert_exactly_once(server, 150)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (or a connection the proxy cut) is not news."""


class Proxy:
    """A reverse proxy on 127.0.0.1 in front of the stand-in; subclasses change what a
    client sees (the stand-in itself is left alone)."""

    def __init__(self, upstream: StandIn) -> None:
        self.upstream = upstream
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                proxy.serve(self, self.rfile.read(length) if length else b"")

            do_GET = do_POST = serve  # noqa: N815

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        """Forward and relay (override to misbehave)."""
        self.reply(handler, *self.forward(handler, body))

    def forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes, str]:
        """Send the request to the stand-in; (status, body, content type) of its answer."""
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in ("host", "connection", "content-length")
        }
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=30)
        try:
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            return (
                answer.status,
                answer.read(),
                answer.getheader("Content-Type", "application/json"),
            )
        finally:
            upstream.close()

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, data: bytes, kind: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def hang_up(handler: BaseHTTPRequestHandler) -> None:
        """Close the connection without a (complete) answer."""
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def is_batch(handler: BaseHTTPRequestHandler) -> bool:
        return handler.command == "POST" and handler.path.endswith(BATCH)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/public"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class AfterStore(Proxy):
    """Spoils the answer to the first batch POST *after* the stand-in stored it.

    `spoil="504"`: Leanpay stored the batch, its load balancer gave up waiting and said
    504. `spoil="truncate"`: the 201's headers arrive, the connection dies mid-body.
    """

    def __init__(self, upstream: StandIn, spoil: str) -> None:
        super().__init__(upstream)
        self.spoil = spoil
        self.spoiled = False

    def serve(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        status, data, kind = self.forward(handler, body)
        with self._lock:
            spoil = self.is_batch(handler) and not self.spoiled
            self.spoiled = self.spoiled or spoil
        if not spoil:
            self.reply(handler, status, data, kind)
        elif self.spoil == "504":
            self.reply(handler, 504, b"<html>504 Gateway Time-out</html>", "text/html")
        else:
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            self.hang_up(handler)


class NewestFirst(Proxy):
    """A Leanpay whose `GET /invoices` lists the newest invoices first (the order is not
    documented), with two batch POSTs stored but unanswered, the second one 0.5 s later.

    Once the first batch is stored and its connection dropped, each list page takes
    0.1 s, so the target's re-listing is still going when the second batch is stored.
    """

    PAGE = 25

    def __init__(self, upstream: StandIn) -> None:
        super().__init__(upstream)
        self.batches = 0
        self.slow = threading.Event()

    def serve(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.command == "GET":
            if self.slow.is_set():
                time.sleep(0.1)
            page = int(handler.path.partition("page=")[2] or 1)
            rows = self.upstream.store("invoices")[::-1]
            listing = {
                "data": rows[(page - 1) * self.PAGE : page * self.PAGE],
                "count": len(rows[(page - 1) * self.PAGE : page * self.PAGE]),
                "total": len(rows),
                "page": page,
                "pageCount": math.ceil(len(rows) / self.PAGE),
            }
            self.reply(handler, 200, json.dumps(listing).encode(), "application/json")
            return
        with self._lock:
            self.batches += 1
            number = self.batches
        if number == 2:
            time.sleep(0.5)
        status, data, kind = self.forward(handler, body)
        if number > 2:
            self.reply(handler, status, data, kind)
            return
        self.slow.set()
        self.hang_up(handler)


def test_a_gateway_5xx_after_leanpay_stored_the_batch_is_not_doubled(
    server: StandIn, tmp_path: Path
) -> None:
    # a 502/504 from a load balancer says nothing about whether the backend stored the
    # batch: it is as ambiguous as a dropped connection
    with AfterStore(server, "504") as gateway:
        config = target_config(server, tmp_path, api_url=gateway.url, max_in_flight=1)
        result = run_target(config, invoices_with_state(150, every=50))

    statuses = [p["status"] for p in batch_posts(server)]
    assert statuses[0] == 201  # stored; the target saw 504
    assert result.returncode == 0, result.stderr
    assert_exactly_once(server, 150)
    assert emitted(result.states)[-1] == 150


def test_an_answer_cut_in_the_middle_of_its_body_is_ambiguous_not_a_crash(
    server: StandIn, tmp_path: Path
) -> None:
    # the headers of the 201 arrived, then the connection died: the batch is stored, the
    # target cannot know it. Same case as a dropped connection: check, do not re-send.
    with AfterStore(server, "truncate") as proxy:
        config = target_config(server, tmp_path, api_url=proxy.url, max_in_flight=1)
        result = run_target(config, invoices_with_state(150, every=50))

    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert_exactly_once(server, 150)
    assert emitted(result.states)[-1] == 150


def test_two_ambiguous_batches_with_a_newest_first_listing_are_not_doubled(
    server: StandIn, tmp_path: Path
) -> None:
    # Batch A is stored, its connection dropped: the target re-lists (slowly, page by
    # page, newest first). Meanwhile batch B is stored (at the head of the list, on a page
    # already read) and its connection dropped too. B must not trust a listing that
    # started before B's own answer was lost.
    server.seed_invoices(500)  # 20 pages: the re-listing takes 2 s, B is stored after 0.5 s
    with NewestFirst(server) as proxy:
        config = target_config(server, tmp_path, api_url=proxy.url, max_in_flight=2)
        result = run_target(config, invoices_with_state(200, every=50))

    assert result.returncode == 0, result.stderr
    mine = Counter(k for k in stored(server).elements() if k and k.startswith("INV-"))
    doubled = sorted(k for k, v in mine.items() if v > 1)
    assert not doubled, f"{len(doubled)} invoices stored twice, e.g. {doubled[:3]}"
    assert sorted(mine) == ids(200)
    assert emitted(result.states)[-1] == 200


# -- 3. the same input twice -------------------------------------------------------------


@both_stores
def test_the_same_1000_invoices_loaded_twice_are_stored_once(
    server: StandIn, tmp_path: Path, store_setting: str
) -> None:
    config = target_config(server, tmp_path, store=store_setting)
    messages = invoices_with_state(1000, every=50)

    first = run_target(config, messages)
    after_first = len(server.requests())
    second = run_target(config, messages)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert_exactly_once(server, 1000)
    second_requests = server.requests()[after_first:]
    assert [r for r in second_requests if r["method"] == "POST"] == []
    # the tenant index of the first run: page 1 (the order: oldest first) and the last page
    last = math.ceil(1000 / server.state.settings.page_size)
    assert [int(g["query"]["page"]) for g in gets(second_requests)] == [1, last]
    counts = summary(second.stderr)
    assert (counts["read"], counts["acknowledged"], counts["present"]) == (1000, 0, 1000)
    assert counts["requests"] == 0
    # nothing to send, yet the tap's STATE is passed on: its bookmark moves
    assert emitted(second.states)[-1] == 1000


# -- 4. the same externalId twice within one run -----------------------------------------


def test_a_re_emitted_invoice_in_the_same_run_is_stored_once(
    server: StandIn, tmp_path: Path
) -> None:
    # the tap re-emits INV-00005 while the first copy is still buffered, and INV-00007
    # once more after the first request was sent (other contents: test_e2e_repeats.py)
    messages: list[dict[str, Any]] = [schema()]
    for i in range(150):
        messages.append(invoice(i))
        if i == 50:
            messages.append(invoice(5))
        if i == 149:
            messages.append(invoice(7))
        if (i + 1) % 50 == 0:
            messages.append(state(i + 1))
    messages.append(state(152))
    config = target_config(server, tmp_path, max_in_flight=1)

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert_exactly_once(server, 150)
    assert set(posted_ids(server.requests()).values()) == {1}
    by_id = {item["externalId"]: item for item in server.store("invoices")}
    # the re-emissions are counted as already present
    assert by_id["INV-00005"]["amount"] == 1005
    assert by_id["INV-00007"]["amount"] == 1007
    counts = summary(result.stderr)
    assert (counts["read"], counts["acknowledged"], counts["present"]) == (152, 150, 2)
    assert emitted(result.states)[-1] == 152


def test_the_same_externalid_from_two_streams_is_stored_once(
    server: StandIn, tmp_path: Path
) -> None:
    # two streams both load invoices; they share one view of what Leanpay holds
    messages: list[dict[str, Any]] = [schema(), schema("erp-b")]
    for i in range(200):
        messages += [invoice(i), invoice(i, stream="erp-b")]
    messages.append(state(200))
    config = target_config(server, tmp_path, max_in_flight=4)

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert_exactly_once(server, 200)
    a, b = summary(result.stderr), summary(result.stderr, "erp-b")
    assert a["acknowledged"] + b["acknowledged"] == 200
    assert a["present"] + b["present"] == 200


def test_the_twin_of_a_refused_invoice_is_dead_lettered_too(
    server: StandIn, tmp_path: Path
) -> None:
    # Leanpay refuses INV-00003 (for a reason the target cannot check); the tap sends it
    # three times: a twin waiting in the same request, and one after the refusal
    server.add_faults(
        {"path": BATCH, "action": "reject_items", "match": {"externalId": ["INV-00003"]}}
    )
    dead_letters = tmp_path / "rejected.jsonl"
    config = target_config(
        server, tmp_path, batch_size_rows=10, max_in_flight=1, dead_letter_path=str(dead_letters)
    )
    messages: list[dict[str, Any]] = [schema()]
    for i in range(30):
        messages.append(invoice(i))
        if i in (6, 25):
            messages.append(invoice(3))
    messages.append(state(32))

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    held = stored(server)
    assert "INV-00003" not in held
    assert sorted(k for k in held if k is not None) == [x for x in ids(30) if x != "INV-00003"]
    lines = [json.loads(line) for line in dead_letters.read_text().splitlines()]
    assert [line["record"]["externalId"] for line in lines] == ["INV-00003"] * 3
    assert [line["record_id"] for line in lines] == [
        f"externalId 'INV-00003' (input line {n})" for n in (5, 9, 29)
    ]
    assert "which Leanpay refused" in lines[1]["reasons"][0]["reason"]
    counts = summary(result.stderr)
    assert (counts["acknowledged"], counts["rejected"], counts["present"]) == (29, 3, 0)
    assert emitted(result.states) == [32]


# -- 5. records without externalId -------------------------------------------------------


def test_records_without_externalid_are_loaded_but_not_protected(
    server: StandIn, tmp_path: Path
) -> None:
    messages: list[dict[str, Any]] = [schema(key_properties=())]
    messages += [invoice(i, externalId=None) for i in range(20)]
    messages += [invoice(i) for i in range(20, 30)]
    messages.append(state(30))
    config = target_config(server, tmp_path)

    first = run_target(config, messages)
    assert first.returncode == 0, first.stderr
    assert stored(server) == Counter({None: 20, **dict.fromkeys(ids(30, 20), 1)})

    # documented limit: a replay cannot recognise them, so they are stored again
    second = run_target(config, messages)
    assert second.returncode == 0, second.stderr
    assert stored(server) == Counter({None: 40, **dict.fromkeys(ids(30, 20), 1)})
    counts = summary(second.stderr)
    assert (counts["acknowledged"], counts["present"]) == (20, 10)


def test_require_external_id_rejects_records_without_one(server: StandIn, tmp_path: Path) -> None:
    dead_letters = tmp_path / "rejected.jsonl"
    config = target_config(
        server, tmp_path, require_external_id=True, dead_letter_path=str(dead_letters)
    )
    messages: list[dict[str, Any]] = [schema(key_properties=())]
    messages += [invoice(i, externalId=None if i % 10 == 0 else f"INV-{i:05d}") for i in range(30)]
    messages.append(state(30))

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert sorted(k for k in stored(server) if k is not None) == [
        f"INV-{i:05d}" for i in range(30) if i % 10
    ]
    assert None not in stored(server)
    assert all(item["externalId"] for item in server.posted_items())
    lines = [json.loads(line) for line in dead_letters.read_text().splitlines()]
    assert [line["record"]["reference"] for line in lines] == ["F-00000", "F-00010", "F-00020"]
    assert all("require_external_id" in line["reasons"][0]["reason"] for line in lines)
    assert emitted(result.states) == [30]


def test_require_external_id_without_dead_letter_file_stops_before_sending_it(
    server: StandIn, tmp_path: Path
) -> None:
    config = target_config(server, tmp_path, require_external_id=True)
    messages = [schema(key_properties=()), invoice(0), invoice(1, externalId=None), state(2)]

    result = run_target(config, messages)

    assert result.returncode == 1
    assert "require_external_id" in result.stderr
    assert None not in stored(server)
    assert result.states == []


# -- 6. replay_safety: false -------------------------------------------------------------


@every_mode
def test_without_replay_safety_no_list_request_and_a_repeated_run_is_unprotected(
    server: StandIn, tmp_path: Path
) -> None:
    config = target_config(server, tmp_path, replay_safety=False, max_in_flight=1)
    messages = invoices_with_state(150, every=50)
    first = run_target(config, messages)
    assert first.returncode == 0, first.stderr

    again = run_target(config, messages)  # the store's receipts: what this target created

    assert again.returncode == 0, again.stderr
    assert "150 already present" in again.stderr
    assert_exactly_once(server, 150)
    other_store = target_config(
        server, tmp_path, replay_safety=False, max_in_flight=1, store=str(tmp_path / "other")
    )

    second = run_target(other_store, messages)

    assert gets(server.requests()) == []
    mode = server.state.settings.duplicates
    if mode == "accept":
        # the documented cost of turning it off: every invoice is now in Leanpay twice
        assert second.returncode == 0, second.stderr
        assert stored(server) == Counter(dict.fromkeys(ids(150), 2))
    elif mode == "refuse":
        # Leanpay's 409 stops the run: nothing doubled, the records are reported refused
        assert second.returncode == 1
        assert "HTTP 409" in second.stderr
        assert_exactly_once(server, 150)
    else:
        assert second.returncode == 0, second.stderr
        assert_exactly_once(server, 150)


@pytest.mark.parametrize("resource", ["invoices", "credit_notes"])
def test_without_replay_safety_twins_within_one_input_are_still_sent_once(
    server: StandIn, tmp_path: Path, resource: str
) -> None:
    # replay safety off skips reading the tenant; it never made repeats within one input
    # safe to send twice (152 stored for 149 distinct before), for any resource
    config = target_config(
        server, tmp_path, replay_safety=False, stream_resources={STREAM: resource}
    )
    messages: list[dict[str, Any]] = [schema()]
    for i in range(149):
        messages.append(invoice(i))
        if i in (10, 60, 140):
            messages.append(invoice(i - 5))
    messages.append(state(152))

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    held = Counter(item["externalId"] for item in server.store(resource))
    assert held == Counter(dict.fromkeys(ids(149), 1))
    counts = summary(result.stderr)
    assert (counts["read"], counts["acknowledged"], counts["present"]) == (152, 149, 3)
    assert gets(server.requests()) == []


def test_without_replay_safety_an_ambiguous_batch_is_sent_again_with_a_warning(
    server: StandIn, tmp_path: Path
) -> None:
    server.add_faults({"path": BATCH, "action": "drop_after_store", "times": 1})
    config = target_config(server, tmp_path, replay_safety=False, max_in_flight=1)

    result = run_target(config, invoices_with_state(100, every=50))

    assert result.returncode == 0, result.stderr
    assert gets(server.requests()) == []
    # documented: with nothing to check, the batch is sent again and stored twice
    assert stored(server) == Counter(dict.fromkeys(ids(100), 2))
    assert "may be stored twice" in result.stderr


# -- 7. what replay safety reads -------------------------------------------------------


def test_replay_safety_reads_every_page_of_a_big_tenant_once(tmp_path: Path) -> None:
    # what the listing costs in time is measured by `make bench`, not here
    existing, new = 10_000, 100
    with StandIn(api_key=API_KEY) as leanpay:
        leanpay.seed_invoices(existing)
        config = target_config(leanpay, tmp_path)

        result = run_target(config, invoices_with_state(new, every=50))

        assert result.returncode == 0, result.stderr
        journal = leanpay.requests()
        assert len(leanpay.store("invoices")) == existing + new
        assert len([r for r in journal if r["method"] == "POST"]) == 1
        pages = math.ceil(existing / leanpay.state.settings.page_size)
        listed = sorted(int(g["query"]["page"]) for g in gets(journal))
        assert listed == list(range(1, pages + 1))  # every page once, none past pageCount


class PagesWaitForPosts:
    """Makes the stand-in list invoices newest first (the API notes: "no sort order
    documented ... in any order"; newest first is the usual default of a SaaS list).

    To make the interleaving deterministic, a re-listing's pages after the first are
    answered only once `grow_by` more invoices were stored after its first page was
    read (at most `patience` seconds): it does not cause the target to POST, it only
    lets POSTs the target makes meanwhile land first.
    """

    def __init__(self, leanpay: StandIn, grow_by: int, patience: float = 10) -> None:
        self.store = store = leanpay.state.store["invoices"]
        self.original = store.page
        self.grow_by, self.patience = grow_by, patience
        self.listings = 0
        self.size_at_first_page = 0
        self.relisting = threading.Event()
        store.page = self.page  # type: ignore[method-assign]

    def page(self, start: int, stop: int, order: Any) -> tuple[list[Any], int]:
        store = self.store
        if start == 0:
            self.listings += 1
            self.size_at_first_page = len(store)
            if self.listings >= 2:
                self.relisting.set()
        elif self.listings >= 2:
            deadline = time.monotonic() + self.patience
            while len(store) < self.size_at_first_page + self.grow_by:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        return self.original(start, stop, "newest")


def test_a_re_listing_newest_first_while_other_posts_land_finds_the_unanswered_batch(
    tmp_path: Path,
) -> None:
    """The re-listing after an unanswered POST must not read pages while the run's other
    POSTs land: with a list that is not in creation order, new invoices shift the pages
    under it, the unanswered batch (stored, now beyond the pageCount the first page
    declared) goes unseen and is sent again: stored twice (where Leanpay refuses a
    duplicate instead, the run stopped telling the user to "fix the record" of an invoice
    Leanpay holds)."""
    with StandIn(api_key=API_KEY, page_size=5) as leanpay:
        # patience: a page waits (at most) for POSTs to land; the target sends none while
        # it re-lists, so every page is answered after 0.3 s, within request_timeout
        listing = PagesWaitForPosts(leanpay, grow_by=25, patience=0.3)
        leanpay.add_faults({"action": "drop_after_store", "path": "/invoices/batch"})
        config = target_config(
            leanpay, tmp_path, batch_size_rows=5, max_in_flight=4, max_list_in_flight=1,
            max_retry_wait=1, request_timeout=1,
        )  # fmt: skip
        run = Running(config)
        run.feed(singer_input([schema(), *(invoice(i) for i in range(30)), state(30)]))
        run.wait_for_stderr("then checking which items Leanpay holds")
        assert listing.relisting.wait(20), "no re-listing"
        run.feed(singer_input([*(invoice(i) for i in range(30, 130)), state(130)]))
        run.close_input()
        code = run.process.wait(60)
        counts = Counter(o["externalId"] for o in leanpay.store())
    doubled = sorted(k for k, v in counts.items() if v > 1)
    assert doubled == [], f"stored twice: {doubled}"
    assert code == 0, "".join(run.stderr)[-1500:]
    assert len(counts) == 130
