"""LeanpayClient against the stand-in: classification, retries, Retry-After, ambiguity."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import API_KEY, payload

from leanpay_standin import StandIn
from target_leanpay.leanpay import throttle
from target_leanpay.leanpay.client import LeanpayClient, parse_retry_after
from target_leanpay.leanpay.errors import (
    Ambiguous,
    ApiError,
    AuthError,
    ItemsRefused,
    RetriesExhausted,
    Stopped,
)
from target_leanpay.records.resources import INVOICES

BATCH = "/invoices/batch"


@pytest.fixture
def leanpay() -> Iterator[StandIn]:
    with StandIn(api_key=API_KEY) as server:
        yield server


def post(client: LeanpayClient, items: list[dict[str, Any]]) -> list[str | None] | None:
    """POST a batch of invoices; the externalIds of what the answer lists."""
    created = client.post_batch(INVOICES, items)
    return None if created is None else [c.externalId for c in created]


def client_for(leanpay: StandIn, *, key: str = API_KEY, **overrides: float) -> LeanpayClient:
    settings: dict[str, float] = {"timeout": 5, "max_retries": 3, "max_retry_wait": 2}
    settings.update(overrides)
    return LeanpayClient(
        api_url=leanpay.url,
        api_key=key,
        timeout=settings["timeout"],
        max_retries=int(settings["max_retries"]),
        max_retry_wait=settings["max_retry_wait"],
        max_in_flight=2,
        max_list_in_flight=2,
        stopping=threading.Event(),
        backoff_base=0.01,
    )


def test_post_sends_the_raw_key_and_lists_what_was_created(leanpay: StandIn) -> None:
    created = client_for(leanpay).post_batch(INVOICES, [payload(1), payload(2)])
    assert created is not None
    assert [c.externalId for c in created] == ["INV-00001", "INV-00002"]
    assert [c.id for c in created] == [i["id"] for i in leanpay.store("invoices")]
    (request,) = leanpay.requests()
    assert request["headers"]["Authorization"] == API_KEY
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == {"invoices": [payload(1), payload(2)]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("-1", None),
        ("\u00b2", None),
        ("\u0663", None),  # digits, but not ASCII ones
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    now = time.time()
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30, abs=1)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_429_waits_retry_after_capped_by_max_retry_wait(leanpay: StandIn) -> None:
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": 429, "headers": {"Retry-After": "3600"}}
    )
    post(client_for(leanpay, max_retry_wait=0.5), [payload(1)])
    refused, retry = leanpay.requests()
    assert [refused["status"], retry["status"]] == [429, 201]
    # waited the cap (0.5 s), not the hour asked: that would take far longer than 60 s
    assert refused["answered"] + 0.49 <= retry["time"] < refused["answered"] + 60


def test_429s_that_slow_the_client_down_cost_no_retry(leanpay: StandIn) -> None:
    """Halving 2 -> 1 in flight, then spacing requests out: each 429 changed the pace,
    so none of them uses up the one retry allowed."""
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": 429, "headers": {"Retry-After": "0"}},
        {"path": BATCH, "action": "status", "status": 429, "headers": {"Retry-After": "0"}},
        {"path": BATCH, "action": "status", "status": 429, "headers": {"Retry-After": "0"}},
        {"path": BATCH, "action": "status", "status": 429, "headers": {"Retry-After": "0"}},
    )
    assert post(client_for(leanpay, max_retries=1), [payload(1)]) == ["INV-00001"]
    assert [r["status"] for r in leanpay.requests()] == [429, 429, 429, 429, 201]


def test_429s_at_the_slowest_pace_use_up_the_retries(
    leanpay: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "LONGEST_SPACING", 0.05)
    leanpay.add_faults(
        {
            "path": BATCH,
            "action": "status",
            "status": 429,
            "headers": {"Retry-After": "0"},
            "times": 100,
        }
    )
    with pytest.raises(RetriesExhausted) as failure:
        post(client_for(leanpay, max_retries=1), [payload(1)])
    sent = len(leanpay.requests())
    assert sent < 20  # halving, a few doublings up to 0.05 s, then two counted 429s
    assert f"gave up after {sent} attempts" in str(failure.value)


def test_retries_are_bounded_by_the_budget(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": "/invoices", "action": "status", "status": 503, "times": 100})
    with pytest.raises(RetriesExhausted) as failure:
        client_for(leanpay, max_retries=2).get_page("/invoices", 1)
    assert failure.value.status == 503
    assert "gave up after 3 attempts" in str(failure.value)
    assert len(leanpay.requests()) == 3


def test_zero_retries_means_one_attempt(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": "/invoices", "action": "status", "status": 503, "times": 100})
    with pytest.raises(RetriesExhausted):
        client_for(leanpay, max_retries=0).get_page("/invoices", 1)
    assert len(leanpay.requests()) == 1


def test_401_is_not_retried_and_names_the_setting(leanpay: StandIn) -> None:
    with pytest.raises(AuthError) as failure:
        post(client_for(leanpay, key="not-the-key"), [payload(1)])
    assert failure.value.status == 401
    assert "api_key" in str(failure.value)
    assert "not-the-key" not in str(failure.value)
    assert len(leanpay.requests()) == 1


@pytest.mark.parametrize("status", [400, 409, 422])
def test_item_refusals_are_not_retried(leanpay: StandIn, status: int) -> None:
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": status, "body": {"message": ["x"]}}
    )
    with pytest.raises(ItemsRefused) as failure:
        post(client_for(leanpay), [payload(1)])
    assert failure.value.status == status
    assert len(leanpay.requests()) == 1


def test_other_4xx_fail_without_retry(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": BATCH, "action": "status", "status": 404, "raw_body": "nope"})
    with pytest.raises(ApiError) as failure:
        post(client_for(leanpay), [payload(1)])
    assert not isinstance(failure.value, ItemsRefused | RetriesExhausted)
    assert "HTTP 404: nope" in str(failure.value)


def test_dropped_connection_after_sending_is_ambiguous_not_retried(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": BATCH, "action": "drop_after_store"})
    with pytest.raises(Ambiguous):
        post(client_for(leanpay), [payload(1)])
    assert len(leanpay.store("invoices")) == 1
    assert len(leanpay.requests()) == 1


def test_read_timeout_is_ambiguous(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": BATCH, "action": "delay_after_store", "seconds": 2})
    with pytest.raises(Ambiguous):
        post(client_for(leanpay, timeout=0.5), [payload(1)])


def test_connection_refused_is_retried_then_reported() -> None:
    client = LeanpayClient(
        api_url="http://127.0.0.1:9/v1/public",
        api_key=API_KEY,
        timeout=2,
        max_retries=1,
        max_retry_wait=0.1,
        max_in_flight=1,
        max_list_in_flight=1,
        stopping=threading.Event(),
        backoff_base=0.01,
    )
    with pytest.raises(RetriesExhausted) as failure:
        post(client, [payload(1)])
    assert "could not connect" in str(failure.value) or "Connection refused" in str(failure.value)


def test_a_post_to_a_host_dns_cannot_resolve_was_never_sent_so_it_is_retried() -> None:
    """Nothing left the machine: not an ambiguous request (which would need a listing)."""
    retries: list[str] = []
    client = LeanpayClient(
        api_url="https://leanpay.invalid/v1/public",  # never resolves (RFC 6761)
        api_key=API_KEY,
        timeout=2,
        max_retries=1,
        max_retry_wait=0.1,
        max_in_flight=1,
        max_list_in_flight=1,
        stopping=threading.Event(),
        backoff_base=0.01,
        unowned_retry=retries.append,
    )
    with pytest.raises(RetriesExhausted) as failure:
        post(client, [payload(1)])
    assert "the host name 'leanpay.invalid' could not be resolved" in str(failure.value)
    assert len(retries) == 1  # no stream's on_retry was given: told to unowned_retry


def test_a_stopping_run_makes_no_request(leanpay: StandIn) -> None:
    client = client_for(leanpay)
    client.stopping.set()
    with pytest.raises(Stopped):
        post(client, [payload(1)])
    assert leanpay.requests() == []


def test_stopping_gives_up_instead_of_retrying(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": BATCH, "action": "status", "status": 429, "times": 100})
    client = client_for(leanpay, max_retries=50)
    with pytest.raises(Stopped):
        client.post_batch(INVOICES, [payload(1)], on_retry=lambda _: client.stopping.set())
    assert len(leanpay.requests()) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_posts_5xx_is_ambiguous_not_retried_blindly(leanpay: StandIn, status: int) -> None:
    # a gateway may answer 502/503/504 after Leanpay stored the batch: the caller must check
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": status, "headers": {"Retry-After": "2"}}
    )
    with pytest.raises(Ambiguous) as failure:
        post(client_for(leanpay), [payload(1)])
    assert failure.value.status == status
    assert failure.value.retry_after == 2
    assert len(leanpay.requests()) == 1


def test_a_gets_5xx_is_retried(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": "/invoices", "method": "GET", "action": "status", "status": 500})
    page = client_for(leanpay).get_page("/invoices", 1)
    assert page["data"] == []
    assert [r["status"] for r in leanpay.requests()] == [500, 200]


def test_a_2xx_without_a_data_list_counts_as_unknown(leanpay: StandIn) -> None:
    leanpay.add_faults({"path": BATCH, "action": "status", "status": 201, "raw_body": "ok"})
    assert post(client_for(leanpay), [payload(1)]) is None


def test_proxies_come_from_the_environment_once(
    leanpay: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "")
    client = LeanpayClient(
        api_url="https://api.leanpay.fr/v1/public",
        api_key=API_KEY,
        timeout=1,
        max_retries=0,
        max_retry_wait=0.1,
        max_in_flight=1,
        max_list_in_flight=1,
        stopping=threading.Event(),
    )
    assert client.session.proxies.get("https") == "http://127.0.0.1:3128"
    assert client.session.trust_env is False


@pytest.mark.parametrize("status", [301, 302, 303, 307])
def test_redirects_are_not_followed(leanpay: StandIn, status: int) -> None:
    # requests would turn a redirected POST into a GET whose 200 proves nothing
    leanpay.add_faults(
        {"path": BATCH, "action": "status", "status": status, "headers": {"Location": "/x"}}
    )
    with pytest.raises(ApiError) as failure:
        post(client_for(leanpay), [payload(1)])
    assert "redirect" in str(failure.value) and "api_url" in str(failure.value)
    assert len(leanpay.requests()) == 1
