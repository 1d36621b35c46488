"""ReplayGuard: twins, the first listing in the background, shared re-listings, stops."""

from __future__ import annotations

import gc
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_for

from target_leanpay.leanpay.errors import AuthError, Stopped
from target_leanpay.listings.listing import Listing
from target_leanpay.listings.replay import MAX_QUERY_IDS, KnownIds, ReplayGuard, ReplayGuards
from target_leanpay.records.resources import CREDIT_NOTES, INVOICES
from target_leanpay.store.store import SEVERAL, Row


class Tenant:
    """A list endpoint over a list of externalIds; counts the listings it served."""

    def __init__(self, *ids: str) -> None:
        self.ids = list(ids)
        self.listings = 0
        self.failure: Exception | None = None
        self.on_list: list[Any] = []

    def read_page(self, path: str, page: int) -> dict[str, Any]:
        if self.failure is not None:
            raise self.failure
        self.listings += 1
        for probe in self.on_list:
            probe()
        return {"data": [{"externalId": x} for x in self.ids], "pageCount": 1}


@pytest.fixture
def stopping() -> threading.Event:
    return threading.Event()


@pytest.fixture
def tenant() -> Tenant:
    return Tenant("A", "B")


@pytest.fixture
def guard(tenant: Tenant, stopping: threading.Event) -> Iterator[ReplayGuard[str]]:
    listing = Listing("invoices", "/invoices", tenant.read_page, concurrency=2, stopping=stopping)
    made: ReplayGuard[str] = ReplayGuard(INVOICES, listing, stopping=stopping)
    yield made
    made.close()


def test_ids_added_in_one_call_beyond_one_statement_are_all_remembered() -> None:
    known = KnownIds()
    ids = [f"id-{n}" for n in range(MAX_QUERY_IDS * 2 + 7)]
    known.add([Row(f"uuid-{x}", x, None) for x in ids] + [Row(None, x, None) for x in ids[:10]])
    known.add([])
    assert set(known.holdings(ids)) == set(ids)
    assert set(known.holdings(["id-x", ids[-1]])) == {ids[-1]}
    assert known.holdings([ids[3]])[ids[3]][0] == "uuid-id-3"  # an unknown id does not erase it
    assert known.holdings(["id-x"]) == {}
    known.add([Row("uuid-s", "S", None)], sent={"S": b"sent"})
    assert known.sent(["S", *ids]) == {"S": b"sent"}  # only what this run created
    known.forget(["S", *ids[1:]])
    assert known.holdings(["S", *ids]).keys() == {ids[0]}
    known.close()


def test_an_external_id_two_leanpay_objects_carry_resolves_to_several() -> None:
    known = KnownIds()
    known.add([Row("uuid-a", "INV-1", None), Row(None, "INV-2", None)])
    known.add(
        [Row("uuid-b", "INV-1", None), Row("uuid-c", "INV-2", None), Row("uuid-a", "INV-1", None)]
    )
    assert known.holdings(["INV-1"])["INV-1"][0] == SEVERAL
    assert known.holdings(["INV-2"])["INV-2"][0] == "uuid-c"
    known.close()


def test_the_first_listing_runs_in_the_background_and_held_waits_for_it(
    guard: ReplayGuard[str], tenant: Tenant
) -> None:
    release = threading.Event()
    tenant.on_list.append(lambda: release.wait(10))
    guard.start()  # returns at once: the listing is held by the tenant
    assert guard.twins.claim("A", "record 1", alike) == "send"  # reading goes on meanwhile
    release.set()
    assert guard.held(["A", "C"]) == {"A"}
    assert tenant.listings == 1


def test_a_failed_first_listing_is_raised_to_every_sender(
    guard: ReplayGuard[str], tenant: Tenant
) -> None:
    tenant.failure = AuthError("GET /invoices?page=1: HTTP 403", status=403)
    guard.start()
    for _ in range(2):
        with pytest.raises(AuthError, match="while listing invoices for replay safety"):
            guard.held(["A"])


def test_a_stop_while_waiting_for_the_first_listing_gives_up(
    guard: ReplayGuard[str], tenant: Tenant, stopping: threading.Event
) -> None:
    release = threading.Event()
    tenant.on_list.append(lambda: release.wait(10))
    guard.start()
    stopping.set()
    with pytest.raises(Stopped):
        guard.held(["A"])
    release.set()


def test_twins_wait_for_the_first_and_share_its_fate(guard: ReplayGuard[str]) -> None:
    assert guard.twins.claim("X", "first", alike) == "send"
    assert guard.twins.claim("X", "second", alike) == "parked"
    assert guard.twins.claim("X", "third", alike) == "parked"
    assert guard.acknowledged([("X", "uuid-x")]) == ["second", "third"]
    assert guard.twins.claim("Y", "first", alike) == "send"
    assert guard.twins.claim("Y", "second", alike) == "parked"
    assert guard.twins.refused("Y") == ["second"]


def test_without_a_listing_twins_are_held_back_and_acknowledged_ids_count_as_held(
    stopping: threading.Event,
) -> None:
    guard: ReplayGuard[str] = ReplayGuard(CREDIT_NOTES, None, stopping=stopping)
    guard.start()
    assert not guard.checks_leanpay
    assert guard.twins.claim("CN-1", "first", alike) == "send"
    assert guard.twins.claim("CN-1", "again", alike) == "parked"
    assert guard.held(["CN-1"]) == set()
    assert guard.acknowledged([("CN-1", "uuid-1")]) == ["again"]
    assert guard.held(["CN-1", "CN-2"]) == {"CN-1"}
    guard.close()


def test_a_listing_that_started_before_the_request_ended_is_not_trusted(
    guard: ReplayGuard[str], tenant: Tenant
) -> None:
    guard.confirm_since(float("-inf"))
    ended = time.monotonic()
    tenant.ids.append("C")  # stored by the uncertain request
    guard.confirm_since(ended)
    assert tenant.listings == 2
    assert guard.held(["C"]) == {"C"}
    guard.confirm_since(ended)  # that listing started after `ended`: reused
    assert tenant.listings == 2


def test_uncertain_requests_due_together_share_one_listing(
    guard: ReplayGuard[str], tenant: Tenant
) -> None:
    guard.confirm_since(float("-inf"))
    due = time.monotonic() + 0.3  # e.g. two dropped requests, each waiting for Leanpay
    first = threading.Thread(target=guard.confirm_since, args=(due,))
    second = threading.Thread(target=guard.confirm_since, args=(due + 0.05,))
    first.start()
    wait_for(lambda: len(guard._wanted) == 1)  # the first leads and waits for its moment
    second.start()
    first.join(5)
    second.join(5)
    assert tenant.listings == 2  # the first listing, and one re-listing for both


def test_a_re_listing_waits_for_the_requests_on_the_wire(
    guard: ReplayGuard[str], tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    guard.confirm_since(float("-inf"))
    answered = threading.Event()
    seen_when_listing: list[bool] = []
    tenant.on_list.append(lambda: seen_when_listing.append(answered.is_set()))
    caplog.set_level(logging.DEBUG, logger="target-leanpay.replay")
    with guard.posting():  # another batch is on the wire
        checker = threading.Thread(target=guard.confirm_since, args=(time.monotonic(),))
        checker.start()
        wait_for(lambda: "once the 1 request on the wire is answered" in caplog.text)
        answered.set()
    checker.join(5)
    assert seen_when_listing == [True]


def test_an_id_store_left_open_is_closed_quietly_when_collected() -> None:
    """A target driven in-process whose `listen` raised never closes its run: the
    store must not leave SQLite to warn about an unclosed database (Python 3.13+)."""
    known = KnownIds()
    known.add([Row(None, "INV-1", None)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del known
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_no_post_starts_between_a_re_listing_seeing_the_wire_and_closing_the_gate(
    tenant: Tenant, stopping: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    """The re-listing closes the gate before it waits for the POSTs on the wire: a POST
    that arrives meanwhile waits at the gate (seen in the guard's own pause), and the
    listing is read with nothing on the wire."""
    paused: list[str] = []

    def pause(condition: threading.Condition, seconds: float) -> object:
        paused.append(threading.current_thread().name)
        return condition.wait(seconds)

    listing = Listing("invoices", "/invoices", tenant.read_page, concurrency=1, stopping=stopping)
    guard: ReplayGuard[str] = ReplayGuard(INVOICES, listing, stopping=stopping, pause=pause)
    guard.confirm_since(float("-inf"))
    on_wire_when_listing: list[int] = []
    tenant.on_list.append(lambda: on_wire_when_listing.append(len(guard._on_wire)))
    caplog.set_level(logging.DEBUG, logger="target-leanpay.replay")
    late_post_started = threading.Event()

    def late_post() -> None:
        with guard.posting():
            late_post_started.set()

    with guard.posting():  # a batch on the wire when the re-listing is due
        checker = threading.Thread(target=guard.confirm_since, args=(time.monotonic(),))
        checker.start()
        wait_for(lambda: "once the 1 request on the wire is answered" in caplog.text)
        poster = threading.Thread(target=late_post, name="late-post")
        poster.start()
        wait_for(lambda: "late-post" in paused)  # held at the gate, not on the wire
        assert not late_post_started.is_set()
    checker.join(5)
    poster.join(5)
    assert on_wire_when_listing == [0]
    assert late_post_started.is_set()
    guard.close()


def alike(_first: object, _later: object) -> bool:
    """The twins of these tests say the same (the sink compares payloads)."""
    return True


class NoReceipts:
    """An empty receipts store (`Promises`, as far as `ReplayGuards` asks)."""

    def earlier(self, resource: str, tenant: str | None = None) -> Iterator[Any]:
        return iter(())

    def reread(self) -> None:
        pass


def test_a_dry_run_loads_a_resource_leanpay_cannot_list_without_reading_page_one(
    stopping: threading.Event,
) -> None:
    # a dry run reads nothing: no page 1 names the tenant, and no lock is taken
    guards = ReplayGuards(
        None, enabled=True, concurrency=1, stopping=stopping, receipts=NoReceipts()
    )
    try:
        guard = guards.for_resource(CREDIT_NOTES)
        assert not guard.checks_leanpay
        assert guards.tenant() is None
    finally:
        guards.close()
