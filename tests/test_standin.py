"""The Leanpay stand-in behaves as the end-to-end tests, demo and benchmark rely on."""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import wait_for

import leanpay_standin
from leanpay_standin import StandIn
from leanpay_standin.api import BATCHES, LISTS, MAX_BATCH_ITEMS, Batch, ValueType
from leanpay_standin.faults import parse_rule
from leanpay_standin.ratelimit import TokenBucket

KEY = "test-key"
CLIENT = str(uuid.uuid4())
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(api_key=KEY) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["Authorization"] = KEY
        yield http


def invoice(number: int = 1, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "clientId": CLIENT,
        "reference": f"INV-{number:04d}",
        "amount": 12_000 + number,
        "netAmount": 10_000,
        "issueDate": "2024-03-01",
        "dueDate": "2024-04-01",
        "externalId": f"ext-{number}",
    }
    item.update(changes)
    return {k: v for k, v in item.items() if v is not _ABSENT}


_ABSENT: Any = object()


def post(
    http: requests.Session, standin: StandIn, items: list[Any], resource: str = "invoices"
) -> requests.Response:
    target = BATCHES[resource]
    return http.post(standin.url + target.path, json={target.body_key: items}, timeout=10)


def messages(response: requests.Response) -> list[str]:
    body = response.json()
    assert body["statusCode"] == response.status_code
    assert isinstance(body["message"], list)
    return list(body["message"])


VALID: dict[ValueType, Any] = {
    "uuid": CLIENT,
    "string": "EUR",
    "integer": 1,
    "date": "2024-03-01",
    "boolean": True,
}


def valid_item(batch: Batch) -> dict[str, Any]:
    """An item filling every property of the table with a valid value of its type."""
    return {name: VALID[prop.type] for name, prop in batch.items.items()}


# -- server, auth, shape -------------------------------------------------------------


def test_binds_loopback_with_a_discoverable_port(standin: StandIn) -> None:
    assert standin.port > 0
    assert standin.url == f"http://127.0.0.1:{standin.port}/v1/public"
    assert standin._server is not None
    assert standin._server.socket.getsockname()[0] == "127.0.0.1"


@pytest.mark.parametrize("header", [None, "wrong", f"Bearer {KEY}", f"{KEY} "])
def test_refuses_anything_but_the_raw_key(standin: StandIn, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = requests.post(
        standin.url + "/invoices/batch", json={"invoices": [invoice()]}, headers=headers, timeout=5
    )
    assert response.status_code == 401
    assert response.json() == {"statusCode": 401, "message": "Unauthorized"}
    assert standin.store("invoices") == []


def test_created_invoice_looks_like_leanpay(standin: StandIn, session: requests.Session) -> None:
    response = post(session, standin, [invoice(1), invoice(2, netAmount=_ABSENT)])
    assert response.status_code == 201
    first, second = response.json()["data"]
    assert UUID_RE.fullmatch(first["id"]) and UUID_RE.fullmatch(first["tenantId"])
    assert first["id"] != second["id"] and first["tenantId"] == second["tenantId"]
    assert first["externalId"] == "ext-1" and first["reference"] == "INV-0001"
    assert first["amount"] == first["remainingAmount"] == 12_001
    assert (first["paidAmount"], first["offsetAmount"], first["status"]) == (0, 0, "due")
    assert first["dueDates"] == first["payments"] == first["creditNoteLinks"] == []
    assert first["issueDate"] == "2024-03-01T00:00:00.000Z"
    assert first["dueDate"] == "2024-04-01T00:00:00.000Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["createdAt"])
    assert first["updatedAt"] == first["createdAt"]
    assert second["netAmount"] is None
    assert standin.store("invoices") == [first, second]
    journal = standin.requests()
    assert journal[0]["headers"]["Authorization"] == KEY
    assert (journal[0]["method"], journal[0]["path"], journal[0]["status"]) == (
        "POST",
        "/invoices/batch",
        201,
    )
    assert journal[0]["items"] == 2
    assert journal[0]["body"] == {"invoices": [invoice(1), invoice(2, netAmount=_ABSENT)]}


@pytest.mark.parametrize("resource", list(BATCHES.values()), ids=list(BATCHES))
def test_every_resource_of_the_table_is_served(
    standin: StandIn, session: requests.Session, resource: Batch
) -> None:
    item = valid_item(resource)
    response = post(session, standin, [item], resource.name)
    assert response.status_code == 201, response.text
    (created,) = response.json()["data"]
    assert created["externalId"] == item["externalId"]
    assert len(standin.store(resource.name)) == 1
    assert standin.posted_items(resource.name) == [item]


# -- the API table: from the notes, independent of the target ------------------------

REQ, OPT = True, False
Notes = tuple[str, str, dict[str, tuple[ValueType, bool, int | None, bool]]]
NOTES: dict[str, Notes] = {
    # resource: (path, body key, {property: (type, required, max length, null accepted)}),
    # restated from the API notes by hand, so the table in leanpay_standin.api is checked
    # against a second reading and not against itself
    "invoices": (
        "/invoices/batch",
        "invoices",
        {
            "clientId": ("uuid", REQ, None, False),
            "reference": ("string", REQ, 80, False),
            "amount": ("integer", REQ, None, False),
            "netAmount": ("integer", OPT, None, True),
            "issueDate": ("date", REQ, None, False),
            "dueDate": ("date", REQ, None, False),
            "externalId": ("string", OPT, 80, True),
            "sentDate": ("date", OPT, None, True),
        },
    ),
    "credit_notes": (
        "/credit-notes/batch",
        "creditNotes",
        {
            "clientId": ("uuid", REQ, None, False),
            "reference": ("string", REQ, 80, False),
            "amount": ("integer", REQ, None, False),
            "netAmount": ("integer", OPT, None, True),
            "issueDate": ("date", REQ, None, False),
            "dueDate": ("date", OPT, None, True),
            "externalId": ("string", OPT, 80, True),
        },
    ),
    "paybacks": (
        "/paybacks/batch",
        "paybacks",
        {
            "creditNoteId": ("uuid", REQ, None, False),
            "amount": ("integer", REQ, None, False),
            "date": ("date", REQ, None, False),
            "externalId": ("string", OPT, 80, True),
        },
    ),
    "links": (
        "/links/batch",
        "links",
        {
            "invoiceId": ("uuid", REQ, None, False),
            "creditNoteId": ("uuid", REQ, None, False),
            "amount": ("integer", REQ, None, False),
            "date": ("date", REQ, None, False),
            "externalId": ("string", OPT, 80, True),
        },
    ),
    "misc_operations": (
        "/misc-operations/batch",
        "miscOperations",
        {
            "clientId": ("uuid", REQ, None, False),
            "externalId": ("string", REQ, 80, False),
            "amount": ("integer", REQ, None, False),
            "defaultCurrencyAmount": ("integer", REQ, None, False),
            "date": ("date", REQ, None, False),
            "currency": ("string", REQ, 3, False),
            "description": ("string", OPT, None, True),
        },
    ),
    "addresses": (
        "/addresses/batch",
        "addresses",
        {
            "clientId": ("uuid", REQ, None, False),
            "company": ("string", REQ, 80, False),
            "line1": ("string", REQ, 80, False),
            "city": ("string", REQ, 80, False),
            "postalCode": ("string", REQ, 80, False),
            "country": ("string", REQ, 80, False),
            "name": ("string", OPT, 80, True),
            "line2": ("string", OPT, 80, True),
            "line3": ("string", OPT, 80, True),
            "externalId": ("string", OPT, 80, True),
            "main": ("boolean", OPT, None, True),
        },
    ),
}
WRONG: dict[ValueType, tuple[Any, str]] = {
    "uuid": ("not-a-uuid", "must be a UUID"),
    "string": (42, "must be a string"),
    "integer": (-1, "must not be less than 0"),
    "date": ("2024-02-30", "must be a valid ISO 8601 date string"),
    "boolean": ("yes", "must be a boolean value"),
}


def test_the_api_table_says_what_the_notes_say() -> None:
    assert set(BATCHES) == set(NOTES)
    for name, (path, body_key, props) in NOTES.items():
        batch = BATCHES[name]
        assert (batch.name, batch.path, batch.body_key) == (name, path, body_key)
        assert {
            prop_name: (p.type, p.required, p.max_length, p.nullable and not p.required)
            for prop_name, p in batch.items.items()
        } == props, name
    assert dict(LISTS) == {"/invoices": "invoices"}
    assert MAX_BATCH_ITEMS == 100


@pytest.mark.parametrize("resource", list(NOTES))
def test_each_property_is_checked_as_the_notes_say(
    standin: StandIn, session: requests.Session, resource: str
) -> None:
    path, key, props = NOTES[resource]

    def answer(item: dict[str, Any]) -> tuple[int, list[str] | None]:
        response = session.post(standin.url + path, json={key: [item]}, timeout=10)
        return response.status_code, None if response.status_code == 201 else messages(response)

    def refused(name: str, tail: str) -> tuple[int, list[str]]:
        return 400, [f"{key}.0.{name} {tail}"]

    accepted = (201, None)
    full = {name: VALID[type_] for name, (type_, *_) in props.items()}
    assert answer(full) == accepted
    for name, (type_, required, max_length, null_ok) in props.items():
        without = {k: v for k, v in full.items() if k != name}
        missing = refused(name, "should not be null or undefined")
        assert answer(without) == (missing if required else accepted), name
        assert answer({**full, name: None}) == (accepted if null_ok else missing), name
        wrong, tail = WRONG[type_]
        assert answer({**full, name: wrong}) == refused(name, tail), name
        if max_length is not None:
            assert answer({**full, name: "x" * max_length}) == accepted, name
            too_long = f"must be shorter than or equal to {max_length} characters"
            assert answer({**full, name: "x" * (max_length + 1)}) == refused(name, too_long)
        elif type_ == "string":  # no documented maximum
            assert answer({**full, name: "x" * 10_000}) == accepted, name
    assert answer({**full, "currencyCode": "EUR"}) == refused("currencyCode", "should not exist")


@pytest.mark.parametrize("resource", list(NOTES))
def test_every_batch_takes_1_to_100_items(
    standin: StandIn, session: requests.Session, resource: str
) -> None:
    key = NOTES[resource][1]
    item = valid_item(BATCHES[resource])
    too_many = post(session, standin, [item] * 101, resource)
    assert messages(too_many) == [f"{key} must contain no more than 100 elements"]
    assert post(session, standin, [item] * 100, resource).status_code == 201
    assert len(standin.store(resource)) == 100


@pytest.mark.parametrize("path", ["/credit-notes", "/paybacks", "/links", "/misc-operations"])
def test_only_invoices_can_be_listed(
    standin: StandIn, session: requests.Session, path: str
) -> None:
    response = session.get(standin.url + path, timeout=5)
    assert response.status_code == 404
    assert response.json()["message"] == f"Cannot GET /v1/public{path}"


def test_no_module_of_the_stand_in_imports_the_target() -> None:
    package = Path(leanpay_standin.__file__).parent
    sources = sorted(package.glob("*.py"))
    assert len(sources) >= 10
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "target_leanpay" for n in names), source
    every_module = (
        "import importlib, pkgutil, sys, leanpay_standin\n"
        "for found in pkgutil.iter_modules(leanpay_standin.__path__):\n"
        "    importlib.import_module('leanpay_standin.' + found.name)\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('leanpay_standin.'))\n"
        "print(len(loaded), sorted(n for n in sys.modules if n.startswith('target_leanpay')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", every_module],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    count, target_modules = result.stdout.split(" ", 1)
    assert int(count) == len(sources) - 1  # every module but __init__
    assert target_modules.strip() == "[]"


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"foo": 1}, "invoices.0.foo should not exist"),
        ({"clientId": _ABSENT}, "invoices.0.clientId should not be null or undefined"),
        ({"reference": None}, "invoices.0.reference should not be null or undefined"),
        ({"clientId": "not-a-uuid"}, "invoices.0.clientId must be a UUID"),
        ({"clientId": CLIENT.replace("-", "")}, "invoices.0.clientId must be a UUID"),
        ({"clientId": 42}, "invoices.0.clientId must be a UUID"),
        ({"reference": 42}, "invoices.0.reference must be a string"),
        (
            {"reference": "x" * 81},
            "invoices.0.reference must be shorter than or equal to 80 characters",
        ),
        (
            {"externalId": "x" * 81},
            "invoices.0.externalId must be shorter than or equal to 80 characters",
        ),
        ({"amount": -1}, "invoices.0.amount must not be less than 0"),
        ({"amount": 1.5}, "invoices.0.amount must be an integer number"),
        ({"amount": 100.0}, "invoices.0.amount must be an integer number"),
        ({"amount": "100"}, "invoices.0.amount must be an integer number"),
        ({"amount": True}, "invoices.0.amount must be an integer number"),
        ({"netAmount": -5}, "invoices.0.netAmount must not be less than 0"),
        ({"issueDate": "2024-02-30"}, "invoices.0.issueDate must be a valid ISO 8601 date string"),
        ({"dueDate": "2023-02-29"}, "invoices.0.dueDate must be a valid ISO 8601 date string"),
        ({"dueDate": "2024/04/01"}, "invoices.0.dueDate must be a valid ISO 8601 date string"),
        ({"dueDate": "20240401"}, "invoices.0.dueDate must be a valid ISO 8601 date string"),
        (
            {"dueDate": "2024-04-01T00:00:00Z"},
            "invoices.0.dueDate must be a valid ISO 8601 date string",
        ),
        ({"sentDate": 20240401}, "invoices.0.sentDate must be a valid ISO 8601 date string"),
    ],
)
def test_invalid_invoice_fields(
    standin: StandIn, session: requests.Session, changes: dict[str, Any], expected: str
) -> None:
    response = post(session, standin, [invoice(1, **changes)])
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"
    assert messages(response) == [expected]


def test_valid_edge_values_pass(standin: StandIn, session: requests.Session) -> None:
    edge = invoice(
        1,
        amount=0,
        netAmount=None,
        externalId=None,
        sentDate="2024-02-29",
        clientId=CLIENT.upper(),
        reference="x" * 80,
    )
    assert post(session, standin, [edge]).status_code == 201


@pytest.mark.parametrize(
    ("resource", "changes", "expected"),
    [
        ("misc_operations", {"externalId": None}, "externalId should not be null or undefined"),
        ("misc_operations", {"externalId": _ABSENT}, "externalId should not be null or undefined"),
        (
            "misc_operations",
            {"currency": "EURO"},
            "currency must be shorter than or equal to 3 characters",
        ),
        ("misc_operations", {"currency": 978}, "currency must be a string"),
        ("addresses", {"main": "yes"}, "main must be a boolean value"),
        ("addresses", {"main": 1}, "main must be a boolean value"),
        ("links", {"invoiceId": None}, "invoiceId should not be null or undefined"),
        ("paybacks", {"date": "2024-13-01"}, "date must be a valid ISO 8601 date string"),
    ],
)
def test_invalid_fields_of_other_resources(
    standin: StandIn,
    session: requests.Session,
    resource: str,
    changes: dict[str, Any],
    expected: str,
) -> None:
    target = BATCHES[resource]
    item = {**valid_item(target), **changes}
    item = {k: v for k, v in item.items() if v is not _ABSENT}
    response = post(session, standin, [item], resource)
    assert response.status_code == 400
    assert messages(response) == [f"{target.body_key}.0.{expected}"]


def test_one_bad_item_refuses_the_whole_batch(standin: StandIn, session: requests.Session) -> None:
    items = [invoice(1), invoice(2), invoice(3, amount=-1, foo="bar"), invoice(4, clientId="x")]
    response = post(session, standin, items)
    assert response.status_code == 400
    assert messages(response) == [
        "invoices.2.foo should not exist",
        "invoices.2.amount must not be less than 0",
        "invoices.3.clientId must be a UUID",
    ]
    assert standin.store("invoices") == []
    assert standin.posted_items() == []
    assert standin.requests()[0]["status"] == 400


def test_batch_size_is_1_to_100(standin: StandIn, session: requests.Session) -> None:
    too_many = post(session, standin, [invoice(n) for n in range(101)])
    assert too_many.status_code == 400
    assert messages(too_many) == ["invoices must contain no more than 100 elements"]
    empty = post(session, standin, [])
    assert empty.status_code == 400
    assert messages(empty) == ["invoices must contain at least 1 elements"]
    assert standin.store("invoices") == []
    assert post(session, standin, [invoice(n) for n in range(100)]).status_code == 201
    assert len(standin.store("invoices")) == 100


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([invoice()], ["invoices must be an array"]),
        ({}, ["invoices must be an array"]),
        ({"invoices": {"0": invoice()}}, ["invoices must be an array"]),
        (
            {"invoices": [invoice()], "creditNotes": []},
            ["property creditNotes should not exist"],
        ),
        ({"invoices": [invoice(), "text"]}, ["invoices.1 must be an object"]),
    ],
)
def test_body_shape(
    standin: StandIn, session: requests.Session, body: Any, expected: list[str]
) -> None:
    response = session.post(standin.url + "/invoices/batch", json=body, timeout=5)
    assert response.status_code == 400
    assert messages(response) == expected


def test_unparsable_json_gets_a_string_message(standin: StandIn, session: requests.Session) -> None:
    response = session.post(
        standin.url + "/invoices/batch",
        data=b'{"invoices": [',
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert isinstance(response.json()["message"], str)
    nan = session.post(
        standin.url + "/invoices/batch",
        data=b'{"invoices": [{"amount": NaN}]}',
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert nan.status_code == 400


def test_chunked_request_body(standin: StandIn, session: requests.Session) -> None:
    body = json.dumps({"invoices": [invoice(1), invoice(2)]}).encode()
    chunks = iter([body[:50], body[50:]])  # a generator body makes requests send it chunked
    response = session.post(standin.url + "/invoices/batch", data=chunks, timeout=5)
    assert response.status_code == 201
    assert standin.requests()[0]["headers"]["Transfer-Encoding"] == "chunked"
    assert len(standin.store("invoices")) == 2


def test_unknown_route_is_404(standin: StandIn, session: requests.Session) -> None:
    response = session.post(standin.url + "/clients/batch", json={}, timeout=5)
    assert response.status_code == 404
    assert response.json()["message"] == "Cannot POST /v1/public/clients/batch"
    assert session.get(standin.url + "/invoices/batch", timeout=5).status_code == 404


# -- duplicates ----------------------------------------------------------------------


def test_accept_mode_stores_a_second_object(standin: StandIn, session: requests.Session) -> None:
    assert post(session, standin, [invoice(1)]).status_code == 201
    assert post(session, standin, [invoice(1)]).status_code == 201
    stored = standin.store("invoices")
    assert [s["externalId"] for s in stored] == ["ext-1", "ext-1"]
    assert stored[0]["id"] != stored[1]["id"]


def test_refuse_mode_refuses_the_whole_batch(standin: StandIn, session: requests.Session) -> None:
    standin.configure(duplicates="refuse")
    assert post(session, standin, [invoice(1), invoice(2)]).status_code == 201
    response = post(session, standin, [invoice(3), invoice(4), invoice(2)])
    assert response.status_code == 409
    assert response.json() == {
        "statusCode": 409,
        "message": ["invoices.2.externalId already exists"],
        "error": "Conflict",
    }
    within = post(session, standin, [invoice(5), invoice(6), invoice(5)])
    assert within.status_code == 409
    assert messages(within) == ["invoices.2.externalId already exists"]
    assert [s["externalId"] for s in standin.store("invoices")] == ["ext-1", "ext-2"]
    no_ids = [invoice(7, externalId=None), invoice(8, externalId=_ABSENT)]
    assert post(session, standin, no_ids + no_ids).status_code == 201
    assert len(standin.store("invoices")) == 6


def test_ignore_mode_answers_with_the_existing_object(
    standin: StandIn, session: requests.Session
) -> None:
    standin.configure(duplicates="ignore")
    (original,) = post(session, standin, [invoice(1)]).json()["data"]
    response = post(session, standin, [invoice(2), invoice(1, amount=999), invoice(2)])
    assert response.status_code == 201
    new, existing, repeated = response.json()["data"]
    assert existing == original
    assert repeated == new
    assert [s["externalId"] for s in standin.store("invoices")] == ["ext-1", "ext-2"]


def test_duplicate_mode_is_per_resource(standin: StandIn, session: requests.Session) -> None:
    standin.configure(duplicates="refuse")
    note = {**valid_item(BATCHES["credit_notes"]), "externalId": "ext-1"}
    assert post(session, standin, [invoice(1)]).status_code == 201
    assert post(session, standin, [note], "credit_notes").status_code == 201


def test_duplicate_mode_can_be_switched_over_http(
    standin: StandIn, session: requests.Session
) -> None:
    answer = requests.post(
        standin.root_url + "/_control/config", json={"duplicates": "refuse"}, timeout=5
    )
    assert answer.json()["duplicates"] == "refuse"
    assert post(session, standin, [invoice(1)]).status_code == 201
    assert post(session, standin, [invoice(1)]).status_code == 409
    bad = requests.post(standin.root_url + "/_control/config", json={"duplicates": "x"}, timeout=5)
    assert bad.status_code == 400


def test_unknown_duplicate_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        StandIn(duplicates="maybe")  # type: ignore[arg-type]


@pytest.mark.parametrize("latency_ms", [-1, float("nan"), float("inf"), "10"])
def test_latency_must_be_a_finite_number(latency_ms: Any) -> None:
    with pytest.raises(ValueError, match="latency_ms must be a number >= 0"):
        StandIn(latency_ms=latency_ms)


# -- listing -------------------------------------------------------------------------


def test_invoices_are_listed_by_page_in_creation_order(session: requests.Session) -> None:
    with StandIn(api_key=KEY, page_size=3) as standin:
        for first in (1, 5):
            batch = [invoice(n) for n in range(first, first + 4)]
            assert post(session, standin, batch[: 7 - first + 1]).status_code == 201
        pages = [
            session.get(standin.url + "/invoices", params={"page": n}, timeout=5).json()
            for n in (1, 2, 3, 4)
        ]
        assert [p["count"] for p in pages] == [3, 3, 1, 0]
        assert {(p["total"], p["pageCount"]) for p in pages} == {(7, 3)}
        assert [p["page"] for p in pages] == [1, 2, 3, 4]
        listed = [obj["externalId"] for p in pages for obj in p["data"]]
        assert listed == [f"ext-{n}" for n in range(1, 8)]
        default = session.get(standin.url + "/invoices", timeout=5).json()
        assert default["page"] == 1 and default["data"] == pages[0]["data"]
        assert session.get(standin.url + "/invoices?page=0", timeout=5).status_code == 400
        assert session.get(standin.url + "/invoices?page=x", timeout=5).status_code == 400
        assert requests.get(standin.url + "/invoices", timeout=5).status_code == 401


def test_page_size_is_25_by_default(standin: StandIn, session: requests.Session) -> None:
    assert standin.state.settings.page_size == 25
    assert requests.get(standin.root_url + "/_control/config", timeout=5).json()["page_size"] == 25
    standin.seed_invoices(60)
    pages = [
        session.get(standin.url + "/invoices", params={"page": n}, timeout=5).json()
        for n in (1, 2, 3)
    ]
    assert [(p["count"], p["total"], p["pageCount"]) for p in pages] == [
        (25, 60, 3),
        (25, 60, 3),
        (10, 60, 3),
    ]
    listed = [obj["externalId"] for p in pages for obj in p["data"]]
    assert listed == [f"seed-{n:06d}" for n in range(1, 61)]


def test_seeded_tenant(standin: StandIn, session: requests.Session) -> None:
    ids = standin.seed_invoices(10_000, client_id=CLIENT)
    assert ids[0] == "seed-000001" and ids[-1] == "seed-010000"
    page = session.get(standin.url + "/invoices?page=400", timeout=5).json()
    assert (page["total"], page["pageCount"], page["count"]) == (10_000, 400, 25)
    assert page["data"][-1]["externalId"] == "seed-010000"
    assert page["data"][-1]["clientId"] == CLIENT
    standin.configure(duplicates="refuse")
    assert post(session, standin, [invoice(1, externalId="seed-000042")]).status_code == 409
    assert standin.seed_invoices(1) == ["seed-010001"]


# -- list order, createdAt / updatedAt ---------------------------------------------------

TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def listing(http: requests.Session, standin: StandIn) -> list[dict[str, Any]]:
    """Every page of `GET /invoices`, checked for consistent totals, concatenated."""
    first = http.get(standin.url + "/invoices", params={"page": 1}, timeout=5).json()
    pages = [first] + [
        http.get(standin.url + "/invoices", params={"page": n}, timeout=5).json()
        for n in range(2, first["pageCount"] + 2)  # and one past the end: empty
    ]
    assert {(p["total"], p["pageCount"]) for p in pages} == {(first["total"], first["pageCount"])}
    assert [p["page"] for p in pages] == list(range(1, len(pages) + 1))
    assert [p["count"] for p in pages] == [len(p["data"]) for p in pages]
    assert pages[-1]["count"] == 0
    listed = [obj for p in pages for obj in p["data"]]
    assert len(listed) == first["total"]
    return listed


def order_tenant(http: requests.Session, standin: StandIn) -> list[dict[str, Any]]:
    """7 seeded invoices, then a batch of 4: the store, in creation order."""
    standin.seed_invoices(7)
    assert post(http, standin, [invoice(n) for n in range(1, 5)]).status_code == 201
    return standin.store()


@pytest.mark.parametrize("how", ["constructor", "configure", "http"])
def test_invoices_are_listed_in_the_configured_order(session: requests.Session, how: str) -> None:
    with StandIn(
        api_key=KEY, page_size=3, order="newest" if how == "constructor" else "oldest"
    ) as standin:
        created = order_tenant(session, standin)
        oldest = [obj["externalId"] for obj in created]
        assert oldest == [f"seed-{n:06d}" for n in range(1, 8)] + [f"ext-{n}" for n in range(1, 5)]
        if how == "configure":
            standin.configure(order="newest")
        elif how == "http":
            changed = requests.post(
                standin.root_url + "/_control/config", json={"order": "newest"}, timeout=5
            )
            assert changed.json()["order"] == "newest"
        assert standin.state.settings.order == "newest"
        assert [obj["externalId"] for obj in listing(session, standin)] == oldest[::-1]
        standin.configure(order="oldest")
        assert listing(session, standin) == created


def test_the_id_order_has_no_relation_to_time(standin: StandIn, session: requests.Session) -> None:
    standin.configure(order="id", page_size=3)
    created = order_tenant(session, standin)
    by_id = sorted(created, key=lambda obj: obj["id"])
    assert by_id not in (created, created[::-1])  # 2 chances in 11!: scrambled ids
    assert listing(session, standin) == by_id
    # the index follows later creations and deletions
    assert post(session, standin, [invoice(n) for n in range(5, 40)]).status_code == 201
    standin.delete(external_ids=["ext-7", "seed-000003"])
    expected = sorted(standin.store(), key=lambda obj: obj["id"])
    assert len(expected) == 44
    assert listing(session, standin) == expected
    standin.configure(order="newest")
    assert listing(session, standin) == standin.store()[::-1]


def test_the_id_order_index_is_kept_up_to_date_not_rebuilt(standin: StandIn) -> None:
    # a 200,000-invoice tenant must not be sorted again for every page read
    standin.configure(order="id")
    invoices = standin.state.store["invoices"]
    standin.seed_invoices(100)
    invoices.page(0, 25, "id")
    index = invoices._id_order
    assert index is not None
    standin.seed_invoices(10)
    invoices.page(25, 50, "id")
    assert invoices._id_order is index and len(index) == 110
    assert index == sorted(index)
    invoices.page(0, 25, "oldest")  # no upkeep for an order nobody lists in
    assert invoices._id_order is None


def test_unknown_order_is_refused(standin: StandIn) -> None:
    with pytest.raises(ValueError, match="order must be one of oldest, newest, id"):
        StandIn(order="random")  # type: ignore[arg-type]
    refused = requests.post(standin.root_url + "/_control/config", json={"order": "x"}, timeout=5)
    assert refused.status_code == 400
    assert refused.json() == {"error": "order must be one of oldest, newest, id"}
    assert standin.state.settings.order == "oldest"


def test_created_at_follows_creation_order(standin: StandIn, session: requests.Session) -> None:
    standin.seed_invoices(1500)  # more than a second's worth of milliseconds
    assert post(session, standin, [invoice(n) for n in range(1, 101)]).status_code == 201
    standin.seed_invoices(3)  # seeding again comes after what was posted
    response = post(session, standin, [invoice(n) for n in range(101, 111)])
    stored = standin.store()
    assert [obj["externalId"] for obj in stored[1500:1603]] == [
        *(f"ext-{n}" for n in range(1, 101)),
        *(f"seed-{n:06d}" for n in range(1501, 1504)),
    ]
    stamps = [obj["createdAt"] for obj in stored]
    assert all(TIMESTAMP_RE.fullmatch(stamp) for stamp in stamps)
    assert all(a < b for a, b in itertools.pairwise(stamps))  # strictly, even within a batch
    assert [obj["updatedAt"] for obj in stored] == stamps
    assert [obj["createdAt"] for obj in response.json()["data"]] == stamps[-10:]


def test_seeded_invoices_were_created_before_now() -> None:
    from leanpay_standin.clock import Clock  # noqa: PLC0415 - the unit under test

    wall = [1_700_000_000.0]
    clock = Clock(lambda: wall[0])
    assert clock.stamps(3, ending_now=True) == [
        "2023-11-14T22:13:19.998Z",
        "2023-11-14T22:13:19.999Z",
        "2023-11-14T22:13:20.000Z",
    ]
    assert clock.stamps(2) == ["2023-11-14T22:13:20.001Z", "2023-11-14T22:13:20.002Z"]
    wall[0] -= 3600  # the wall clock jumps back: the stand-in's does not
    assert clock.stamp() == "2023-11-14T22:13:20.003Z"
    assert clock.stamps(2, ending_now=True) == [
        "2023-11-14T22:13:20.004Z",
        "2023-11-14T22:13:20.005Z",
    ]
    wall[0] += 7200.25
    assert clock.stamp() == "2023-11-14T23:13:20.250Z"


def test_a_clock_by_the_second_gives_a_batch_and_its_second_one_stamp() -> None:
    from leanpay_standin.clock import Clock, Resolution  # noqa: PLC0415 - the unit under test

    wall = [1_700_000_000.25]
    resolution: list[Resolution] = ["second"]
    clock = Clock(lambda: wall[0], lambda: resolution[0])
    assert clock.stamps(3) == ["2023-11-14T22:13:20.000Z"] * 3
    wall[0] += 0.7  # the same wall-clock second: the same stamp
    assert clock.stamps(2, ending_now=True) == ["2023-11-14T22:13:20.000Z"] * 2
    assert clock.stamp() == "2023-11-14T22:13:20.000Z"
    wall[0] += 0.1
    assert clock.stamps(1) == ["2023-11-14T22:13:21.000Z"]
    resolution[0] = "millisecond"
    assert clock.stamps(2) == ["2023-11-14T22:13:21.050Z", "2023-11-14T22:13:21.051Z"]
    resolution[0] = "second"  # never before what the millisecond clock gave
    assert clock.stamps(1) == ["2023-11-14T22:13:22.000Z"]
    wall[0] -= 3600  # the wall clock jumps back: the stand-in's does not
    assert clock.stamps(1) == ["2023-11-14T22:13:22.000Z"]
    assert clock.batch_stamps(3) == [
        "2023-11-14T22:13:23.000Z",
        "2023-11-14T22:13:24.000Z",
        "2023-11-14T22:13:25.000Z",
    ]  # each after everything before, even the wall clock
    wall[0] += 7200
    assert clock.batch_stamps(2) == ["2023-11-14T23:13:20.000Z", "2023-11-14T23:13:21.000Z"]
    assert clock.batch_stamps(0) == []
    resolution[0] = "millisecond"
    assert clock.batch_stamps(2) == ["2023-11-14T23:13:21.049Z", "2023-11-14T23:13:21.050Z"]


@pytest.fixture
def wall(standin: StandIn) -> list[float]:
    """`standin`'s createdAt clock reads this wall clock, which the test moves by hand."""
    now = [1_700_000_000.25]
    standin.state.store.clock.now = lambda: now[0]
    return now


def test_batches_of_one_second_share_a_created_at_and_list_by_id(
    standin: StandIn, session: requests.Session, wall: list[float]
) -> None:
    standin.configure(created_at="second", page_size=7)
    first = post(session, standin, [invoice(n) for n in range(1, 11)]).json()["data"]
    wall[0] += 0.5
    second = post(session, standin, [invoice(n) for n in range(11, 21)]).json()["data"]
    wall[0] += 0.5
    third = post(session, standin, [invoice(n) for n in range(21, 24)]).json()["data"]
    one_second = [obj["createdAt"] for obj in first + second]
    assert one_second == ["2023-11-14T22:13:20.000Z"] * 20
    assert [obj["createdAt"] for obj in third] == ["2023-11-14T22:13:21.000Z"] * 3
    tied = first + second
    by_id = sorted(tied, key=lambda obj: obj["id"])
    assert by_id != tied  # 20 random ids in creation order: one chance in 20!
    listed = listing(session, standin)
    assert listed == [*by_id, *sorted(third, key=lambda obj: obj["id"])]
    standin.configure(order="newest")
    assert listing(session, standin) == listed[::-1]
    assert standin.store() == listed  # the control view: the list order, oldest first
    standin.configure(created_at="millisecond")
    (later,) = post(session, standin, [invoice(30)]).json()["data"]
    assert later["createdAt"] == "2023-11-14T22:13:21.250Z"


@pytest.mark.parametrize("resolution", ["millisecond", "second"])
@pytest.mark.parametrize("how", ["python", "http"])
def test_a_tenant_filled_by_a_target_has_one_created_at_per_batch(
    standin: StandIn, wall: list[float], resolution: str, how: str
) -> None:
    standin.configure(created_at=resolution)
    if how == "python":
        assert standin.seed_invoices(250, batch=100)[-1] == "seed-000250"
    else:
        seed = {"count": 250, "batch": 100}
        answer = requests.post(standin.root_url + "/_control/seed", json=seed, timeout=5)
        assert answer.json() == {"seeded": 250}
    stored = standin.store()
    batches = [stored[:100], stored[100:200], stored[200:]]
    expected = {
        "millisecond": ["2023-11-14T22:13:20.248Z", "2023-11-14T22:13:20.249Z",
                        "2023-11-14T22:13:20.250Z"],
        "second": ["2023-11-14T22:13:18.000Z", "2023-11-14T22:13:19.000Z",
                   "2023-11-14T22:13:20.000Z"],
    }[resolution]  # fmt: skip
    for batch, stamp, numbers in zip(batches, expected, (1, 101, 201), strict=True):
        assert {obj["createdAt"] for obj in batch} == {stamp}
        assert {obj["externalId"] for obj in batch} == {
            f"seed-{n:06d}" for n in range(numbers, numbers + len(batch))
        }
        assert [obj["id"] for obj in batch] == sorted(obj["id"] for obj in batch)


def test_seeding_in_batches_of_nothing_is_refused(standin: StandIn) -> None:
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        standin.seed_invoices(10, batch=0)
    answer = requests.post(
        standin.root_url + "/_control/seed", json={"count": 1, "batch": "100"}, timeout=5
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "batch must be a positive integer"},
    )
    assert standin.store() == []


def test_unknown_created_at_resolution_is_refused(standin: StandIn) -> None:
    with pytest.raises(ValueError, match="created_at must be one of millisecond, second"):
        standin.configure(created_at="minute")


def test_ids_are_unique_uuid4s_in_no_particular_order() -> None:
    from leanpay_standin.store import IdFactory  # noqa: PLC0415 - the unit under test

    new_id = IdFactory()
    ids = new_id.many(200_000) + [new_id() for _ in range(10)]
    assert len(set(ids)) == len(ids)
    assert all(UUID_RE.fullmatch(i) for i in ids[:1000] + ids[-1000:])
    rising = sum(a < b for a, b in itertools.pairwise(ids))
    assert 0.45 < rising / len(ids) < 0.55  # neither creation order nor its reverse


def test_cli_lists_in_the_order_asked(session: requests.Session) -> None:
    process, url = start_cli("--order", "newest", "--seed-invoices", "30")
    try:
        control = url.replace("/v1/public", "/_control")
        assert requests.get(control + "/config", timeout=5).json()["order"] == "newest"
        first = session.get(url + "/invoices", timeout=5).json()
        assert [obj["externalId"] for obj in first["data"][:2]] == ["seed-000030", "seed-000029"]
        assert first["data"][0]["createdAt"] > first["data"][1]["createdAt"]
    finally:
        stop_cli(process)


# -- dates shown as date-times ------------------------------------------------------------


def test_invoice_and_credit_note_dates_are_echoed_as_date_times(
    standin: StandIn, session: requests.Session
) -> None:
    first = invoice(1, sentDate="2024-02-29")
    second = invoice(2, dueDate="2024-12-31")
    shown = post(session, standin, [first, second]).json()["data"]
    assert [(o["issueDate"], o["dueDate"], o["sentDate"]) for o in shown] == [
        ("2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z", "2024-02-29T00:00:00.000Z"),
        ("2024-03-01T00:00:00.000Z", "2024-12-31T00:00:00.000Z", None),
    ]
    assert listing(session, standin) == shown == standin.store()
    note = {"clientId": CLIENT, "reference": "CN-1", "amount": 500, "issueDate": "2024-03-05"}
    (credit_note,) = post(session, standin, [note], "credit_notes").json()["data"]
    assert (credit_note["issueDate"], credit_note["dueDate"]) == ("2024-03-05T00:00:00.000Z", None)
    dated = post(session, standin, [{**note, "dueDate": "2024-04-05"}], "credit_notes")
    assert dated.json()["data"][0]["dueDate"] == "2024-04-05T00:00:00.000Z"
    assert standin.store("credit_notes")[0] == credit_note
    # what was received stays in the journal as sent
    assert standin.posted_items("credit_notes") == [note, {**note, "dueDate": "2024-04-05"}]


@pytest.mark.parametrize("how", ["configure", "http"])
def test_a_tenant_in_paris_echoes_its_dates_as_midnight_there(
    standin: StandIn, session: requests.Session, how: str
) -> None:
    if how == "configure":
        standin.configure(date_zone="Europe/Paris")
    else:
        url = standin.root_url + "/_control/config"
        assert requests.post(url, json={"date_zone": "Europe/Paris"}, timeout=5).ok
    winter = invoice(1, issueDate="2024-03-05", dueDate="2024-07-05", sentDate="2024-01-01")
    (shown,) = post(session, standin, [winter]).json()["data"]
    assert (shown["issueDate"], shown["dueDate"], shown["sentDate"]) == (
        "2024-03-04T23:00:00.000Z", "2024-07-04T22:00:00.000Z", "2023-12-31T23:00:00.000Z",
    )  # fmt: skip
    assert listing(session, standin) == [shown]
    assert find(session, standin, "invoices", shown["id"]) == (200, shown)
    note = {
        "clientId": CLIENT,
        "reference": "CN-1",
        "amount": 500,
        "issueDate": "2024-10-27",
        "dueDate": "2024-10-28",
    }  # summer time ends on the 27th at 03:00
    (credit_note,) = post(session, standin, [note], "credit_notes").json()["data"]
    assert (credit_note["issueDate"], credit_note["dueDate"]) == (
        "2024-10-26T22:00:00.000Z", "2024-10-27T23:00:00.000Z",
    )  # fmt: skip
    assert find(session, standin, "credit_notes", credit_note["id"])[1] == credit_note
    link = {"invoiceId": shown["id"], "creditNoteId": credit_note["id"], "amount": 1,
            "date": "2024-03-05", "externalId": "L-1"}  # fmt: skip
    assert post(session, standin, [link], "links").json()["data"][0]["date"] == "2024-03-05"
    assert standin.posted_items() == [winter]  # received as sent
    standin.configure(date_zone="America/New_York")  # an echo, not what is stored
    assert listing(session, standin)[0]["issueDate"] == "2024-03-05T05:00:00.000Z"
    standin.configure(date_zone=None)
    assert listing(session, standin)[0]["issueDate"] == "2024-03-05T00:00:00.000Z"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "+01:00", 1, ""])
def test_date_zone_must_be_a_zone_name(standin: StandIn, zone: Any) -> None:
    with pytest.raises(ValueError, match="date_zone must be an IANA time zone"):
        standin.configure(date_zone=zone)
    assert standin.state.settings.date_zone is None


# -- links inside listed invoices, PUT /links/{id} and /paybacks/{id} --------------------


def references(http: requests.Session, standin: StandIn) -> dict[str, dict[str, Any]]:
    """Invoices ext-1 and ext-2, credit note CN-1, links L-1, L-2 (to ext-1) and L-3
    (to ext-2), payback PB-1: every created object by externalId."""
    invoices = post(http, standin, [invoice(1), invoice(2)]).json()["data"]
    note = {"clientId": CLIENT, "reference": "CN-1", "amount": 900, "issueDate": "2024-03-05",
            "externalId": "CN-1"}  # fmt: skip
    (credit_note,) = post(http, standin, [note], "credit_notes").json()["data"]
    links = [
        {"invoiceId": invoices[target]["id"], "creditNoteId": credit_note["id"],
         "amount": 100 * n, "date": f"2024-03-0{n}", "externalId": f"L-{n}"}
        for n, target in ((1, 0), (2, 0), (3, 1))
    ]  # fmt: skip
    payback = {"creditNoteId": credit_note["id"], "amount": 50, "date": "2024-03-12",
               "externalId": "PB-1"}  # fmt: skip
    created = [*invoices, credit_note]
    created += post(http, standin, links, "links").json()["data"]
    created += post(http, standin, [payback], "paybacks").json()["data"]
    return {obj["externalId"]: obj for obj in created}


def link_in_invoice(link: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
    """A link as the reference shows it inside its invoice: no id of its own."""
    return {"date": link["date"], "amount": link["amount"],
            "defaultCurrencyAmount": link["amount"], "externalId": link["externalId"],
            "creditNote": {"id": note["id"], "externalId": note["externalId"]}}  # fmt: skip


def test_listed_invoices_carry_their_credit_note_links(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    first, second = listing(session, standin)
    assert first["creditNoteLinks"] == [
        {"date": "2024-03-01", "amount": 100, "defaultCurrencyAmount": 100, "externalId": "L-1",
         "creditNote": {"id": made["CN-1"]["id"], "externalId": "CN-1"}},
        {"date": "2024-03-02", "amount": 200, "defaultCurrencyAmount": 200, "externalId": "L-2",
         "creditNote": {"id": made["CN-1"]["id"], "externalId": "CN-1"}},
    ]  # fmt: skip
    assert second["creditNoteLinks"] == [link_in_invoice(made["L-3"], made["CN-1"])]
    assert made["L-3"]["invoiceId"] == second["id"]
    assert standin.store() == [first, second]
    standin.delete("links", external_ids=["L-1"])
    assert [x["externalId"] for x in listing(session, standin)[0]["creditNoteLinks"]] == ["L-2"]


def find(http: requests.Session, standin: StandIn, resource: str, object_id: str) -> Any:
    """`GET /<resource>/{id}`: (status, body)."""
    response = http.get(f"{standin.url}{FIND_PATHS[resource]}{object_id}", timeout=5)
    return response.status_code, response.json()


FIND_PATHS = {
    "invoices": "/invoices/",
    "credit_notes": "/credit-notes/",
    "links": "/links/",
    "paybacks": "/paybacks/",
}


def test_each_document_is_found_by_its_leanpay_id(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    first, second = listing(session, standin)
    assert find(session, standin, "invoices", first["id"]) == (200, first)
    assert find(session, standin, "invoices", second["id"]) == (200, second)
    note = made["CN-1"]
    status, found_note = find(session, standin, "credit_notes", note["id"])
    assert status == 200
    assert found_note == {
        **note,
        "paybacks": [{"date": "2024-03-12", "amount": 50, "defaultCurrencyAmount": 50,
                      "externalId": "PB-1"}],
        "invoiceLinks": [
            {"date": f"2024-03-0{n}", "amount": 100 * n, "defaultCurrencyAmount": 100 * n,
             "externalId": f"L-{n}", "invoice": {"id": invoice_id, "externalId": external_id}}
            for n, invoice_id, external_id in (
                (1, first["id"], "ext-1"), (2, first["id"], "ext-1"), (3, second["id"], "ext-2"))
        ],
    }  # fmt: skip
    assert find(session, standin, "links", made["L-2"]["id"]) == (200, made["L-2"])
    assert find(session, standin, "paybacks", made["PB-1"]["id"]) == (200, made["PB-1"])
    finds = [e for e in standin.requests() if e["method"] == "GET" and e["path"] != "/invoices"]
    assert [(e["path"], e["status"], e["items"], e["body"]) for e in finds] == [
        (f"/invoices/{first['id']}", 200, None, None),
        (f"/invoices/{second['id']}", 200, None, None),
        (f"/credit-notes/{note['id']}", 200, None, None),
        (f"/links/{made['L-2']['id']}", 200, None, None),
        (f"/paybacks/{made['PB-1']['id']}", 200, None, None),
    ]
    assert all(e["headers"]["Authorization"] == KEY for e in finds)


@pytest.mark.parametrize(
    ("resource", "noun"),
    [("invoices", "invoice"), ("credit_notes", "creditNote"), ("links", "link"),
     ("paybacks", "payback")],
)  # fmt: skip
def test_finding_an_unknown_or_deleted_id_is_a_nest_404(
    standin: StandIn, session: requests.Session, resource: str, noun: str
) -> None:
    made = references(session, standin)
    unknown = str(uuid.uuid4())
    assert find(session, standin, resource, unknown) == (
        404,
        {"statusCode": 404, "message": f"{noun} {unknown} not found", "error": "Not Found"},
    )
    victim = {"invoices": "ext-1", "credit_notes": "CN-1", "links": "L-1", "paybacks": "PB-1"}
    gone = made[victim[resource]]["id"]
    assert find(session, standin, resource, gone)[0] == 200
    standin.delete(resource, ids=[gone])
    assert find(session, standin, resource, gone)[1]["message"] == f"{noun} {gone} not found"
    response = requests.get(f"{standin.url}{FIND_PATHS[resource]}{unknown}", timeout=5)
    assert response.status_code == 401
    assert [e["status"] for e in standin.requests() if e["method"] == "GET"] == [404, 200, 404, 401]


def test_a_link_shows_the_other_document_even_once_deleted(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    standin.delete("credit_notes", external_ids=["CN-1"])
    first, _ = listing(session, standin)
    assert [x["creditNote"] for x in first["creditNoteLinks"]] == [
        {"id": made["CN-1"]["id"], "externalId": None}
    ] * 2


@pytest.mark.parametrize("how", ["configure", "http"])
def test_omitted_fields_are_missing_from_list_rows_and_finds_only(
    standin: StandIn, session: requests.Session, how: str
) -> None:
    made = references(session, standin)
    omitted = ["creditNoteLinks", "invoiceLinks", "paybacks"]
    if how == "configure":
        standin.configure(omit_fields=omitted)
    else:
        url = standin.root_url + "/_control/config"
        assert requests.post(url, json={"omit_fields": omitted}, timeout=5).status_code == 200
    assert (
        requests.get(standin.root_url + "/_control/config", timeout=5).json()["omit_fields"]
        == omitted
    )
    first, second = listing(session, standin)
    assert "creditNoteLinks" not in first and "creditNoteLinks" not in second
    assert first == {k: v for k, v in made["ext-1"].items() if k != "creditNoteLinks"}
    status, found = find(session, standin, "invoices", first["id"])
    assert status == 200 and found == first
    status, note = find(session, standin, "credit_notes", made["CN-1"]["id"])
    assert status == 200
    assert note == {k: v for k, v in made["CN-1"].items() if k not in omitted}
    answered = post(session, standin, [invoice(3)]).json()["data"][0]
    assert answered["creditNoteLinks"] == []  # a batch answer keeps every field
    assert "creditNoteLinks" in standin.store()[0]  # and so does the control view
    standin.configure(omit_fields=[])
    assert "creditNoteLinks" in listing(session, standin)[0]


@pytest.mark.parametrize("value", ["creditNoteLinks", [1], None])
def test_omit_fields_must_be_a_list_of_names(standin: StandIn, value: Any) -> None:
    with pytest.raises(ValueError, match="omit_fields must be a list of field names"):
        standin.configure(omit_fields=value)
    assert standin.state.settings.omit_fields == []


@pytest.mark.parametrize(
    ("resource", "body", "changed"),
    [
        ("links", {"amount": 150, "date": "2024-04-30"}, {"amount": 150, "date": "2024-04-30"}),
        (
            "paybacks",
            {"amount": 0, "date": "2024-02-29", "externalId": "PB-1b"},
            {"amount": 0, "date": "2024-02-29", "externalId": "PB-1b"},
        ),
        ("paybacks", {"amount": 60, "date": "2024-03-13"}, {"amount": 60, "date": "2024-03-13"}),
        (
            "paybacks",
            {"amount": 60, "date": "2024-03-13", "externalId": None},
            {"amount": 60, "date": "2024-03-13", "externalId": None},
        ),
    ],
)
def test_put_updates_a_link_or_a_payback(
    standin: StandIn,
    session: requests.Session,
    resource: str,
    body: dict[str, Any],
    changed: dict[str, Any],
) -> None:
    made = references(session, standin)
    before = made["L-2" if resource == "links" else "PB-1"]
    path = f"/{resource}/{before['id']}"
    response = session.put(standin.url + path, json=body, timeout=5)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated == {**before, **changed, "updatedAt": updated["updatedAt"]}
    assert updated["createdAt"] == before["createdAt"] < updated["updatedAt"]
    assert TIMESTAMP_RE.fullmatch(updated["updatedAt"])
    stored = standin.store(resource)
    assert updated in stored and before not in stored
    assert len(stored) == (3 if resource == "links" else 1)
    if resource == "links":
        (first, _) = listing(session, standin)
        note = made["CN-1"]
        assert first["creditNoteLinks"] == [
            link_in_invoice(made["L-1"], note),
            link_in_invoice(updated, note),
        ]
    (entry,) = [e for e in standin.requests() if e["method"] == "PUT"]
    assert (entry["method"], entry["path"], entry["body"], entry["status"]) == (
        "PUT", path, body, 200,
    )  # fmt: skip
    assert entry["headers"]["Authorization"] == KEY and entry["items"] is None


def test_a_payback_renamed_by_put_is_found_by_its_new_external_id(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    standin.configure(duplicates="refuse")
    renamed = {"amount": 50, "date": "2024-03-12", "externalId": "PB-2"}
    url = standin.url + f"/paybacks/{made['PB-1']['id']}"
    assert session.put(url, json=renamed, timeout=5).status_code == 200
    again = {"creditNoteId": made["CN-1"]["id"], "amount": 5, "date": "2024-03-12"}
    assert post(session, standin, [{**again, "externalId": "PB-1"}], "paybacks").status_code == 201
    refused = post(session, standin, [{**again, "externalId": "PB-2"}], "paybacks")
    assert messages(refused) == ["paybacks.0.externalId already exists"]


@pytest.mark.parametrize(
    ("resource", "body", "expected"),
    [
        ("links", {"amount": -1, "date": "2024-03-01"}, ["amount must not be less than 0"]),
        ("links", {"amount": "1", "date": "2024-03-01"}, ["amount must be an integer number"]),
        ("links", {"amount": 1.5, "date": "2024-03-01"}, ["amount must be an integer number"]),
        ("links", {"amount": True, "date": "2024-03-01"}, ["amount must be an integer number"]),
        ("links", {"amount": 1, "date": "2024-02-30"},
         ["date must be a valid ISO 8601 date string"]),
        ("links", {"amount": 1, "date": "2024-03-01T00:00:00Z"},
         ["date must be a valid ISO 8601 date string"]),
        ("links", {"amount": 1}, ["date should not be null or undefined"]),
        ("links", {"amount": None, "date": "2024-03-01"},
         ["amount should not be null or undefined"]),
        ("links", {"amount": 1, "date": "2024-03-01", "externalId": "L-9"},
         ["property externalId should not exist"]),
        ("links", {"amount": 1, "date": "2024-03-01", "invoiceId": CLIENT},
         ["property invoiceId should not exist"]),
        ("links", [], ["an object is expected as the request body"]),
        ("paybacks", {"amount": 1, "date": "2024-03-01", "externalId": "x" * 81},
         ["externalId must be shorter than or equal to 80 characters"]),
        ("paybacks", {"amount": 1, "date": "2024-03-01", "externalId": 7},
         ["externalId must be a string"]),
        ("paybacks", {}, ["amount should not be null or undefined",
                          "date should not be null or undefined"]),
    ],
)  # fmt: skip
def test_put_refuses_a_bad_body_naming_the_field(
    standin: StandIn, session: requests.Session, resource: str, body: Any, expected: list[str]
) -> None:
    made = references(session, standin)
    before = standin.store(resource)
    target = made["L-1" if resource == "links" else "PB-1"]
    response = session.put(standin.url + f"/{resource}/{target['id']}", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "message": expected, "error": "Bad Request"}
    assert standin.store(resource) == before
    assert standin.requests()[-1]["body"] == body


def test_put_answers_404_for_an_unknown_id_and_401_without_the_key(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    before = standin.store("links"), standin.store("paybacks")
    unknown = str(uuid.uuid4())
    for resource in ("links", "paybacks"):
        answer = session.put(
            standin.url + f"/{resource}/{unknown}",
            json={"amount": 1, "date": "2024-03-01"},
            timeout=5,
        )
        assert answer.status_code == 404
        noun = resource[:-1]
        assert answer.json() == {
            "statusCode": 404, "message": f"{noun} {unknown} not found", "error": "Not Found",
        }  # fmt: skip
    # an id of another resource is unknown too
    other = session.put(
        standin.url + f"/links/{made['PB-1']['id']}", json={"amount": 1, "date": "2024-03-01"},
        timeout=5,
    )  # fmt: skip
    assert other.status_code == 404
    anonymous = requests.put(
        standin.url + f"/links/{made['L-1']['id']}", json={"amount": 1, "date": "2024-03-01"},
        timeout=5,
    )  # fmt: skip
    assert anonymous.status_code == 401
    assert (standin.store("links"), standin.store("paybacks")) == before
    # only links and paybacks can be updated
    for path in (f"/invoices/{made['ext-1']['id']}", f"/credit-notes/{made['CN-1']['id']}"):
        response = session.put(standin.url + path, json={"amount": 1}, timeout=5)
        assert response.status_code == 404
        assert response.json()["message"] == f"Cannot PUT /v1/public{path}"
    assert [e["status"] for e in standin.requests()[-6:]] == [404, 404, 404, 401, 404, 404]


def test_a_fault_rule_can_lose_the_answer_to_a_put_after_storing(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    standin.add_faults(
        {"action": "drop_after_store", "method": "PUT", "path": "/links/{linkId}", "times": 1}
    )
    changed = {"amount": 333, "date": "2024-05-01"}
    assert post(session, standin, [invoice(9)]).status_code == 201  # not a PUT: untouched
    with pytest.raises(requests.ConnectionError):
        session.put(standin.url + f"/links/{made['L-3']['id']}", json=changed, timeout=5)
    stored = {link["externalId"]: link for link in standin.store("links")}
    assert (stored["L-3"]["amount"], stored["L-3"]["date"]) == (333, "2024-05-01")
    entry = standin.requests()[-1]
    assert (entry["method"], entry["status"], entry["body"]) == ("PUT", None, changed)
    # the rule wore out: the retry is answered, and changes nothing more than its body says
    again = session.put(standin.url + f"/links/{made['L-3']['id']}", json=changed, timeout=5)
    assert again.status_code == 200 and again.json()["amount"] == 333
    assert standin.faults()[0]["used"] == 1


def test_fault_paths_with_a_placeholder_match_one_segment(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    standin.add_faults(
        {"action": "status", "status": 503, "path": "/paybacks/{id}", "times": None},
    )
    link = session.put(
        standin.url + f"/links/{made['L-1']['id']}", json={"amount": 1, "date": "2024-03-01"},
        timeout=5,
    )  # fmt: skip
    assert link.status_code == 200
    payback = session.put(
        standin.url + f"/paybacks/{made['PB-1']['id']}", json={"amount": 1, "date": "2024-03-01"},
        timeout=5,
    )  # fmt: skip
    assert payback.status_code == 503
    assert post(session, standin, [made["PB-1"]], "paybacks").status_code == 503  # /batch too
    assert standin.faults()[0]["used"] == 2
    assert standin.faults()[0]["path"] == "/paybacks/{id}"
    rule = parse_rule({"action": "drop_after_store", "path": "/links/{id}/x"})
    assert rule.applies_to("PUT", "/links/9f1c/x") and rule.applies_to("GET", "/links/batch/x")
    assert not any(
        rule.applies_to("PUT", path) for path in ("/links/a/b/x", "/links//x", "/links/a/x/y")
    )


# -- deletion -------------------------------------------------------------------------------


def control(standin: StandIn, endpoint: str, payload: Any = None) -> Any:
    """POST a control endpoint; its JSON answer (a 200 asserted)."""
    answer = requests.post(f"{standin.root_url}/_control/{endpoint}", json=payload, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_credit_notes_links_and_paybacks_can_be_deleted(
    standin: StandIn, session: requests.Session
) -> None:
    made = references(session, standin)
    note = made["CN-1"]
    assert control(standin, "delete", {"resource": "paybacks", "externalIds": ["PB-1"]}) == {
        "deleted": 1
    }
    assert control(standin, "delete", {"resource": "links", "ids": [made["L-2"]["id"]]}) == {
        "deleted": 1
    }
    status, found = find(session, standin, "credit_notes", note["id"])
    assert (status, found["paybacks"]) == (200, [])
    assert [x["externalId"] for x in found["invoiceLinks"]] == ["L-1", "L-3"]
    first, _ = listing(session, standin)
    assert [x["externalId"] for x in first["creditNoteLinks"]] == ["L-1"]
    assert find(session, standin, "paybacks", made["PB-1"]["id"])[0] == 404
    assert standin.delete("credit_notes", ids=[note["id"]]) == 1
    assert find(session, standin, "credit_notes", note["id"])[0] == 404
    assert [x["externalId"] for x in standin.store("links")] == ["L-1", "L-3"]  # no cascade
    deletions = [
        (e["path"], e["query"], e["body"], e["items"])
        for e in standin.requests()
        if e["method"] == "DELETE"
    ]
    assert deletions == [
        ("/_control/delete", {"resource": "paybacks"},
         {"ids": [made["PB-1"]["id"]], "externalIds": ["PB-1"]}, 1),
        ("/_control/delete", {"resource": "links"},
         {"ids": [made["L-2"]["id"]], "externalIds": ["L-2"]}, 1),
        ("/_control/delete", {"resource": "credit_notes"},
         {"ids": [note["id"]], "externalIds": ["CN-1"]}, 1),
    ]  # fmt: skip


@pytest.mark.parametrize("how", ["python", "http"])
def test_an_emptied_tenant_keeps_its_id_its_clock_and_the_journal(
    standin: StandIn, session: requests.Session, wall: list[float], how: str
) -> None:
    standin.seed_invoices(30)
    made = references(session, standin)
    standin.add_faults({"action": "status", "status": 503, "path": "/nowhere"})
    before = standin.requests()
    if how == "python":
        assert standin.empty_tenant() == 30 + 2 + 1 + 3 + 1
    else:
        assert control(standin, "empty") == {"deleted": 37}
    for resource in BATCHES:
        assert standin.store(resource) == []
    page = session.get(standin.url + "/invoices", timeout=5).json()
    assert (page["total"], page["pageCount"], page["data"]) == (0, 0, [])
    assert find(session, standin, "invoices", made["ext-1"]["id"])[0] == 404
    journal = standin.requests()
    assert journal[: len(before)] == before
    emptied = journal[len(before)]
    assert (emptied["method"], emptied["path"], emptied["items"]) == (
        "DELETE", "/_control/empty", 37,
    )  # fmt: skip
    assert emptied["body"] == {"invoices": 32, "credit_notes": 1, "paybacks": 1, "links": 3,
                               "misc_operations": 0, "addresses": 0}  # fmt: skip
    assert len(standin.faults()) == 1
    wall[0] -= 3600  # the wall clock goes back: createdAt does not
    (again,) = post(session, standin, [invoice(1)]).json()["data"]
    assert again["tenantId"] == made["ext-1"]["tenantId"]
    assert again["createdAt"] > made["PB-1"]["createdAt"]
    assert standin.seed_invoices(1) == ["seed-000031"]  # a new invoice, not an old one


def test_a_reset_keeps_the_tenant_id_and_never_moves_created_at_back(
    standin: StandIn, session: requests.Session, wall: list[float]
) -> None:
    standin.configure(created_at="second")
    (before,) = post(session, standin, [invoice(1)]).json()["data"]
    standin.reset()
    wall[0] -= 60
    (after,) = post(session, standin, [invoice(1)]).json()["data"]
    assert after["tenantId"] == before["tenantId"]
    assert after["createdAt"] == before["createdAt"]  # the same second at most, never before
    assert standin.seed_invoices(1) == ["seed-000001"]  # a reset restarts the numbering


@pytest.mark.parametrize("how", ["python", "http"])
def test_late_invoices_stay_out_of_the_listing_until_revealed(
    standin: StandIn, session: requests.Session, wall: list[float], how: str
) -> None:
    standin.seed_invoices(3)
    wall[0] += 1
    if how == "python":
        late = standin.store_late([invoice(1), invoice(2)])
    else:
        late = control(standin, "late", {"invoices": [invoice(1), invoice(2)]})["data"]
    assert [obj["externalId"] for obj in late] == ["ext-1", "ext-2"]
    assert late[0]["createdAt"] == "2023-11-14T22:13:21.250Z"  # when stored, not revealed
    wall[0] += 1
    visible = post(session, standin, [invoice(3)]).json()["data"]
    listed = listing(session, standin)
    seeds = ["seed-000001", "seed-000002", "seed-000003"]
    assert [obj["externalId"] for obj in listed] == [*seeds, "ext-3"]
    assert find(session, standin, "invoices", late[0]["id"])[0] == 404
    assert [obj["externalId"] for obj in standin.store()] == [*seeds, "ext-3"]
    if how == "python":
        assert standin.reveal_late() == 2
    else:
        assert control(standin, "reveal") == {"revealed": 2}
    listed = listing(session, standin)
    assert [obj["externalId"] for obj in listed][3:] == ["ext-1", "ext-2", "ext-3"]
    assert listed[3:] == [*late, *visible]
    assert find(session, standin, "invoices", late[1]["id"]) == (200, late[1])
    journal = [(e["method"], e["path"], e["items"]) for e in standin.requests()]
    assert [entry for entry in journal if entry[0] == "POST"] == [
        ("POST", "/_control/late", 2),
        ("POST", "/invoices/batch", 1),
        ("POST", "/_control/reveal", 2),
    ]
    (stored,) = [e for e in standin.requests() if e["path"] == "/_control/late"]
    assert stored["body"] == {"ids": [obj["id"] for obj in late], "externalIds": ["ext-1", "ext-2"]}
    assert standin.reveal_late() == 0


def test_late_invoices_are_validated_as_a_batch_and_go_with_the_tenant(
    standin: StandIn, session: requests.Session
) -> None:
    with pytest.raises(ValueError, match=r"invoices\.1\.amount must not be less than 0"):
        standin.store_late([invoice(1), invoice(2, amount=-1)])
    answer = requests.post(standin.root_url + "/_control/late", json=[invoice(1)], timeout=5)
    assert answer.status_code == 400
    standin.store_late([invoice(1)])
    standin.empty_tenant()
    assert standin.reveal_late() == 0
    standin.store_late([invoice(2)])
    standin.reset()
    assert standin.reveal_late() == 0 and standin.store() == []


def test_deleted_invoices_leave_the_listing_and_the_journal_says_when(
    session: requests.Session,
) -> None:
    with StandIn(api_key=KEY, page_size=4, duplicates="refuse") as standin:
        standin.seed_invoices(10)
        created = post(session, standin, [invoice(1), invoice(2)]).json()["data"]
        assert listing(session, standin)[-1] == created[-1]
        first_seed, second_seed = (obj["id"] for obj in standin.store()[:2])
        deleted = requests.post(
            standin.root_url + "/_control/delete",
            json={"resource": "invoices", "externalIds": ["seed-000002", "ext-1"],
                  "ids": [created[1]["id"]]},
            timeout=5,
        )  # fmt: skip
        assert deleted.json() == {"deleted": 3}
        assert standin.delete(ids=[first_seed]) == 1
        with pytest.raises(ValueError, match="no such invoices: externalId 'ext-1'"):
            standin.delete(external_ids=["ext-1"])
        remaining = [f"seed-{n:06d}" for n in range(3, 11)]
        assert [obj["externalId"] for obj in standin.store()] == remaining
        first = session.get(standin.url + "/invoices", timeout=5).json()
        assert (first["total"], first["pageCount"]) == (8, 2)
        assert [obj["externalId"] for obj in listing(session, standin)] == remaining
        # a deleted externalId is free again, even when duplicates are refused
        again = post(session, standin, [invoice(1)])
        assert again.status_code == 201
        assert again.json()["data"][0]["createdAt"] > created[1]["createdAt"]
        journal = standin.requests()
        assert [e["method"] for e in journal] == [
            "POST", *["GET"] * 4, "DELETE", "DELETE", *["GET"] * 4, "POST",
        ]  # fmt: skip
        deletions = [e for e in journal if e["method"] == "DELETE"]
        assert [(e["path"], e["query"], e["status"], e["items"]) for e in deletions] == [
            ("/_control/delete", {"resource": "invoices"}, 200, 3),
            ("/_control/delete", {"resource": "invoices"}, 200, 1),
        ]
        assert [e["body"] for e in deletions] == [
            {"ids": [second_seed, created[0]["id"], created[1]["id"]],
             "externalIds": ["seed-000002", "ext-1", "ext-2"]},
            {"ids": [first_seed], "externalIds": ["seed-000001"]},
        ]  # fmt: skip
        assert journal[4]["time"] <= deletions[0]["time"] <= journal[7]["time"]


def test_deleting_every_invoice_holding_an_external_id(
    standin: StandIn, session: requests.Session
) -> None:
    for _ in range(3):  # accept mode: stored three times
        assert post(session, standin, [invoice(1), invoice(2)]).status_code == 201
    assert standin.delete(external_ids=["ext-1"]) == 3
    assert [obj["externalId"] for obj in standin.store()] == ["ext-2"] * 3
    standin.configure(duplicates="ignore")
    (shown,) = post(session, standin, [invoice(2)]).json()["data"]
    assert shown == standin.store()[0]  # the index points at the first remaining ext-2


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"externalIds": ["nope"]}, "no such invoices: externalId 'nope'"),
        ({"ids": ["x", "a"], "externalIds": ["ext-1"]}, "no such invoices: id 'a', id 'x'"),
        ({}, "name the ids and/or externalIds to delete"),
        ({"resource": "clients", "ids": ["x"]}, "unknown resource 'clients'"),
        ({"externalIds": "ext-1"}, "externalIds must be a list of strings"),
        ({"ids": [1]}, "ids must be a list of strings"),
        ({"externalId": ["ext-1"]}, "unknown keys: externalId"),
    ],
)
def test_a_deletion_naming_anything_unknown_deletes_nothing(
    standin: StandIn, session: requests.Session, spec: dict[str, Any], error: str
) -> None:
    assert post(session, standin, [invoice(1)]).status_code == 201
    refused = requests.post(standin.root_url + "/_control/delete", json=spec, timeout=5)
    assert refused.status_code == 400
    assert refused.json() == {"error": error}
    assert len(standin.store()) == 1
    assert [e["method"] for e in standin.requests()] == ["POST"]


# -- faults --------------------------------------------------------------------------


def test_status_fault_with_retry_after(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults(
        {
            "action": "status",
            "status": 429,
            "headers": {"Retry-After": "1"},
            "path": "/invoices/batch",
        }
    )
    limited = post(session, standin, [invoice(1)])
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json() == {"statusCode": 429, "message": "Too Many Requests"}
    assert standin.store("invoices") == []
    assert post(session, standin, [invoice(1)]).status_code == 201
    assert [r["status"] for r in standin.requests()] == [429, 201]
    assert standin.posted_items() == [invoice(1)]


def test_status_fault_bodies(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults(
        {"action": "status", "status": 502, "raw_body": "<html>Bad Gateway</html>"},
        {"action": "status", "status": 500, "body": {"anything": ["goes"]}, "times": 2},
    )
    gateway = post(session, standin, [invoice(1)])
    assert (gateway.status_code, gateway.text) == (502, "<html>Bad Gateway</html>")
    for _ in range(2):
        failing = session.get(standin.url + "/invoices", timeout=5)
        assert (failing.status_code, failing.json()) == (500, {"anything": ["goes"]})
    assert session.get(standin.url + "/invoices", timeout=5).status_code == 200


def test_drop_before_store(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults({"action": "drop_before_store"})
    with pytest.raises(requests.ConnectionError):
        post(session, standin, [invoice(1)])
    assert standin.store("invoices") == []
    assert standin.requests()[0]["status"] is None
    assert post(session, standin, [invoice(1)]).status_code == 201


def test_drop_after_store_is_the_ambiguous_case(
    standin: StandIn, session: requests.Session
) -> None:
    standin.add_faults({"action": "drop_after_store", "method": "POST"})
    with pytest.raises(requests.ConnectionError):
        post(session, standin, [invoice(1), invoice(2)])
    assert [s["externalId"] for s in standin.store("invoices")] == ["ext-1", "ext-2"]
    assert standin.requests()[0]["status"] is None
    assert standin.posted_items() == []  # never answered, so not "accepted" as far as 2xx go


def test_status_after_store_answers_an_error_for_a_stored_batch(
    standin: StandIn, session: requests.Session
) -> None:
    standin.configure(duplicates="refuse")
    standin.add_faults({"action": "status_after_store", "status": 500, "path": "/invoices/batch"})
    failed = post(session, standin, [invoice(1), invoice(2)])
    assert failed.status_code == 500
    assert failed.json() == {"statusCode": 500, "message": "Internal Server Error"}
    assert [s["externalId"] for s in standin.store("invoices")] == ["ext-1", "ext-2"]
    assert [(e["status"], e["items"]) for e in standin.requests()] == [(500, 2)]
    assert standin.posted_items() == []  # not a 2xx, though stored
    again = post(session, standin, [invoice(1)])  # the rule is used up; the store remembers
    assert again.status_code == 409
    assert messages(again) == ["invoices.0.externalId already exists"]
    assert standin.faults() == [
        {
            "action": "status_after_store",
            "path": "/invoices/batch",
            "method": None,
            "times": 1,
            "used": 1,
            "status": 500,
            "headers": {},
        }
    ]


def test_status_after_store_bodies_and_outcomes(
    standin: StandIn, session: requests.Session
) -> None:
    standin.add_faults(
        {
            "action": "status_after_store",
            "status": 503,
            "headers": {"Retry-After": "2"},
            "raw_body": "upstream timeout",
        },
        {"action": "status_after_store", "status": 502, "body": {"oops": True}, "times": 2},
    )
    gateway = post(session, standin, [invoice(1)])
    assert (gateway.status_code, gateway.text) == (503, "upstream timeout")
    assert gateway.headers["Retry-After"] == "2"
    listed = session.get(standin.url + "/invoices", timeout=5)
    assert (listed.status_code, listed.json()) == (502, {"oops": True})
    # the request is processed as usual first: an invalid batch stores nothing
    invalid = post(session, standin, [invoice(2, amount=-1)])
    assert (invalid.status_code, invalid.json()) == (502, {"oops": True})
    assert [s["externalId"] for s in standin.store("invoices")] == ["ext-1"]
    assert [e["status"] for e in standin.requests()] == [503, 502, 502]
    assert post(session, standin, [invoice(3)]).status_code == 201


def test_delays(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults(
        {"action": "delay_before_store", "seconds": 0.3},
        {"action": "delay_after_store", "seconds": 0.3},
    )
    for _ in range(2):
        started = time.monotonic()
        assert post(session, standin, [invoice(_)]).status_code == 201
        assert time.monotonic() - started >= 0.3
    assert [rule["used"] for rule in standin.faults()] == [1, 1]  # one request each
    assert post(session, standin, [invoice(9)]).status_code == 201
    assert [rule["used"] for rule in standin.faults()] == [1, 1]  # worn out: no delay


def test_reject_items_naming_them(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults(
        {"action": "reject_items", "match": {"externalId": ["ext-2", "ext-4"]}, "name_items": True}
    )
    for _ in range(2):  # persistent: a bisection hits it repeatedly
        response = post(session, standin, [invoice(n) for n in range(1, 6)])
        assert response.status_code == 400
        assert messages(response) == [
            "invoices.1.externalId refused by test rule",
            "invoices.3.externalId refused by test rule",
        ]
    assert post(session, standin, [invoice(1), invoice(3)]).status_code == 201
    assert [s["externalId"] for s in standin.store("invoices")] == ["ext-1", "ext-3"]


def test_reject_items_without_names(standin: StandIn, session: requests.Session) -> None:
    standin.add_faults(
        {"action": "reject_items", "match": {"reference": ["INV-0003"]}, "name_items": False}
    )
    for _ in range(3):
        response = post(session, standin, [invoice(n) for n in range(1, 5)])
        assert response.status_code == 400
        assert messages(response) == ["Validation failed"]
    assert post(session, standin, [invoice(1)]).status_code == 201
    assert standin.faults()[0]["used"] == 3


def test_rules_filter_by_path_and_method_and_apply_in_order(
    standin: StandIn, session: requests.Session
) -> None:
    standin.add_faults(
        {"action": "status", "status": 503, "path": "/credit-notes/batch"},
        {"action": "status", "status": 500, "method": "GET"},
        {"action": "status", "status": 429, "path": "/invoices/batch"},
        {"action": "status", "status": 418, "path": "/invoices/batch"},
    )
    assert post(session, standin, [invoice(1)]).status_code == 429
    assert post(session, standin, [invoice(1)]).status_code == 418
    assert post(session, standin, [invoice(1)]).status_code == 201
    assert session.get(standin.url + "/invoices", timeout=5).status_code == 500
    note = valid_item(BATCHES["credit_notes"])
    assert post(session, standin, [note], "credit_notes").status_code == 503


def test_requests_of_a_together_rule_are_held_until_all_have_arrived(
    standin: StandIn, session: requests.Session
) -> None:
    standin.add_faults(
        {"action": "status_after_store", "status": 500, "times": 2, "together": True}
    )
    with ThreadPoolExecutor(1) as pool, requests.Session() as other_session:
        other_session.headers["Authorization"] = KEY
        first = pool.submit(post, other_session, standin, [invoice(1)])
        wait_for(lambda: len(standin.requests()) == 1)
        second = post(session, standin, [invoice(2)])
        assert (first.result().status_code, second.status_code) == (500, 500)
    held, other = standin.requests()
    assert held["answered"] >= other["time"]  # on the wire until the second arrived
    assert len(standin.store()) == 2  # then each went on with the action
    assert standin.faults()[0]["together"] is True
    assert post(session, standin, [invoice(3)]).status_code == 201  # worn out


def test_faults_do_not_bypass_auth(standin: StandIn) -> None:
    standin.add_faults({"action": "drop_before_store"})
    response = requests.get(standin.url + "/invoices", timeout=5)
    assert response.status_code == 401
    assert standin.faults()[0]["used"] == 0


def read_pages(http: requests.Session, standin: StandIn, pages: int) -> list[dict[str, Any]]:
    """`GET /invoices?page=1..pages`, one after the other."""
    return [
        http.get(standin.url + "/invoices", params={"page": n}, timeout=5).json()
        for n in range(1, pages + 1)
    ]


@pytest.mark.parametrize(
    ("order", "deletion", "gone", "unseen"),
    [
        ("oldest", {"which": "oldest"}, 1, 6),
        ("oldest", {"externalId": "seed-000003"}, 3, 6),
        ("newest", {"which": "newest"}, 20, 15),
    ],
)
def test_a_deletion_before_page_k_shifts_the_pages_under_a_reader(
    session: requests.Session, order: str, deletion: dict[str, str], gone: int, unseen: int
) -> None:
    with StandIn(api_key=KEY, page_size=5, order=order) as standin:  # type: ignore[arg-type]
        standin.seed_invoices(20)
        rule = {"action": "delete_before_answer", "path": "/invoices", "page": 2, **deletion}
        standin.add_faults(rule)
        pages = read_pages(session, standin, 4)
        assert [p["total"] for p in pages] == [20, 19, 19, 19]
        seen = {obj["externalId"] for p in pages for obj in p["data"]}
        every = {f"seed-{n:06d}" for n in range(1, 21)}
        assert seen == every - {f"seed-{unseen:06d}"}  # shifted onto page 1, never seen
        assert f"seed-{gone:06d}" not in {obj["externalId"] for obj in standin.store()}
        journal = [(e["method"], e["path"], e["query"]) for e in standin.requests()]
        assert journal == [
            ("GET", "/invoices", {"page": "1"}),
            ("GET", "/invoices", {"page": "2"}),
            ("DELETE", "/_control/delete", {"resource": "invoices"}),
            ("GET", "/invoices", {"page": "3"}),
            ("GET", "/invoices", {"page": "4"}),
        ]
        assert standin.requests()[2]["body"]["externalIds"] == [f"seed-{gone:06d}"]
        assert read_pages(session, standin, 2)[1]["total"] == 19  # worn out: once
        assert standin.faults()[0] == {
            "action": "delete_before_answer", "path": "/invoices", "method": None, "times": 1,
            "used": 1, "page": 2, "externalId": deletion.get("externalId"),
            "which": deletion.get("which"),
        }  # fmt: skip


def test_a_deletion_rule_finding_nothing_answers_500_and_deletes_nothing(
    standin: StandIn, session: requests.Session
) -> None:
    standin.seed_invoices(3)
    standin.add_faults(
        {"action": "delete_before_answer", "path": "/invoices", "externalId": "seed-000009"}
    )
    response = session.get(standin.url + "/invoices", timeout=5)
    assert response.status_code == 500
    assert "no such invoices: externalId 'seed-000009'" in response.json()["message"]
    assert len(standin.store()) == 3
    standin.reset()
    standin.add_faults({"action": "delete_before_answer", "which": "newest"})
    response = session.get(standin.url + "/invoices", timeout=5)
    assert response.json()["message"] == "fault rule delete_before_answer: no invoice to delete"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, ["invoices.49.reference refused while inserting by test rule"]),
        ({"field": "clientId"}, ["invoices.49.clientId refused while inserting by test rule"]),
        ({"message": "Client not found"}, "Client not found"),
    ],
)
def test_a_partial_refusal_keeps_the_items_before_the_refused_one(
    standin: StandIn, session: requests.Session, extra: dict[str, str], message: Any
) -> None:
    rule = {"action": "partial_refusal", "path": "/invoices/batch", "index": 49, **extra}
    standin.add_faults(rule)
    short = post(session, standin, [invoice(n) for n in range(1, 50)])  # no item 49
    assert short.status_code == 201
    refused = post(session, standin, [invoice(n) for n in range(101, 201)])
    assert refused.status_code == 400
    assert refused.json() == {"statusCode": 400, "message": message, "error": "Bad Request"}
    stored = [obj["externalId"] for obj in standin.store()]
    assert stored == [f"ext-{n}" for n in (*range(1, 50), *range(101, 150))]
    assert [e["status"] for e in standin.requests()] == [201, 400]
    assert standin.posted_items() == [invoice(n) for n in range(1, 50)]  # 2xx answers only
    again = post(session, standin, [invoice(n) for n in range(101, 201)])
    assert again.status_code == 201  # once: times defaults to 1
    assert len(standin.store()) == 49 + 49 + 100


def test_a_partial_refusal_validates_the_whole_batch_first(
    standin: StandIn, session: requests.Session
) -> None:
    standin.add_faults({"action": "partial_refusal", "index": 0, "times": None})
    invalid = post(session, standin, [invoice(1), invoice(2, amount=-1)])
    assert messages(invalid) == ["invoices.1.amount must not be less than 0"]
    refused = post(session, standin, [invoice(1), invoice(2)], "invoices")
    assert messages(refused) == ["invoices.0.reference refused while inserting by test rule"]
    note = {"clientId": CLIENT, "reference": "CN-1", "amount": 1, "issueDate": "2024-03-05"}
    assert messages(post(session, standin, [note], "credit_notes")) == [
        "creditNotes.0.reference refused while inserting by test rule"
    ]
    assert standin.store() == [] and standin.store("credit_notes") == []


def test_any_rule_may_apply_to_one_page_only(standin: StandIn, session: requests.Session) -> None:
    standin.seed_invoices(60)
    standin.add_faults({"action": "status", "status": 503, "path": "/invoices", "page": 3})
    statuses = [
        session.get(standin.url + "/invoices", params={"page": n}, timeout=5).status_code
        for n in (1, 2, 3, 3)
    ]
    assert statuses == [200, 200, 503, 200]
    assert session.get(standin.url + "/invoices", timeout=5).status_code == 200  # page 1


@pytest.mark.parametrize(
    "rule",
    [
        {"action": "explode"},
        {"action": "status"},
        {"action": "status", "status": 429, "seconds": 1},
        {"action": "delay_before_store"},
        {"action": "reject_items", "match": {}},
        {"action": "drop_before_store", "times": 0},
        {"action": "status_after_store"},
        {"action": "status_after_store", "status": 500, "seconds": 1},
        {"action": "status_after_store", "status": 500, "body": {}, "raw_body": ""},
        {"action": "status", "status": 500, "page": 0},
        {"action": "delete_before_answer"},
        {"action": "delete_before_answer", "which": "oldest", "externalId": "seed-000001"},
        {"action": "delete_before_answer", "which": "first"},
        {"action": "delete_before_answer", "externalId": 1},
        {"action": "partial_refusal"},
        {"action": "partial_refusal", "index": -1},
        {"action": "partial_refusal", "index": 3, "message": ["x"]},
        {"action": "drop_after_store", "together": True},  # one use: nothing to wait for
        {"action": "drop_after_store", "times": None, "together": True},
        {"action": "drop_after_store", "times": 2, "together": "yes"},
    ],
)
def test_malformed_rules_are_refused(standin: StandIn, rule: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        standin.add_faults(rule)
    over_http = requests.post(
        standin.root_url + "/_control/faults", json={"faults": [rule]}, timeout=5
    )
    assert over_http.status_code == 400
    assert standin.faults() == []


# -- rate limit ----------------------------------------------------------------------

THROTTLED = {"statusCode": 429, "message": "ThrottlerException: Too Many Requests"}


class Clock:
    """A monotonic clock the test moves by hand: bucket arithmetic checked exactly."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(standin: StandIn) -> Clock:
    """`standin`'s rate-limit bucket reads this clock instead of time.monotonic."""
    fake = Clock()
    standin.state.bucket = TokenBucket(clock=fake)
    return fake


def test_rate_limit_refuses_with_retry_after_and_stores_nothing(
    session: requests.Session,
) -> None:
    with StandIn(api_key=KEY, rate_limit=5, rate_burst=2) as standin:
        answers = [post(session, standin, [invoice(n)]) for n in (1, 2, 3)]
        assert [a.status_code for a in answers] == [201, 201, 429]
        assert answers[2].json() == THROTTLED
        assert answers[2].headers["Retry-After"] == "1"
        assert [s["externalId"] for s in standin.store()] == ["ext-1", "ext-2"]
        journal = standin.requests()
        assert [(e["status"], e["items"]) for e in journal] == [(201, 1), (201, 1), (429, 1)]
        # the second request took its token before it was answered; 1/5 s later the
        # bucket holds a whole one again (the refused third request took nothing)
        refilled = journal[1]["answered"] + 1 / 5
        time.sleep(max(0.0, refilled - time.monotonic()))
        assert post(session, standin, [invoice(4)]).status_code == 201
        assert [s["externalId"] for s in standin.store()] == ["ext-1", "ext-2", "ext-4"]


def test_rate_limit_arithmetic_on_the_clock(
    standin: StandIn, session: requests.Session, clock: Clock
) -> None:
    standin.configure(rate_limit=4, rate_burst=2)  # times below are exact in binary

    def status() -> tuple[int, str | None]:
        response = session.get(standin.url + "/invoices", timeout=5)
        return response.status_code, response.headers.get("Retry-After")

    assert [status() for _ in range(3)] == [(200, None), (200, None), (429, "1")]
    clock.now += 0.125  # half a token
    assert status() == (429, "1")
    clock.now += 0.125  # exactly one token
    assert [status() for _ in range(2)] == [(200, None), (429, "1")]
    clock.now += 10  # capped at the burst
    assert [status() for _ in range(3)] == [(200, None), (200, None), (429, "1")]
    standin.configure(rate_limit=0.25, rate_burst=1)  # a new shape starts full
    assert [status() for _ in range(2)] == [(200, None), (429, "4")]
    clock.now += 0.5  # 0.125 token: 3.5 s to go, rounded up
    assert status() == (429, "4")
    clock.now += 2.5  # 0.75 token: exactly 1 s to go
    assert status() == (429, "1")
    clock.now += 1
    assert status() == (200, None)
    standin.configure(rate_limit=100, rate_burst=1)
    assert [status() for _ in range(2)] == [(200, None), (429, "1")]  # 10 ms: at least 1
    statuses = [e["status"] for e in standin.requests()]
    assert statuses.count(429) == statuses.count(200) == 8


def test_rate_burst_defaults_to_one_seconds_worth(
    standin: StandIn, session: requests.Session, clock: Clock
) -> None:
    def burst() -> int:
        for count in range(20):
            if session.get(standin.url + "/invoices", timeout=5).status_code == 429:
                return count
        raise AssertionError("never throttled")

    standin.configure(rate_limit=3)
    assert standin.state.settings.rate_burst is None
    assert burst() == 3
    standin.configure(rate_limit=0.5)
    assert burst() == 1
    standin.configure(rate_limit=0)  # off
    unlimited = [session.get(standin.url + "/invoices", timeout=5) for _ in range(10)]
    assert [r.status_code for r in unlimited] == [200] * 10
    standin.configure(rate_limit=None)
    assert session.get(standin.url + "/invoices", timeout=5).status_code == 200


def test_rate_limit_counts_authenticated_api_requests_before_faults_and_validation(
    standin: StandIn, session: requests.Session, clock: Clock
) -> None:
    standin.configure(rate_limit=1, rate_burst=1)
    for _ in range(3):  # neither refused credentials nor unknown routes take a token
        assert requests.get(standin.url + "/invoices", timeout=5).status_code == 401
        assert session.get(standin.url + "/clients", timeout=5).status_code == 404
    standin.add_faults({"action": "status", "status": 503})
    assert post(session, standin, [invoice(1)]).status_code == 503  # took the token
    throttled = [
        post(session, standin, [invoice(2, amount=-1)]),
        session.post(standin.url + "/invoices/batch", data=b"{not json", timeout=5),
        session.get(standin.url + "/invoices", timeout=5),
    ]
    assert [(r.status_code, r.json()) for r in throttled] == [(429, THROTTLED)] * 3
    assert standin.faults()[0]["used"] == 1
    for path in ("config", "requests", "store", "faults", "health"):  # not the control API
        assert requests.get(f"{standin.root_url}/_control/{path}", timeout=5).status_code == 200
    clock.now += 1
    standin.add_faults({"action": "drop_before_store"})
    with pytest.raises(requests.ConnectionError):
        post(session, standin, [invoice(3)])
    assert post(session, standin, [invoice(4)]).status_code == 429
    assert standin.faults()[1]["used"] == 1
    assert standin.store() == []
    journal = [(e["method"], e["path"], e["status"]) for e in standin.requests()]
    assert journal[6:] == [
        ("POST", "/invoices/batch", 503),
        ("POST", "/invoices/batch", 429),
        ("POST", "/invoices/batch", 429),
        ("GET", "/invoices", 429),
        ("POST", "/invoices/batch", None),
        ("POST", "/invoices/batch", 429),
    ]


def test_rate_limit_is_exact_under_concurrency(standin: StandIn, clock: Clock) -> None:
    standin.configure(rate_limit=1, rate_burst=10)

    def call(number: int) -> int:
        with requests.Session() as http:
            http.headers["Authorization"] = KEY
            return post(http, standin, [invoice(number)]).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(call, range(40)))
    assert sorted(statuses) == [201] * 10 + [429] * 30
    assert len(standin.store()) == 10


def test_reset_refills_the_bucket(
    standin: StandIn, session: requests.Session, clock: Clock
) -> None:
    standin.configure(rate_limit=1)
    assert [post(session, standin, [invoice(1)]).status_code for _ in range(2)] == [201, 429]
    standin.reset()
    assert post(session, standin, [invoice(1)]).status_code == 201
    assert standin.state.settings.rate_limit == 1  # settings are kept


def test_rate_settings_over_http(standin: StandIn, session: requests.Session) -> None:
    config = standin.root_url + "/_control/config"
    initial = requests.get(config, timeout=5).json()
    assert (initial["rate_limit"], initial["rate_burst"]) == (None, None)
    changed = requests.post(config, json={"rate_limit": 2.5, "rate_burst": 1}, timeout=5)
    assert changed.status_code == 200
    assert (changed.json()["rate_limit"], changed.json()["rate_burst"]) == (2.5, 1)
    assert session.get(standin.url + "/invoices", timeout=5).status_code == 200
    assert session.get(standin.url + "/invoices", timeout=5).status_code == 429
    for bad in (
        {"rate_limit": -1},
        {"rate_limit": "5"},
        {"rate_limit": True},
        {"rate_burst": 0.5},
        {"rate_burst": 0},
    ):
        refused = requests.post(config, json=bad, timeout=5)
        assert refused.status_code == 400, bad
        assert next(iter(bad)) in refused.json()["error"]
        with pytest.raises(ValueError, match=next(iter(bad))):
            standin.configure(**bad)
    assert (standin.state.settings.rate_limit, standin.state.settings.rate_burst) == (2.5, 1)
    with pytest.raises(ValueError, match="rate_limit"):
        StandIn(rate_limit=float("nan"))
    with pytest.raises(ValueError, match="rate_burst"):
        StandIn(rate_limit=1, rate_burst=float("inf"))


# -- control API, journal, concurrency, connections ------------------------------------


def test_control_api_over_http(standin: StandIn, session: requests.Session) -> None:
    control = standin.root_url + "/_control"
    added = requests.post(
        control + "/faults",
        json={"faults": [{"action": "status", "status": 503, "times": 1}]},
        timeout=5,
    )
    assert added.status_code == 200 and added.json()[0]["status"] == 503
    assert post(session, standin, [invoice(1)]).status_code == 503
    assert post(session, standin, [invoice(1)]).status_code == 201
    journal = requests.get(control + "/requests", timeout=5).json()
    assert [(r["path"], r["status"], r["items"]) for r in journal] == [
        ("/invoices/batch", 503, 1),
        ("/invoices/batch", 201, 1),
    ]
    assert journal[0]["time"] <= journal[1]["time"]
    assert journal[1]["headers"]["Authorization"] == KEY
    store = requests.get(control + "/store", timeout=5).json()
    assert set(store) == set(BATCHES) and len(store["invoices"]) == 1
    seeded = requests.post(control + "/seed", json={"count": 5}, timeout=5).json()
    assert seeded == {"seeded": 5} and len(standin.store()) == 6
    assert requests.post(control + "/config", json={"page_size": 2}, timeout=5).status_code == 200
    assert session.get(standin.url + "/invoices", timeout=5).json()["pageCount"] == 3
    assert requests.post(control + "/reset", timeout=5).status_code == 200
    assert standin.requests() == [] and standin.store() == [] and standin.faults() == []


def test_journal_times_show_which_requests_overlapped(
    standin: StandIn, session: requests.Session
) -> None:
    post(session, standin, [invoice(1)])
    session.get(standin.url + "/invoices", timeout=5)
    requests.get(standin.url + "/invoices", timeout=5)  # 401
    standin.add_faults({"action": "drop_after_store"})
    with pytest.raises(requests.ConnectionError):
        post(session, standin, [invoice(2)])
    one_after_another = standin.requests()
    assert [e["status"] for e in one_after_another] == [201, 200, 401, None]
    for entry in one_after_another:
        assert entry["time"] <= entry["answered"]  # a dropped request is "answered" too
    for earlier, later in itertools.pairwise(one_after_another):
        assert earlier["answered"] < later["time"]

    standin.reset()
    standin.add_faults({"action": "delay_before_store", "seconds": 2})
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, session, standin, [invoice(3)])
        wait_for(lambda: len(standin.requests()) == 1)
        assert standin.requests()[0]["answered"] is None  # in progress
        with requests.Session() as other:
            other.headers["Authorization"] = KEY
            assert post(other, standin, [invoice(4)]).status_code == 201
        assert held.result().status_code == 201
    slow, quick = standin.requests()
    assert slow["time"] < quick["time"] <= quick["answered"] < slow["answered"]


def test_reset_from_python(standin: StandIn, session: requests.Session) -> None:
    post(session, standin, [invoice(1)])
    standin.add_faults({"action": "drop_before_store"})
    standin.reset()
    assert standin.requests() == [] and standin.store() == [] and standin.faults() == []
    assert post(session, standin, [invoice(1)]).status_code == 201


def test_latency_does_not_serialize_requests(standin: StandIn) -> None:
    standin.configure(latency_ms=300)

    def call(number: int) -> int:
        with requests.Session() as http:
            http.headers["Authorization"] = KEY
            return post(http, standin, [invoice(number)]).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(call, range(4)))
    assert statuses == [201] * 4
    journal = standin.requests()
    # all four on the server at once: each arrived before any was answered
    assert max(e["time"] for e in journal) < min(e["answered"] for e in journal)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_latency_applies_to_lists_and_batches(
    standin: StandIn, session: requests.Session, method: str
) -> None:
    standin.configure(latency_ms=250)
    started = time.monotonic()
    if method == "GET":
        response = session.get(standin.url + "/invoices", params={"page": 1}, timeout=5)
        assert response.status_code == 200
    else:
        assert post(session, standin, [invoice(1)]).status_code == 201
    assert time.monotonic() - started >= 0.25
    (entry,) = standin.requests()
    assert entry["method"] == method
    assert entry["answered"] - entry["time"] >= 0.25


def test_connections_are_kept_alive(standin: StandIn, session: requests.Session) -> None:
    for number in range(20):
        response = post(session, standin, [invoice(number)])
        assert response.status_code == 201
        assert response.headers.get("Connection", "").lower() != "close"
    session.get(standin.url + "/invoices", timeout=5)
    assert standin.connections_opened == 1


def test_stop_is_prompt_with_idle_keep_alive_connections(session: requests.Session) -> None:
    standin = StandIn(api_key=KEY).start()
    url = standin.url
    post(session, standin, [invoice(1)])  # leaves an idle keep-alive connection open
    stopping = threading.Thread(target=standin.stop)
    stopping.start()
    stopping.join(timeout=30)  # a keep-alive connection held it: it would never end
    assert not stopping.is_alive()
    standin.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        session.get(url + "/invoices", timeout=2)


@pytest.mark.parametrize("action", ["delay_before_store", "delay_after_store"])
def test_stop_lets_delayed_requests_go_and_stores_nothing_after_it(
    session: requests.Session, action: str
) -> None:
    # a test whose target gave up on a slow request must not wait out its delay at teardown
    standin = StandIn(api_key=KEY).start()
    standin.configure(latency_ms=600_000)
    standin.add_faults({"action": action, "seconds": 600})
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, session, standin, [invoice(1)])
        wait_for(lambda: len(standin.requests()) == 1)
        stopping = threading.Thread(target=standin.stop)
        stopping.start()
        stopping.join(timeout=60)  # the delay (600 s) or the latency would have held it
        assert not stopping.is_alive()
        if action == "delay_before_store":  # dropped: nothing is stored after a stop
            with pytest.raises(requests.ConnectionError):
                held.result()
            assert standin.store() == []
        else:  # stored already: answered or dropped, whichever the stop reached first
            assert len(standin.store()) == 1


# -- CLI -----------------------------------------------------------------------------


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leanpay_standin",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--duplicates",
            "refuse",
            "--page-size",
            "7",
            "--url-file",
            str(url_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/public", url)
        assert url_file.read_text().strip() == url
        headers = {"Authorization": "cli-key"}
        first = requests.post(
            url + "/invoices/batch", json={"invoices": [invoice(1)]}, headers=headers, timeout=5
        )
        assert first.status_code == 201
        again = requests.post(
            url + "/invoices/batch", json={"invoices": [invoice(1)]}, headers=headers, timeout=5
        )
        assert again.status_code == 409
        listed = requests.get(url + "/invoices", headers=headers, timeout=5).json()
        assert listed["total"] == 1
        control = url.replace("/v1/public", "/_control")
        config = requests.get(control + "/config", timeout=5).json()
        assert config["page_size"] == 7
        drops = [{"action": "drop_before_store"}, {"action": "drop_after_store"}]
        requests.post(control + "/faults", json={"faults": drops}, timeout=5)
        for number in (2, 3):
            with pytest.raises(requests.ConnectionError):
                requests.post(
                    url + "/invoices/batch",
                    json={"invoices": [invoice(number)]},
                    headers=headers,
                    timeout=5,
                )
        stored = requests.get(control + "/store?resource=invoices", timeout=5).json()
        assert [s["externalId"] for s in stored["invoices"]] == ["ext-1", "ext-3"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert stderr == ""  # --quiet is the default, and drops leave no traceback


def test_cli_verbose_logs_requests_to_stderr() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "leanpay_standin", "--api-key", "k", "--verbose"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        requests.get(url + "/invoices", headers={"Authorization": "k"}, timeout=5)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "GET /v1/public/invoices -> 200" in stderr


def test_cli_refuses_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leanpay_standin", "--api-key", "k", "--page-size", "0"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert "page_size" in result.stderr
    assert json.dumps(result.stdout) == '""'


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--rate-burst", "0.5"], "rate_burst must be a number >= 1"),
        (["--rate-limit", "-2"], "rate_limit must be a number >= 0"),
        (["--seed-invoices", "-1"], "--seed-invoices: must be >= 0, got -1"),
        (["--seed-invoices", "many"], "--seed-invoices: invalid count value: 'many'"),
    ],
)
def test_cli_refuses_bad_rate_and_seed_flags(flags: list[str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leanpay_standin", "--api-key", "k", *flags],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stdout == ""


def start_cli(*flags: str) -> tuple[subprocess.Popen[str], str]:
    """The CLI with `flags`, and the API base URL it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "leanpay_standin", "--api-key", KEY, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def stop_cli(process: subprocess.Popen[str]) -> str:
    """SIGTERM; the CLI's stderr once it exited 0."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    return stderr


def test_cli_defaults_to_pages_of_25_and_seeds_a_tenant(session: requests.Session) -> None:
    process, url = start_cli("--seed-invoices", "60")
    try:
        control = url.replace("/v1/public", "/_control")
        config = requests.get(control + "/config", timeout=5).json()
        assert config == {
            "duplicates": "accept",
            "latency_ms": 0.0,
            "page_size": 25,
            "order": "oldest",
            "log_bodies": True,
            "rate_limit": None,
            "rate_burst": None,
            "created_at": "millisecond",
            "date_zone": None,
            "omit_fields": [],
        }
        last = session.get(url + "/invoices", params={"page": 3}, timeout=5).json()
        assert (last["total"], last["pageCount"], last["count"]) == (60, 3, 10)
        assert last["data"][-1]["externalId"] == "seed-000060"
        assert last["data"][-1]["reference"] == "SEED-000060"
        assert requests.get(control + "/requests", timeout=5).json()[0]["status"] == 200
    finally:
        stderr = stop_cli(process)
    assert stderr == ""


def test_cli_rate_limit(session: requests.Session) -> None:
    process, url = start_cli("--rate-limit", "5", "--rate-burst", "2")
    try:
        control = url.replace("/v1/public", "/_control")
        config = requests.get(control + "/config", timeout=5).json()
        assert (config["rate_limit"], config["rate_burst"]) == (5.0, 2.0)
        answers = [session.get(url + "/invoices", timeout=5) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[2].json() == {
            "statusCode": 429,
            "message": "ThrottlerException: Too Many Requests",
        }
        assert answers[2].headers["Retry-After"] == "1"
    finally:
        stop_cli(process)


def test_cli_help_names_every_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leanpay_standin", "--help"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    help_text = " ".join(result.stdout.split())
    flags = ("--seed-invoices N", "--rate-limit PER_SECOND", "--rate-burst REQUESTS")
    for flag in (*flags, "--order {oldest,newest,id}"):
        assert flag in help_text
    assert "(default 25; Leanpay documents none)" in help_text
    assert "max(1, rate limit)" in help_text


# -- without werkzeug (the 'standin' extra) ---------------------------------------------

MISSING_EXTRA = (
    "leanpay-standin: the stand-in needs the 'standin' extra: "
    "pip install 'target-leanpay[standin]'\n"
)


def shadowing(tmp_path: Path, module: str) -> dict[str, str]:
    """An environment in which importing `module` fails as if it were not installed."""
    package = tmp_path / "shadow" / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f'raise ModuleNotFoundError("No module named {module!r}", name={module!r})\n'
    )
    return {**os.environ, "PYTHONPATH": str(tmp_path / "shadow")}


def cli_command(how: str) -> list[str]:
    """`python -m leanpay_standin`, or the console script pip installed next to python."""
    if how == "module":
        return [sys.executable, "-m", "leanpay_standin"]
    script = Path(sys.executable).with_name("leanpay-standin")
    assert script.exists(), f"{script} missing: install the project (make lint does)"
    return [str(script)]


@pytest.mark.parametrize("how", ["module", "script"])
def test_cli_without_werkzeug_names_the_extra(tmp_path: Path, how: str) -> None:
    command = cli_command(how)
    env = shadowing(tmp_path, "werkzeug")
    result = subprocess.run(
        [*command, "--api-key", "k"],
        capture_output=True,
        text=True,
        timeout=10,
        env=env,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (2, "", MISSING_EXTRA)
    helped = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=10, env=env, check=False
    )
    assert helped.returncode == 0 and "--rate-limit" in helped.stdout


def test_package_imports_without_werkzeug_until_the_server_is_needed(tmp_path: Path) -> None:
    probe = (
        "import leanpay_standin, sys\n"
        "print(leanpay_standin.DUPLICATE_MODES, 'werkzeug' in sys.modules)\n"
        "try:\n"
        "    leanpay_standin.StandIn\n"
        "except ModuleNotFoundError as error:\n"
        "    print(error.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=10,
        env=shadowing(tmp_path, "werkzeug"),
        check=True,
    )
    assert result.stdout == "('accept', 'refuse', 'ignore') False\nwerkzeug\n"


def test_cli_does_not_hide_other_missing_modules(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "leanpay_standin", "--api-key", "k"],
        capture_output=True,
        text=True,
        timeout=10,
        env=shadowing(tmp_path, "msgspec"),
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().endswith("ModuleNotFoundError: No module named 'msgspec'")
