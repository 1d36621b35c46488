"""Record -> Leanpay item mapping: every rule of `records.mapping`, with exact outputs.

Each test states the payload or the exact `Problem` expected, because the reasons end up in
the dead-letter file and in the logs, where users read them.
"""

from __future__ import annotations

import copy
import enum
import json
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, FloatOperation, localcontext
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import pytest

from target_leanpay.config.settings import DEFAULTS
from target_leanpay.records.mapping import (
    REMEMBERED_VALUES,
    MappingSettings,
    Problem,
    RecordMapper,
    Reference,
    Rejection,
    unmapped_client,
)
from target_leanpay.records.resources import RESOURCES, Field, Kind
from target_leanpay.records.values import MAX_AMOUNT, InvalidValue, date_format_problem, show

U1 = "3f2b8c1e-7a4d-4e2b-9c1f-0a1b2c3d4e5f"
U2 = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
U3 = "0F1E2D3C-4B5A-4968-8776-5A4B3C2D1E0F"  # upper case: sent as given

MINUS_5H = timezone(timedelta(hours=-5))

FLOAT_MSG = (
    "is a binary float ({}); send amounts as integers, decimal.Decimal or numeric strings "
    "so that no cent is lost to float rounding"
)
WHOLE_MSG = (
    "{} is not a whole number of minor units (cents); "
    'if the source holds major units (euros), set amount_unit to "major"'
)
PLACES_MSG = "{} has more than 2 decimal places; it cannot be converted to cents exactly"
CLIENT_UUID_MSG = (
    "{} is not a Leanpay client UUID; put your own client id in clientExternalId and map it "
    "to the Leanpay id with the client_ids / client_ids_file setting"
)
NOT_ISO_MSG = "{} is not an ISO 8601 date (YYYY-MM-DD) or date-time"
NOT_A_DATE_MSG = NOT_ISO_MSG + (
    "; to read dates written otherwise, list their formats in date_formats (e.g. %d/%m/%Y)"
)
"""Text that does not even begin as an ISO date: the reason says how to declare its format."""
POINT_MSG = (
    "{} is not a decimal number with a decimal point; for amounts written with a decimal "
    "comma (1 234,50), set decimal_separator to ,"
)

# One valid record per resource (as the SDK delivers them: mixed types) and its exact payload.
VALID: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "invoices": (
        {
            "clientId": U1,
            "reference": "INV-1",
            "amount": 12345,
            "netAmount": 10288,
            "issueDate": "2024-03-01",
            "dueDate": date(2024, 3, 31),
            "externalId": "erp-1",
            "sentDate": datetime(2024, 3, 1, 9, 0),
        },
        {
            "clientId": U1,
            "reference": "INV-1",
            "amount": 12345,
            "netAmount": 10288,
            "issueDate": "2024-03-01",
            "dueDate": "2024-03-31",
            "externalId": "erp-1",
            "sentDate": "2024-03-01",
        },
    ),
    "credit_notes": (
        {
            "clientId": U1,
            "reference": "CN-1",
            "amount": Decimal("500"),
            "netAmount": "417",
            "issueDate": "2024-03-02T10:00:00+01:00",
            "dueDate": "2024-04-01",
            "externalId": 77,
        },
        {
            "clientId": U1,
            "reference": "CN-1",
            "amount": 500,
            "netAmount": 417,
            "issueDate": "2024-03-02",
            "dueDate": "2024-04-01",
            "externalId": "77",
        },
    ),
    "paybacks": (
        {"creditNoteId": U2, "amount": 500, "date": "2024-03-05", "externalId": "pb-1"},
        {"creditNoteId": U2, "amount": 500, "date": "2024-03-05", "externalId": "pb-1"},
    ),
    "links": (
        {
            "invoiceId": U1,
            "creditNoteId": U3,
            "amount": 250,
            "date": date(2024, 3, 6),
            "externalId": "lk-1",
        },
        {
            "invoiceId": U1,
            "creditNoteId": U3,
            "amount": 250,
            "date": "2024-03-06",
            "externalId": "lk-1",
        },
    ),
    "misc_operations": (
        {
            "clientId": U1,
            "externalId": "mo-1",
            "amount": 1000,
            "defaultCurrencyAmount": 1085,
            "date": "2024-03-07",
            "currency": "usd",
            "description": "FX adjustment",
        },
        {
            "clientId": U1,
            "externalId": "mo-1",
            "amount": 1000,
            "defaultCurrencyAmount": 1085,
            "date": "2024-03-07",
            "currency": "USD",
            "description": "FX adjustment",
        },
    ),
    "addresses": (
        {
            "clientId": U1,
            "company": "ACME SAS",
            "line1": "1 rue de la Paix",
            "city": "Paris",
            "postalCode": 75002,
            "country": "FR",
            "name": "Accounts payable",
            "line2": "Bâtiment B",
            "line3": None,
            "externalId": "addr-1",
            "main": True,
        },
        {
            "clientId": U1,
            "company": "ACME SAS",
            "line1": "1 rue de la Paix",
            "city": "Paris",
            "postalCode": "75002",
            "country": "FR",
            "name": "Accounts payable",
            "line2": "Bâtiment B",
            "externalId": "addr-1",
            "main": True,
        },
    ),
}

OMITTED = object()
"""The field is not in the payload."""


def valid_record(resource: str) -> dict[str, Any]:
    return copy.deepcopy(VALID[resource][0])


def settings_with(**settings: Any) -> MappingSettings:
    """Mapping settings: the settings schema's defaults, overridden by `settings`."""
    defaults = {k: DEFAULTS[k] for k in ("amount_unit", "client_ids", "require_external_id")}
    defaults["date_formats"] = tuple(DEFAULTS["date_formats"])
    defaults["decimal_separator"] = DEFAULTS["decimal_separator"]
    return MappingSettings(**{**defaults, **settings})


class Checked:
    """A RecordMapper whose `map` maps each record twice and insists on the same result.

    Every test below goes through it: the second call meets the values the first one
    left in the mapper's memo of accepted UUIDs and dates, so each case also checks that
    the memo never changes an outcome, and that mapping never touches the record.
    """

    def __init__(self, resource: str, **settings: Any) -> None:
        self.inner = RecordMapper(RESOURCES[resource], settings_with(**settings))
        self.resource = self.inner.resource

    def map(self, record: Mapping[str, Any]) -> dict[str, Any] | Rejection:
        before = copy.deepcopy(dict(record))
        first = self.inner.map(record)
        again = self.inner.map(record)
        assert first == again
        if not isinstance(first, Rejection):
            assert list(first) == list(again)  # the same key order in the JSON body
        assert dict(record) == before
        return first


def mapper(resource: str, **settings: Any) -> Checked:
    return Checked(resource, **settings)


def mapped(resource: str, record: Mapping[str, Any], **settings: Any) -> dict[str, Any]:
    result = mapper(resource, **settings).map(record)
    assert not isinstance(result, Rejection), result
    return result


def problems(resource: str, record: dict[str, Any], **settings: Any) -> list[Problem]:
    result = mapper(resource, **settings).map(record)
    assert isinstance(result, Rejection), result
    return list(result.problems)


def field_result(resource: str, name: str, value: Any, **settings: Any) -> Any:
    """Set one field of a valid record: its payload value, OMITTED, or the single Problem."""
    record = valid_record(resource)
    record[name] = value
    result = mapper(resource, **settings).map(record)
    if isinstance(result, Rejection):
        assert len(result.problems) == 1, result
        assert result.problems[0].field == name
        return result.problems[0]
    return result.get(name, OMITTED)


def fields(predicate: Callable[[Field], bool]) -> list[Any]:
    return [
        pytest.param(r.name, f, id=f"{r.name}.{f.name}")
        for r in RESOURCES.values()
        for f in r.fields
        if predicate(f)
    ]


# --- every resource ------------------------------------------------------------------


def test_every_resource_has_a_valid_example() -> None:
    assert set(VALID) == set(RESOURCES)


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_valid_record_gives_the_exact_payload(resource: str) -> None:
    record, expected = VALID[resource]
    payload = mapped(resource, record)
    assert payload == expected
    assert list(payload) == [f.name for f in RESOURCES[resource].fields if f.name in payload]
    assert json.loads(json.dumps(payload)) == payload
    assert all(type(v) in (str, int, bool) for v in payload.values())


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_snake_case_aliases_give_the_same_payload(resource: str) -> None:
    record, expected = VALID[resource]
    by_name = {f.name: f.snake_name for f in RESOURCES[resource].fields}
    renamed = {by_name[k]: v for k, v in record.items()}
    assert renamed.keys() != record.keys()
    assert mapped(resource, renamed) == expected


def test_snake_names_are_those_of_the_field_table() -> None:
    names = {f.name: f.snake_name for r in RESOURCES.values() for f in r.fields}
    assert names["netAmount"] == "net_amount"
    assert names["defaultCurrencyAmount"] == "default_currency_amount"
    assert names["line1"] == "line1"
    assert names["postalCode"] == "postal_code"


@pytest.mark.parametrize("resource", sorted(RESOURCES))
def test_unknown_and_sdc_keys_are_never_sent(resource: str) -> None:
    record, expected = VALID[resource]
    noisy = {
        **record,
        "_sdc_extracted_at": "2024-03-01T10:00:00Z",
        "_sdc_batched_at": datetime(2024, 3, 1, 10, 0),
        "_sdc_sequence": 1,
        "_sdc_deleted_at": None,
        "_sdc_table_version": 3,
        "customer_name": "ACME",
        "status": "paid",
        "id": U2,
        "tenantId": U2,
        "remainingAmount": 5,
        "clientExternalId": "C-1",
        "client_external_id": "C-1",
        "Amount": -5,
        "AMOUNT": "bad",
    }
    assert mapped(resource, noisy, client_ids={"C-1": U2}) == expected


def test_record_is_not_modified_and_any_mapping_is_accepted() -> None:
    record = valid_record("invoices")
    before = copy.deepcopy(record)
    assert mapped("invoices", MappingProxyType(record)) == VALID["invoices"][1]
    assert record == before


def test_mapper_is_reusable_across_records() -> None:
    m = mapper("paybacks")
    results = [m.map({**valid_record("paybacks"), "amount": n}) for n in (1, -1, 3)]
    assert [r if isinstance(r, Rejection) else r["amount"] for r in results] == [
        1,
        Rejection((Problem("amount", "must be >= 0, got -1"),)),
        3,
    ]


def test_unknown_amount_unit_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match='amount_unit must be "minor" or "major", not \'cents\''):
        RecordMapper(RESOURCES["invoices"], settings_with(amount_unit="cents"))


# --- names: both spellings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("camel", "snake", "expected"),
    [
        pytest.param(1200, 1200, 1200, id="same"),
        pytest.param(1200, Decimal("1200"), 1200, id="same-after-conversion"),
        pytest.param("1200", 1200, 1200, id="string-and-int"),
        pytest.param(None, 1300, 1300, id="camel-null"),
        pytest.param(1300, None, 1300, id="snake-null"),
        pytest.param("", 1300, 1300, id="camel-blank"),
        pytest.param(1300, "  ", 1300, id="snake-blank"),
        pytest.param(
            1200,
            1300,
            Problem("netAmount", "both netAmount and net_amount are set and differ (1200 vs 1300)"),
            id="differ",
        ),
        pytest.param(
            1200,
            "abc",
            Problem(
                "netAmount", "both netAmount and net_amount are set and differ (1200 vs 'abc')"
            ),
            id="one-invalid",
        ),
        pytest.param(-1, -2, Problem("netAmount", "must be >= 0, got -1"), id="both-invalid"),
    ],
)
def test_both_spellings_of_a_field(camel: Any, snake: Any, expected: Any) -> None:
    record = {**valid_record("invoices"), "netAmount": camel, "net_amount": snake}
    result = mapper("invoices").map(record)
    if isinstance(expected, Problem):
        assert result == Rejection((expected,))
    else:
        assert isinstance(result, dict)
        assert result["netAmount"] == expected


def test_both_spellings_compared_after_conversion() -> None:
    record = {
        **valid_record("invoices"),
        "issueDate": "2024-03-01",
        "issue_date": date(2024, 3, 1),
        "dueDate": "2024-03-31T23:30:00-05:00",
        "due_date": datetime(2024, 3, 31, 8, 0),
        "amount": Decimal("123.40"),
        "netAmount": "102.8",
        "net_amount": Decimal("102.80"),
    }
    payload = mapped("invoices", record, amount_unit="major")
    assert payload["issueDate"] == "2024-03-01"
    assert payload["dueDate"] == "2024-03-31"
    assert payload["amount"] == 12340
    assert payload["netAmount"] == 10280


def test_both_spellings_differ_with_huge_values_stay_short() -> None:
    record = {**valid_record("invoices"), "externalId": "a" * 100_000, "external_id": "b"}
    assert problems("invoices", record) == [
        Problem(
            "externalId",
            f"both externalId and external_id are set and differ ('{'a' * 40}…' vs 'b')",
        )
    ]


def test_snake_alias_alone_reports_under_the_leanpay_name() -> None:
    record = valid_record("invoices")
    del record["amount"], record["netAmount"]
    record["net_amount"] = "abc"
    assert problems("invoices", record) == [
        Problem("amount", "is required"),
        Problem("netAmount", "'abc' is not a decimal number"),
    ]


# --- missing, null, blank ----------------------------------------------------------------


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: f.required))
@pytest.mark.parametrize("how", ["absent", "null"])
def test_required_field_missing_or_null(resource: str, fld: Field, how: str) -> None:
    record = valid_record(resource)
    if how == "absent":
        del record[fld.name]
    else:
        record[fld.name] = None
    assert problems(resource, record) == [Problem(fld.name, missing_reason(fld))]


def missing_reason(fld: Field) -> str:
    """Why a record without a required field is refused."""
    if fld.refers_to is not None:
        return f"is required (a Leanpay id, or {fld.external_names[0]})"
    return "is required"


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: f.required))
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_required_field_blank(resource: str, fld: Field, blank: str) -> None:
    record = {**valid_record(resource), fld.name: blank}
    reason = "is required (it is empty)"
    if fld.name == "clientId" or fld.refers_to is not None:
        reason = missing_reason(fld)
    assert problems(resource, record) == [Problem(fld.name, reason)]


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: not f.required))
@pytest.mark.parametrize("value", [None, "", "  ", "absent"])
def test_optional_field_null_blank_or_absent_is_omitted(
    resource: str, fld: Field, value: Any
) -> None:
    record = valid_record(resource)
    if value == "absent":
        record.pop(fld.name, None)
    else:
        record[fld.name] = value
    expected = {k: v for k, v in VALID[resource][1].items() if k != fld.name}
    assert mapped(resource, record) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("amount", 0, 0),
        ("netAmount", 0, 0),
        ("externalId", 0, "0"),
        ("reference", "0", "0"),
    ],
)
def test_falsy_values_are_values(name: str, value: Any, expected: Any) -> None:
    assert field_result("invoices", name, value) == expected


def test_false_is_sent() -> None:
    assert field_result("addresses", "main", False) is False


def test_strings_are_not_trimmed() -> None:
    assert field_result("invoices", "reference", "  INV 1 ") == "  INV 1 "


# --- require_external_id -----------------------------------------------------------------


@pytest.mark.parametrize("resource", sorted(RESOURCES))
@pytest.mark.parametrize("value", ["absent", None, "", "   "])
def test_require_external_id_refuses_records_without_one(resource: str, value: Any) -> None:
    record = valid_record(resource)
    if value == "absent":
        del record["externalId"]
    else:
        record["externalId"] = value
    required = next(f for f in RESOURCES[resource].fields if f.name == "externalId").required
    reason = "is required (require_external_id is on)"
    if required:  # misc operations: required by Leanpay anyway
        reason = "is required" if value in ("absent", None) else "is required (it is empty)"
    assert problems(resource, record, require_external_id=True) == [Problem("externalId", reason)]


@pytest.mark.parametrize("value", ["erp-1", 0, "x" * 80])
def test_require_external_id_accepts_any_non_blank_id(value: Any) -> None:
    assert field_result("invoices", "externalId", value, require_external_id=True) == str(value)


def test_require_external_id_accepts_the_snake_alias() -> None:
    record = valid_record("invoices")
    record["external_id"] = record.pop("externalId")
    assert mapped("invoices", record, require_external_id=True) == VALID["invoices"][1]


def test_require_external_id_off_allows_records_without_one() -> None:
    record = valid_record("invoices")
    del record["externalId"]
    assert "externalId" not in mapped("invoices", record)


# --- client ------------------------------------------------------------------------------

CLIENT_RESOURCES = sorted(
    r.name for r in RESOURCES.values() if any(f.name == "clientId" for f in r.fields)
)


def client_result(resource: str, client: dict[str, Any], client_ids: dict[Any, str]) -> Any:
    record = valid_record(resource)
    del record["clientId"]
    record.update(client)
    result = mapper(resource, client_ids=client_ids).map(record)
    if isinstance(result, Rejection):
        assert len(result.problems) == 1, result
        return result.problems[0]
    assert "clientExternalId" not in result
    assert "client_external_id" not in result
    return result["clientId"]


def test_client_resources_are_the_expected_ones() -> None:
    assert CLIENT_RESOURCES == ["addresses", "credit_notes", "invoices", "misc_operations"]


LOOKED_UP_BY = "(the client code it is looked up by)"


@pytest.mark.parametrize("resource", CLIENT_RESOURCES)
@pytest.mark.parametrize(
    ("client", "client_ids", "expected"),
    [
        pytest.param({"clientId": U1}, {}, U1, id="uuid"),
        pytest.param({"clientId": U3}, {}, U3, id="uuid-upper-as-given"),
        pytest.param({"client_id": U1}, {}, U1, id="uuid-snake"),
        pytest.param({"clientId": uuid.UUID(U3)}, {}, U3.lower(), id="uuid-object"),
        pytest.param({"clientExternalId": "C-42"}, {"C-42": U2}, U2, id="mapped"),
        pytest.param({"client_external_id": "C-42"}, {"C-42": U2}, U2, id="mapped-snake"),
        pytest.param({"clientExternalId": 42}, {"42": U2}, U2, id="int-matches-str-key"),
        pytest.param({"clientExternalId": "42"}, {42: U2}, U2, id="int-key-in-settings"),
        pytest.param(
            {"clientExternalId": "C-42", "client_external_id": "C-42"},
            {"C-42": U2},
            U2,
            id="both-spellings-same",
        ),
        pytest.param(
            {"clientExternalId": 42, "client_external_id": "42"},
            {"42": U2},
            U2,
            id="both-spellings-same-key",
        ),
        pytest.param(
            {"clientId": U1, "clientExternalId": "C-42"}, {"C-42": U2}, U1, id="clientId-wins"
        ),
        pytest.param(
            {"clientId": U1, "clientExternalId": "unknown"}, {}, U1, id="clientId-wins-unmapped"
        ),
        pytest.param(
            {"clientId": None, "clientExternalId": "C-42"}, {"C-42": U2}, U2, id="null-clientId"
        ),
        pytest.param(
            {"clientId": " ", "clientExternalId": "C-42"}, {"C-42": U2}, U2, id="blank-clientId"
        ),
        pytest.param(
            {"clientExternalId": "", "client_external_id": "C-42"},
            {"C-42": U2},
            U2,
            id="blank-external-spelling",
        ),
        pytest.param(
            {"clientExternalId": "C-42", "client_external_id": " "},
            {"C-42": U2},
            U2,
            id="blank-snake-external-spelling",
        ),
        pytest.param(
            {"clientExternalId": "C-43"},
            {"C-42": U2},
            Problem(
                "clientId",
                "client 'C-43' (clientExternalId) has no Leanpay id in client_ids / "
                "client_ids_file",
            ),
            id="unmapped",
        ),
        pytest.param(
            {"clientExternalId": 43},
            {"42": U2},
            Problem(
                "clientId",
                "client '43' (clientExternalId) has no Leanpay id in client_ids / client_ids_file",
            ),
            id="unmapped-int",
        ),
        pytest.param(
            {"clientExternalId": "c-42"},
            {"C-42": U2},
            Problem(
                "clientId",
                "client 'c-42' (clientExternalId) has no Leanpay id in client_ids / "
                "client_ids_file",
            ),
            id="case-sensitive",
        ),
        pytest.param(
            {"clientExternalId": "C-42 "},
            {"C-42": U2},
            Problem(
                "clientId",
                "client 'C-42 ' (clientExternalId) has no Leanpay id in client_ids / "
                "client_ids_file",
            ),
            id="not-trimmed",
        ),
        pytest.param(
            {"clientExternalId": "C-42"},
            {"C-42": "not-a-uuid"},
            Problem(
                "clientId",
                "client_ids maps client 'C-42' to 'not-a-uuid', which is not a Leanpay client UUID",
            ),
            id="mapping-value-not-uuid",
        ),
        pytest.param(
            {"clientExternalId": "C-42", "client_external_id": "C-43"},
            {"C-42": U2, "C-43": U1},
            Problem(
                "clientId",
                "both clientExternalId and client_external_id are set and differ "
                "('C-42' vs 'C-43')",
            ),
            id="both-spellings-differ",
        ),
        pytest.param(
            {"clientExternalId": 4.2},
            {"4.2": U2},
            Problem("clientId", "clientExternalId must be a string or an integer, got float 4.2"),
            id="float-external-id",
        ),
        pytest.param(
            {"clientExternalId": True},
            {"True": U2},
            Problem("clientId", "clientExternalId must be a string or an integer, got bool True"),
            id="bool-external-id",
        ),
        pytest.param(
            {"clientId": "C-42"},
            {"C-42": U2},
            Problem("clientId", CLIENT_UUID_MSG.format("'C-42'")),
            id="source-id-in-clientId",
        ),
        pytest.param(
            {"clientId": 42}, {}, Problem("clientId", CLIENT_UUID_MSG.format("42")), id="int"
        ),
        pytest.param(
            {"client_id": U1.replace("-", "")},
            {},
            Problem("clientId", CLIENT_UUID_MSG.format(f"'{U1.replace('-', '')}'")),
            id="uuid-without-dashes",
        ),
        pytest.param(
            {"clientId": "{" + U1 + "}"},
            {},
            Problem("clientId", CLIENT_UUID_MSG.format("'{" + U1 + "}'")),
            id="uuid-in-braces",
        ),
        pytest.param(
            {"clientId": U1, "client_id": U2},
            {},
            Problem(
                "clientId", f"both clientId and client_id are set and differ ('{U1}' vs '{U2}')"
            ),
            id="clientId-spellings-differ",
        ),
        pytest.param({}, {"C-42": U2}, Problem("clientId", "is required"), id="neither"),
        pytest.param(
            {"clientId": None, "clientExternalId": None},
            {},
            Problem("clientId", f"is required, and clientExternalId {LOOKED_UP_BY} is empty"),
            id="both-null",
        ),
        pytest.param(
            {"clientExternalId": "  "},
            {},
            Problem("clientId", f"is required, and clientExternalId {LOOKED_UP_BY} is empty"),
            id="blank-external",
        ),
        pytest.param(
            {"client_external_id": ""},
            {},
            Problem("clientId", f"is required, and client_external_id {LOOKED_UP_BY} is empty"),
            id="blank-snake-external",
        ),
    ],
)
def test_client_resolution(
    resource: str, client: dict[str, Any], client_ids: dict[Any, str], expected: Any
) -> None:
    assert client_result(resource, client, client_ids) == expected


def test_client_ids_are_compared_as_exact_strings_for_large_ints() -> None:
    big = 10**30
    assert client_result("invoices", {"clientExternalId": big}, {str(big): U2}) == U2


def test_client_id_too_long_for_str_is_simply_unknown() -> None:
    huge = 10**5000
    assert client_result("invoices", {"clientExternalId": huge}, {"1": U2}) == Problem(
        "clientId",
        f"client '<an integer of {huge.bit_length()} bits>' (clientExternalId) has no Leanpay id "
        "in client_ids / client_ids_file",
    )


def test_resources_without_client_ignore_client_keys() -> None:
    record = {**valid_record("paybacks"), "clientId": "not-a-uuid", "clientExternalId": "C-1"}
    assert mapped("paybacks", record) == VALID["paybacks"][1]


# --- strings -----------------------------------------------------------------------------


class Color(enum.StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("INV-1", "INV-1", id="str"),
        pytest.param(12345, "12345", id="int"),
        pytest.param(-7, "-7", id="negative-int"),
        pytest.param(0, "0", id="zero"),
        pytest.param(10**79, "1" + "0" * 79, id="80-digit-int"),
        pytest.param("x" * 80, "x" * 80, id="80-chars"),
        pytest.param("é" * 80, "é" * 80, id="80-code-points"),
        pytest.param("😀" * 80, "😀" * 80, id="80-astral-code-points"),
        pytest.param(Color.RED, "red", id="str-subclass"),
        pytest.param("ligne\nsuivante", "ligne\nsuivante", id="newline-kept"),
        pytest.param(
            10**80,
            Problem("externalId", f"is 81 characters long; the limit is 80 ('1{'0' * 39}…')"),
            id="81-digit-int",
        ),
        pytest.param(
            "x" * 81,
            Problem("externalId", f"is 81 characters long; the limit is 80 ('{'x' * 40}…')"),
            id="81-chars",
        ),
        pytest.param(
            "y" * 100_000,
            Problem("externalId", f"is 100000 characters long; the limit is 80 ('{'y' * 40}…')"),
            id="100kB",
        ),
        pytest.param(
            10**5000,
            Problem(
                "externalId",
                f"is an integer too long to send (<an integer of {(10**5000).bit_length()} bits>)",
            ),
            id="int-beyond-str-limit",
        ),
        pytest.param(
            "a\x00b", Problem("externalId", "contains a NUL character ('a\\x00b')"), id="nul"
        ),
        pytest.param(True, Problem("externalId", "must be a string, got bool True"), id="bool"),
        pytest.param(1.5, Problem("externalId", "must be a string, got float 1.5"), id="float"),
        pytest.param(
            Decimal("42"), Problem("externalId", "must be a string, got Decimal 42"), id="decimal"
        ),
        pytest.param(
            date(2024, 1, 1),
            Problem("externalId", "must be a string, got date 2024-01-01"),
            id="date",
        ),
        pytest.param(["a"], Problem("externalId", "must be a string, got list ['a']"), id="list"),
        pytest.param(
            {"k": "v" * 100},
            Problem("externalId", "must be a string, got dict " + str({"k": "v" * 100})[:40] + "…"),
            id="dict-truncated",
        ),
    ],
)
def test_string_field(value: Any, expected: Any) -> None:
    result = field_result("invoices", "externalId", value)
    assert result == expected
    if not isinstance(expected, Problem):
        assert type(result) is str


def test_description_has_no_length_limit() -> None:
    assert field_result("misc_operations", "description", "d" * 1000) == "d" * 1000


@pytest.mark.parametrize(
    "name", ["company", "line1", "city", "postalCode", "country", "name", "line2", "line3"]
)
def test_every_address_text_field_is_limited_to_80(name: str) -> None:
    assert field_result("addresses", name, "a" * 80) == "a" * 80
    assert field_result("addresses", name, "a" * 81) == Problem(
        name, f"is 81 characters long; the limit is 80 ('{'a' * 40}…')"
    )


# --- money: minor units ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, 0, id="0"),
        pytest.param(1, 1, id="1"),
        pytest.param(12345, 12345, id="12345"),
        pytest.param(MAX_AMOUNT, MAX_AMOUNT, id="max"),
        pytest.param(Decimal("1234"), 1234, id="decimal"),
        pytest.param(Decimal("1234.0"), 1234, id="decimal-integral-with-zero-places"),
        pytest.param(Decimal("1234.000000000000000000000000000000000"), 1234, id="many-zeros"),
        pytest.param(Decimal("1.234E+3"), 1234, id="decimal-exponent"),
        pytest.param(Decimal("0.1") * 10, 1, id="decimal-arithmetic"),
        pytest.param(Decimal("-0"), 0, id="negative-zero"),
        pytest.param(Decimal("0E+1000000"), 0, id="zero-huge-exponent"),
        pytest.param(Decimal(MAX_AMOUNT), MAX_AMOUNT, id="decimal-max"),
        pytest.param("1234", 1234, id="string"),
        pytest.param(" 1234 ", 1234, id="string-padded"),
        pytest.param("+5", 5, id="string-plus"),
        pytest.param("-0", 0, id="string-negative-zero"),
        pytest.param("1234.00", 1234, id="string-zero-places"),
        pytest.param("1e3", 1000, id="string-exponent"),
        pytest.param("1E+3", 1000, id="string-exponent-upper"),
        pytest.param("12.5e1", 125, id="string-fraction-exponent"),
        pytest.param("9007199254740991", MAX_AMOUNT, id="string-max"),
        pytest.param(-1, Problem("amount", "must be >= 0, got -1"), id="negative-int"),
        pytest.param(
            Decimal("-0.01"), Problem("amount", "must be >= 0, got -0.01"), id="negative-decimal"
        ),
        pytest.param("-1", Problem("amount", "must be >= 0, got '-1'"), id="negative-string"),
        pytest.param(
            Decimal("-Infinity"),
            Problem("amount", "-Infinity is not a finite number"),
            id="negative-infinity",
        ),
        pytest.param(Decimal("12.5"), Problem("amount", WHOLE_MSG.format("12.5")), id="fraction"),
        pytest.param("12.5", Problem("amount", WHOLE_MSG.format("'12.5'")), id="string-fraction"),
        pytest.param(
            Decimal("1E-999999999"),
            Problem("amount", WHOLE_MSG.format("1E-999999999")),
            id="tiny",
        ),
        pytest.param(12.0, Problem("amount", FLOAT_MSG.format("12.0")), id="float-integral"),
        pytest.param(12.5, Problem("amount", FLOAT_MSG.format("12.5")), id="float"),
        pytest.param(0.0, Problem("amount", FLOAT_MSG.format("0.0")), id="float-zero"),
        pytest.param(float("nan"), Problem("amount", FLOAT_MSG.format("nan")), id="float-nan"),
        pytest.param(True, Problem("amount", "must be an amount, got bool True"), id="true"),
        pytest.param(False, Problem("amount", "must be an amount, got bool False"), id="false"),
        pytest.param(Decimal("NaN"), Problem("amount", "NaN is not a finite number"), id="nan"),
        pytest.param(Decimal("sNaN"), Problem("amount", "sNaN is not a finite number"), id="snan"),
        pytest.param(
            Decimal("Infinity"), Problem("amount", "Infinity is not a finite number"), id="inf"
        ),
        pytest.param("NaN", Problem("amount", "'NaN' is not a finite number"), id="string-nan"),
        pytest.param("inf", Problem("amount", "'inf' is not a finite number"), id="string-inf"),
        pytest.param(
            "-Infinity",
            Problem("amount", "'-Infinity' is not a finite number"),
            id="string-negative-infinity",
        ),
        pytest.param("12,50", Problem("amount", POINT_MSG.format("'12,50'")), id="comma"),
        pytest.param("abc", Problem("amount", "'abc' is not a decimal number"), id="abc"),
        pytest.param("1.2.3", Problem("amount", "'1.2.3' is not a decimal number"), id="1.2.3"),
        pytest.param(
            "1_000", Problem("amount", "'1_000' is not a decimal number"), id="underscore"
        ),
        pytest.param("1 000", Problem("amount", POINT_MSG.format("'1 000'")), id="space"),
        pytest.param("١٢٣", Problem("amount", "'١٢٣' is not a decimal number"), id="arabic-digits"),
        pytest.param("0x10", Problem("amount", "'0x10' is not a decimal number"), id="hex"),
        pytest.param("1e", Problem("amount", "'1e' is not a decimal number"), id="bare-exponent"),
        pytest.param("€12", Problem("amount", "'€12' is not a decimal number"), id="symbol"),
        pytest.param(
            MAX_AMOUNT + 1,
            Problem(
                "amount",
                "9007199254740992 is too large: at most 9007199254740991 minor units can be sent",
            ),
            id="max-plus-one",
        ),
        pytest.param(
            Decimal("1E+999999999"),
            Problem(
                "amount",
                "1E+999999999 is too large: at most 9007199254740991 minor units can be sent",
            ),
            id="huge-exponent",
        ),
        pytest.param(
            "1" * 100_000,
            Problem(
                "amount",
                f"'{'1' * 40}…' is too large: at most 9007199254740991 minor units can be sent",
            ),
            id="100k-digits",
        ),
        pytest.param(
            "1e99999999999999999999",
            Problem("amount", "'1e99999999999999999999' is out of range"),
            id="exponent-out-of-range",
        ),
        pytest.param(
            "z" * 100_000,
            Problem("amount", f"'{'z' * 40}…' is not a decimal number"),
            id="100kB-garbage",
        ),
        pytest.param(
            [1],
            Problem(
                "amount",
                "must be an amount (integer, decimal.Decimal or numeric string), got list [1]",
            ),
            id="list",
        ),
        pytest.param(
            date(2024, 1, 1),
            Problem(
                "amount",
                "must be an amount (integer, decimal.Decimal or numeric string), "
                "got date 2024-01-01",
            ),
            id="date",
        ),
    ],
)
def test_money_minor_units(value: Any, expected: Any) -> None:
    result = field_result("invoices", "amount", value)
    assert result == expected
    if not isinstance(expected, Problem):
        assert type(result) is int


def test_minor_is_the_default_unit() -> None:
    assert DEFAULTS["amount_unit"] == "minor"
    assert field_result("invoices", "amount", Decimal("123.45")) == Problem(
        "amount", WHOLE_MSG.format("123.45")
    )


# --- money: major units ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, 0, id="0"),
        pytest.param(1, 100, id="1"),
        pytest.param(12345, 1234500, id="12345"),
        pytest.param(Decimal("123.45"), 12345, id="decimal"),
        pytest.param(Decimal("12.340"), 1234, id="trailing-zero"),
        pytest.param(Decimal("12.3"), 1230, id="one-place"),
        pytest.param(Decimal("0.01"), 1, id="one-cent"),
        pytest.param(Decimal("0.1") * 3, 30, id="decimal-arithmetic"),
        pytest.param(Decimal("1E+3"), 100000, id="decimal-exponent"),
        pytest.param(Decimal("-0.00"), 0, id="negative-zero"),
        pytest.param(Decimal("0.29"), 29, id="float-would-give-28"),
        pytest.param(Decimal("1.15"), 115, id="float-would-give-114"),
        pytest.param(Decimal("4.35"), 435, id="float-would-give-434"),
        pytest.param(Decimal("90071992547409.91"), MAX_AMOUNT, id="max"),
        pytest.param(Decimal("12.34" + "0" * 60), 1234, id="sixty-trailing-zeros"),
        pytest.param("123.45", 12345, id="string"),
        pytest.param(" 123.45\n", 12345, id="string-padded"),
        pytest.param(".5", 50, id="string-leading-point"),
        pytest.param("5.", 500, id="string-trailing-point"),
        pytest.param("1e3", 100000, id="string-exponent"),
        pytest.param("1.2345e2", 12345, id="string-fraction-exponent"),
        pytest.param("12345e-2", 12345, id="string-negative-exponent"),
        pytest.param("12345e-4", Problem("amount", PLACES_MSG.format("'12345e-4'")), id="1.2345"),
        pytest.param(
            Decimal("12.345"), Problem("amount", PLACES_MSG.format("12.345")), id="three-places"
        ),
        pytest.param(
            "12.345", Problem("amount", PLACES_MSG.format("'12.345'")), id="string-three-places"
        ),
        pytest.param(
            Decimal("1.0000000000000000000000000000000000000001"),
            Problem("amount", PLACES_MSG.format("1." + "0" * 38 + "…")),
            id="context-precision-would-round",
        ),
        pytest.param(
            Decimal("0.001"), Problem("amount", PLACES_MSG.format("0.001")), id="tenth-of-cent"
        ),
        pytest.param(-1, Problem("amount", "must be >= 0, got -1"), id="negative"),
        pytest.param(
            Decimal("-0.01"), Problem("amount", "must be >= 0, got -0.01"), id="negative-cent"
        ),
        pytest.param(12.34, Problem("amount", FLOAT_MSG.format("12.34")), id="float"),
        pytest.param(True, Problem("amount", "must be an amount, got bool True"), id="bool"),
        pytest.param(Decimal("NaN"), Problem("amount", "NaN is not a finite number"), id="nan"),
        pytest.param(
            Decimal("Infinity"), Problem("amount", "Infinity is not a finite number"), id="inf"
        ),
        pytest.param(
            "Infinity", Problem("amount", "'Infinity' is not a finite number"), id="s-inf"
        ),
        pytest.param("12,50", Problem("amount", POINT_MSG.format("'12,50'")), id="comma"),
        pytest.param(
            Decimal("90071992547409.92"),
            Problem(
                "amount",
                "90071992547409.92 (major units) is too large: "
                "at most 9007199254740991 minor units can be sent",
            ),
            id="max-plus-one-cent",
        ),
        pytest.param(
            90071992547410,
            Problem(
                "amount",
                "90071992547410 (major units) is too large: "
                "at most 9007199254740991 minor units can be sent",
            ),
            id="int-too-large",
        ),
        pytest.param(
            Decimal("1E+999999999"),
            Problem(
                "amount",
                "1E+999999999 (major units) is too large: "
                "at most 9007199254740991 minor units can be sent",
            ),
            id="huge-exponent",
        ),
    ],
)
def test_money_major_units(value: Any, expected: Any) -> None:
    result = field_result("invoices", "amount", value, amount_unit="major")
    assert result == expected
    if not isinstance(expected, Problem):
        assert type(result) is int


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: f.kind is Kind.MONEY))
@pytest.mark.parametrize(("unit", "expected"), [("minor", 1234), ("major", 123400)])
def test_every_money_field_follows_amount_unit(
    resource: str, fld: Field, unit: str, expected: int
) -> None:
    assert field_result(resource, fld.name, 1234, amount_unit=unit) == expected
    assert field_result(resource, fld.name, -1, amount_unit=unit) == Problem(
        fld.name, "must be >= 0, got -1"
    )


def _reference_cents(value: Decimal, places: int) -> int | None:
    """Exact rational arithmetic, independent of the implementation: None = refused."""
    exact: Fraction = Fraction(value) * 10**places
    if exact < 0 or exact.denominator != 1 or exact > MAX_AMOUNT:
        return None
    return exact.numerator


def _random_decimals(rng: random.Random, count: int) -> list[Decimal]:
    out = []
    for _ in range(count):
        digits = rng.randrange(10 ** rng.randint(1, 20))
        exponent = rng.randint(-6, 4)
        sign = "-" if rng.random() < 0.1 else ""
        zeros = "0" * rng.choice((0, 0, 0, 1, 3, 30))
        text = f"{sign}{digits}{zeros}E{exponent - len(zeros)}"
        out.append(Decimal(text))
    return out


@pytest.mark.parametrize("unit", ["minor", "major"])
def test_property_conversion_equals_exact_decimal_arithmetic(unit: str) -> None:
    """For random Decimals and their string forms, the result is exactly value * 10**places
    (or a refusal exactly when that is not a non-negative integer <= MAX_AMOUNT), with the
    float-mixing trap armed so any float/Decimal mix would raise."""
    places = 2 if unit == "major" else 0
    m = mapper("paybacks", amount_unit=unit)
    base = valid_record("paybacks")
    rng = random.Random(20240301)
    checked = accepted = 0
    with localcontext() as ctx:
        ctx.traps[FloatOperation] = True
        for value in _random_decimals(rng, 4000):
            expected = _reference_cents(value, places)
            forms: list[Any] = [value, str(value), format(value, "f")]
            if value == value.to_integral_value() and value.adjusted() < 30:
                forms.append(int(value))
            for form in forms:
                result = m.map({**base, "amount": form})
                if expected is None:
                    assert isinstance(result, Rejection), (form, result)
                    assert [p.field for p in result.problems] == ["amount"]
                else:
                    assert isinstance(result, dict), (form, result)
                    assert type(result["amount"]) is int
                    assert result["amount"] == expected, form
                    accepted += 1
                checked += 1
    assert checked > 12000
    assert accepted > 2000  # the generator reaches both outcomes often


# --- dates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2024-03-01", "2024-03-01", id="date-string"),
        pytest.param("2024-02-29", "2024-02-29", id="leap-day"),
        pytest.param("2000-02-29", "2000-02-29", id="leap-century"),
        pytest.param("0001-01-01", "0001-01-01", id="min"),
        pytest.param("9999-12-31", "9999-12-31", id="max"),
        pytest.param(date(2024, 2, 29), "2024-02-29", id="date"),
        pytest.param(datetime(2024, 3, 1, 23, 30), "2024-03-01", id="naive-datetime"),
        pytest.param(
            datetime(2024, 3, 1, 23, 30, tzinfo=MINUS_5H), "2024-03-01", id="aware-negative"
        ),
        pytest.param(
            datetime(2024, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=14))),
            "2024-03-01",
            id="aware-plus-14",
        ),
        pytest.param(datetime(2024, 3, 1, tzinfo=UTC), "2024-03-01", id="aware-utc"),
        pytest.param("2024-03-01T23:30:00-05:00", "2024-03-01", id="offset-keeps-local-day"),
        pytest.param("2024-03-01T00:30:00+14:00", "2024-03-01", id="plus-14"),
        pytest.param("2024-03-01T23:30:00Z", "2024-03-01", id="z"),
        pytest.param("2024-03-01T23:30:00z", "2024-03-01", id="lower-z"),
        pytest.param("2024-03-01 23:30:00", "2024-03-01", id="space-separator"),
        pytest.param("2024-03-01t23:30", "2024-03-01", id="lower-t"),
        pytest.param("2024-03-01T23:30:00.123456", "2024-03-01", id="microseconds"),
        pytest.param("2024-03-01T23:30:00.123+01:00", "2024-03-01", id="milliseconds-offset"),
        pytest.param("2024-03-01T23:30:00.1234567Z", "2024-03-01", id="seven-digits"),
        pytest.param("2024-02-29T12:00:00Z", "2024-02-29", id="leap-day-datetime"),
        pytest.param("2023-02-29", Problem("issueDate", "'2023-02-29' is not a calendar date")),
        pytest.param("2024-02-30", Problem("issueDate", "'2024-02-30' is not a calendar date")),
        pytest.param("2024-04-31", Problem("issueDate", "'2024-04-31' is not a calendar date")),
        pytest.param("2024-13-01", Problem("issueDate", "'2024-13-01' is not a calendar date")),
        pytest.param("2024-00-10", Problem("issueDate", "'2024-00-10' is not a calendar date")),
        pytest.param("2024-01-00", Problem("issueDate", "'2024-01-00' is not a calendar date")),
        pytest.param("0000-01-01", Problem("issueDate", "'0000-01-01' is not a calendar date")),
        pytest.param(
            "2023-02-29T10:00:00Z",
            Problem("issueDate", "'2023-02-29T10:00:00Z' is not a calendar date"),
            id="impossible-day-in-datetime",
        ),
        *(
            pytest.param(text, Problem("issueDate", NOT_A_DATE_MSG.format(repr(text))), id=text)
            for text in (
                "01/03/2024",
                "2024/03/01",
                "20240301",
                "2024-W09-5",
                "2024-061",
                "2024-3-1",
                "24-03-01",
                " 2024-03-01",
                "\uff12\uff10\uff12\uff14-03-01",
                "2024-03-0\uff11",
                "March 1, 2024",
            )
        ),
        *(
            pytest.param(text, Problem("issueDate", NOT_ISO_MSG.format(repr(text))), id=text)
            for text in (
                "2024-03-01 ",
                "2024-03-01T",
                "2024-03-01T25:00",
                "2024-03-01T10:00:00+25:00",
                "2024-03-01X10:00",
                "2024-03-01T10:00 ",
                "2024-03-01Tnoon",
                "2024-03-01junk",
            )
        ),
        pytest.param(
            "2024-03-01T" + "9" * 100_000,
            Problem("issueDate", NOT_ISO_MSG.format(f"'2024-03-01T{'9' * 29}…'")),
            id="100kB",
        ),
        pytest.param(
            20240301,
            Problem(
                "issueDate",
                "must be a date (YYYY-MM-DD string, date or datetime), got int 20240301",
            ),
            id="int",
        ),
        pytest.param(
            1709251200.0,
            Problem(
                "issueDate",
                "must be a date (YYYY-MM-DD string, date or datetime), got float 1709251200.0",
            ),
            id="float-epoch",
        ),
        pytest.param(
            True,
            Problem(
                "issueDate", "must be a date (YYYY-MM-DD string, date or datetime), got bool True"
            ),
            id="bool",
        ),
    ],
)
def test_date_field(value: Any, expected: Any) -> None:
    assert field_result("invoices", "issueDate", value) == expected


class DateText(str):
    """A str subclass, as some ORMs and stream maps produce."""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (DateText("2024-03-01"), "2024-03-01"),
        (DateText("2024-03-01T23:30:00-05:00"), "2024-03-01"),
        (DateText("2024-02-30"), Problem("issueDate", "'2024-02-30' is not a calendar date")),
    ],
)
def test_date_str_subclass(value: Any, expected: Any) -> None:
    result = field_result("invoices", "issueDate", value)
    assert result == expected
    if isinstance(expected, str):
        assert type(result) is str


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: f.kind is Kind.DATE))
def test_every_date_field(resource: str, fld: Field) -> None:
    assert field_result(resource, fld.name, datetime(2024, 3, 1, 23, 30, tzinfo=MINUS_5H)) == (
        "2024-03-01"
    )
    assert field_result(resource, fld.name, "2024-02-30") == Problem(
        fld.name, "'2024-02-30' is not a calendar date"
    )


# --- uuid, boolean, currency -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(U1, U1, id="lower"),
        pytest.param(U3, U3, id="upper"),
        pytest.param(
            "3F2b8C1e-7a4d-4e2b-9c1f-0a1b2c3d4e5f",
            "3F2b8C1e-7a4d-4e2b-9c1f-0a1b2c3d4e5f",
            id="mixed",
        ),
        pytest.param(uuid.UUID(U3), U3.lower(), id="uuid-object"),
        *(
            pytest.param(
                text,
                Problem("invoiceId", f"{show(text)} is not a UUID (8-4-4-4-12 hexadecimal digits)"),
                id=label,
            )
            for label, text in (
                ("no-dashes", U1.replace("-", "")),
                ("braces", "{" + U1 + "}"),
                ("urn", "urn:uuid:" + U1),
                ("short", U1[:-1]),
                ("long", U1 + "0"),
                ("non-hex", "g" + U1[1:]),
                ("fullwidth-digit", "\uff13" + U1[1:]),
                ("dashes-moved", U1[:7] + "-" + U1[7] + U1[9:]),
                ("padded", " " + U1[1:]),
                ("100kB", "f" * 100_000),
            )
        ),
        pytest.param(42, Problem("invoiceId", "must be a UUID string, got int 42"), id="int"),
    ],
)
def test_uuid_field(value: Any, expected: Any) -> None:
    assert field_result("links", "invoiceId", value) == expected


def test_show_truncates_long_values() -> None:
    assert show("f" * 100_000) == "'" + "f" * 40 + "…'"
    assert show("short") == "'short'"
    assert show(Decimal("1." + "0" * 100)) == "1." + "0" * 38 + "…"
    assert show(10**5000) == f"<an integer of {(10**5000).bit_length()} bits>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("False", False),
        (1, Problem("main", "must be true or false, got int 1")),
        (0, Problem("main", "must be true or false, got int 0")),
        ("yes", Problem("main", "must be true or false, got str 'yes'")),
        ("1", Problem("main", "must be true or false, got str '1'")),
        (" true", Problem("main", "must be true or false, got str ' true'")),
        (Decimal(1), Problem("main", "must be true or false, got Decimal 1")),
        ("", OMITTED),
        (None, OMITTED),
    ],
)
def test_boolean_field(value: Any, expected: Any) -> None:
    result = field_result("addresses", "main", value)
    assert result == expected
    if isinstance(expected, bool):
        assert result is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("EUR", "EUR"),
        ("eur", "EUR"),
        ("uSd", "USD"),
        ("EURO", Problem("currency", "'EURO' is not a three-letter currency code (e.g. EUR)")),
        ("EU", Problem("currency", "'EU' is not a three-letter currency code (e.g. EUR)")),
        ("E1R", Problem("currency", "'E1R' is not a three-letter currency code (e.g. EUR)")),
        ("ÉUR", Problem("currency", "'ÉUR' is not a three-letter currency code (e.g. EUR)")),
        (" EU", Problem("currency", "' EU' is not a three-letter currency code (e.g. EUR)")),
        ("€", Problem("currency", "'€' is not a three-letter currency code (e.g. EUR)")),
        (978, Problem("currency", "must be a three-letter currency code, got int 978")),
        ("", Problem("currency", "is required (it is empty)")),
        (None, Problem("currency", "is required")),
    ],
)
def test_currency_field(value: Any, expected: Any) -> None:
    assert field_result("misc_operations", "currency", value) == expected


# --- all problems of a record ------------------------------------------------------------


def test_all_problems_are_collected_in_field_order() -> None:
    record = {
        "sentDate": "2023-02-29",  # record key order does not matter
        "external_id": 1.5,
        "clientId": "C-1",
        "reference": "r" * 81,
        "amount": -1,
        "netAmount": 12.5,
        "issueDate": "01/03/2024",
        "_sdc_sequence": "ignored",
    }
    assert problems("invoices", record, require_external_id=True) == [
        Problem("clientId", CLIENT_UUID_MSG.format("'C-1'")),
        Problem("reference", f"is 81 characters long; the limit is 80 ('{'r' * 40}…')"),
        Problem("amount", "must be >= 0, got -1"),
        Problem("netAmount", FLOAT_MSG.format("12.5")),
        Problem("issueDate", NOT_A_DATE_MSG.format("'01/03/2024'")),
        Problem("dueDate", "is required"),
        Problem("externalId", "must be a string, got float 1.5"),
        Problem("sentDate", "'2023-02-29' is not a calendar date"),
    ]


def test_empty_record_lists_every_required_field() -> None:
    assert problems("misc_operations", {}) == [
        Problem("clientId", "is required"),
        Problem("externalId", "is required"),
        Problem("amount", "is required"),
        Problem("defaultCurrencyAmount", "is required"),
        Problem("date", "is required"),
        Problem("currency", "is required"),
    ]


def test_rejection_is_a_value() -> None:
    first = mapper("paybacks").map({})
    second = mapper("paybacks").map({"_sdc_sequence": 1})
    assert first == second
    assert isinstance(first, Rejection)
    assert isinstance(first.problems, tuple)
    with pytest.raises(AttributeError):
        first.problems = ()  # type: ignore[misc]


def test_invalid_value_carries_its_reason() -> None:
    error = InvalidValue("is required")
    assert error.reason == "is required"
    assert str(error) == "is required"


def test_resource_table_kinds_all_have_converters() -> None:
    for resource in RESOURCES.values():
        assert RecordMapper(resource, settings_with(amount_unit="major")).resource is resource


# -- the memo of accepted values ------------------------------------------------------

TRICKY_VALUES: list[Any] = [
    None, "", " ", "\t", "x", "x" * 80, "x" * 81, "a\x00b", 0, 1, -1, 12345, 2**53 - 1, 2**53,
    True, False, 1.5, Decimal("12.34"), Decimal("12.345"), Decimal("-0"), Decimal("NaN"),
    "12.50", " 7 ", "1e3", "abc", U1, U3, U1.upper(), "{" + U1 + "}", "2024-02-29",
    "2023-02-29", "2024-03-01T23:30:00-05:00", "2024-03-01z", date(2024, 3, 1),
    datetime(2024, 3, 1, 9), "EUR", "eur", "EURO", "true", "FALSE", "yes", uuid.UUID(U2),
]  # fmt: skip


@pytest.mark.parametrize("resource", sorted(RESOURCES))
@pytest.mark.parametrize("unit", ["minor", "major"])
def test_a_long_lived_mapper_agrees_with_a_fresh_one_on_random_records(
    resource: str, unit: str
) -> None:
    """Thousands of records built from tricky values, both spellings, extra keys: the
    stream's mapper, whose memo fills up as it goes, maps each exactly as a new one."""
    rng = random.Random(f"{resource}-{unit}")
    fields = RESOURCES[resource].fields
    settings = settings_with(amount_unit=unit, client_ids={"C-1": U2, "7": U1})
    long_lived = RecordMapper(RESOURCES[resource], settings)
    for _ in range(3000):
        record: dict[str, Any] = {}
        for fld in fields:
            for key in {fld.name, fld.snake_name}:
                if rng.random() < 0.6:
                    valid = VALID[resource][0].get(fld.name)
                    record[key] = valid if rng.random() < 0.5 else rng.choice(TRICKY_VALUES)
        if rng.random() < 0.3:
            record[rng.choice(["clientExternalId", "client_external_id"])] = rng.choice(
                ["C-1", 7, "C-2", "", None]
            )
        if rng.random() < 0.3:
            record["_sdc_sequence"] = rng.randrange(10**6)
        assert long_lived.map(record) == RecordMapper(RESOURCES[resource], settings).map(record)


def test_dates_beyond_the_memo_size_are_still_checked_and_a_refusal_is_never_remembered() -> None:
    m = RecordMapper(RESOURCES["invoices"], settings_with())
    for day in range(REMEMBERED_VALUES + 500):
        issued = (date(2000, 1, 1) + timedelta(days=day)).isoformat()
        assert not isinstance(m.map({**valid_record("invoices"), "issueDate": issued}), Rejection)
    for _ in range(2):
        result = m.map({**valid_record("invoices"), "issueDate": "2023-02-29"})
        assert result == Rejection((Problem("issueDate", "'2023-02-29' is not a calendar date"),))


# -- references by externalId ------------------------------------------------------------


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: f.refers_to is not None))
@pytest.mark.parametrize("spelling", [0, 1])
def test_a_reference_may_name_the_object_by_its_external_id(
    resource: str, fld: Field, spelling: int
) -> None:
    record = valid_record(resource)
    del record[fld.name]
    record[fld.external_names[spelling]] = "ERP-77"
    result = mapped(resource, record)
    assert result[fld.name] == Reference(fld.refers_to or "", "ERP-77")
    assert list(result) == list(VALID[resource][1])  # Leanpay's field order is kept


def test_a_leanpay_id_given_directly_wins_over_an_external_id() -> None:
    record = {**valid_record("links"), "invoiceExternalId": "INV-1"}
    assert mapped("links", record) == VALID["links"][1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4242, Reference("invoices", "4242")),
        ("  ", Problem("invoiceId", "is required (a Leanpay id, or invoiceExternalId)")),
        (
            "x" * 81,
            Problem("invoiceId", f"invoiceExternalId '{'x' * 40}…' cannot be an externalId"),
        ),
        (
            1.5,
            Problem("invoiceId", "invoiceExternalId must be a string or an integer, got float 1.5"),
        ),
    ],
)
def test_an_external_id_reference_is_checked_like_an_external_id(value: Any, expected: Any) -> None:
    record = valid_record("links")
    del record["invoiceId"]
    record["invoiceExternalId"] = value
    result = mapper("links").map(record)
    if isinstance(expected, Problem):
        assert result == Rejection((expected,))
    else:
        assert not isinstance(result, Rejection)
        assert result["invoiceId"] == expected


def test_both_spellings_of_a_reference_must_agree() -> None:
    record = valid_record("paybacks")
    del record["creditNoteId"]
    record.update(creditNoteExternalId="CN-1", credit_note_external_id="CN-2")
    assert problems("paybacks", record) == [
        Problem(
            "creditNoteId",
            "both creditNoteExternalId and credit_note_external_id are set and differ "
            "('CN-1' vs 'CN-2')",
        )
    ]


# --- amounts written with a decimal comma (decimal_separator ",") ------------------------

COMMA_MSG = (
    "{} is not an amount written with a decimal comma "
    "(1234,50, 1 234,50 or 1.234,50: groups of three digits)"
)


def test_the_default_decimal_separator_is_a_point_and_the_mapper_built_without_it_agrees() -> None:
    assert DEFAULTS["decimal_separator"] == "."
    assert DEFAULTS["date_formats"] == []
    bare = RecordMapper(RESOURCES["invoices"], MappingSettings("major", {}, False))
    assert bare.map({**valid_record("invoices"), "amount": "1234.50"})["amount"] == 123450  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1 234,50", 123450, id="space"),
        pytest.param("1\u00a0234,50", 123450, id="no-break-space"),
        pytest.param("1\u202f234,50", 123450, id="narrow-no-break-space"),
        pytest.param("1.234,50", 123450, id="dot"),
        pytest.param("1234,50", 123450, id="ungrouped"),
        pytest.param("1234,5", 123450, id="one-decimal"),
        pytest.param("0,05", 5, id="cents"),
        pytest.param(",5", 50, id="no-integer-part"),
        pytest.param("12", 1200, id="integer"),
        pytest.param("12,", 1200, id="trailing-comma"),
        pytest.param("0", 0, id="zero"),
        pytest.param("0,00", 0, id="zero-cents"),
        pytest.param("+12,00", 1200, id="plus"),
        pytest.param(" 1 234,50\t", 123450, id="surrounding-whitespace"),
        pytest.param("\u00a01 234,50\u202f", 123450, id="surrounding-no-break-spaces"),
        pytest.param("1 234", 123400, id="grouped-integer"),
        pytest.param("1.234", 123400, id="dot-grouped-integer"),
        pytest.param("1 234 567,89", 123456789, id="two-groups"),
        pytest.param("1.234.567,89", 123456789, id="two-dot-groups"),
        pytest.param("1 234\u00a0567,89", 123456789, id="spaces-of-two-kinds"),
        pytest.param("90 071 992 547 409,91", MAX_AMOUNT, id="max"),
        pytest.param(Decimal("1234.5"), 123450, id="json-number-as-is"),
        pytest.param(1234, 123400, id="int-as-is"),
        pytest.param(
            "90 071 992 547 409,92",
            Problem(
                "amount",
                "'90 071 992 547 409,92' (major units) is too large: at most "
                "9007199254740991 minor units can be sent",
            ),
            id="too-large",
        ),
        pytest.param(
            "12,345", Problem("amount", PLACES_MSG.format("'12,345'")), id="three-decimals"
        ),
        pytest.param(
            "-1 234,50", Problem("amount", "must be >= 0, got '-1 234,50'"), id="negative"
        ),
        pytest.param("-0,00", 0, id="negative-zero"),
        pytest.param(12.5, Problem("amount", FLOAT_MSG.format("12.5")), id="float"),
        pytest.param("NaN", Problem("amount", "'NaN' is not a finite number"), id="nan"),
        pytest.param("-inf", Problem("amount", "'-inf' is not a finite number"), id="inf"),
        *(
            pytest.param(text, Problem("amount", COMMA_MSG.format(repr(text))), id=why)
            for why, text in {
                "decimal-point": "1234.50",
                "point-two-decimals": "12.50",
                "english-grouping": "1,234.50",
                "two-commas": "1,234,5",
                "mixed-space-and-dot": "1 234.567,00",
                "mixed-dot-and-space": "1.234 567,00",
                "short-group": "1 23,00",
                "long-group": "1 2345,00",
                "leading-zero-group": "0.500",
                "leading-zero-space-group": "0 500",
                "group-after-comma": "1,234 5",
                "double-space": "1  234,50",
                "euro-sign": "1 234,50 €",
                "euro-prefix": "€12",
                "underscore": "1_000",
                "exponent": "1e3",
                "apostrophe": "1'234,50",
                "arabic-digits": "\u0661\u0662\u0663",
                "letters": "douze",
                "sign-alone": "-",
                "comma-alone": ",",
            }.items()
        ),
    ],
)
def test_money_with_a_decimal_comma(value: Any, expected: Any) -> None:
    result = field_result("invoices", "amount", value, amount_unit="major", decimal_separator=",")
    assert result == expected
    if not isinstance(expected, Problem):
        assert type(result) is int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1 234", 1234),
        ("1.234", 1234),
        ("1234,00", 1234),
        ("1 234,5", Problem("amount", WHOLE_MSG.format("'1 234,5'"))),
    ],
)
def test_money_with_a_decimal_comma_in_minor_units(value: str, expected: Any) -> None:
    assert field_result("invoices", "amount", value, decimal_separator=",") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1.234,5", Problem("amount", POINT_MSG.format("'1.234,5'")), id="french"),
        pytest.param("1 234,50", Problem("amount", POINT_MSG.format("'1 234,50'")), id="space"),
        pytest.param("1,234.50", Problem("amount", "'1,234.50' is not a decimal number")),
        pytest.param("1234.50", 123450, id="plain"),
    ],
)
def test_a_decimal_point_refuses_what_a_decimal_comma_would_read(value: str, expected: Any) -> None:
    assert field_result("invoices", "amount", value, amount_unit="major") == expected


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: f.kind is Kind.MONEY))
def test_every_money_field_follows_decimal_separator(resource: str, fld: Field) -> None:
    assert (
        field_result(resource, fld.name, "1 234,56", amount_unit="major", decimal_separator=",")
        == 123456
    )


def test_an_unknown_decimal_separator_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="decimal_separator must be"):
        RecordMapper(RESOURCES["invoices"], settings_with(decimal_separator="'"))


def _french(value: Decimal, separator: str) -> str:
    """`value` as a French ERP writes it: groups of three, a decimal comma."""
    whole, _, fraction = format(value, "f").partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    groups = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return sign + separator.join(groups or ["0"]) + ("," + fraction if fraction else "")


@pytest.mark.parametrize("unit", ["minor", "major"])
def test_property_decimal_comma_conversion_equals_exact_decimal_arithmetic(unit: str) -> None:
    """Random amounts written the French way (every thousands separator) convert exactly
    as their Decimal would, with any float/Decimal mix trapped."""
    places = 2 if unit == "major" else 0
    m = mapper("paybacks", amount_unit=unit, decimal_separator=",")
    base = valid_record("paybacks")
    rng = random.Random(20240405)
    accepted = 0
    with localcontext() as ctx:
        ctx.traps[FloatOperation] = True
        for value in _random_decimals(rng, 2000):
            if value.adjusted() > 25:
                continue
            expected = _reference_cents(value, places)
            for separator in (" ", "\u00a0", "\u202f", ".", ""):
                result = m.map({**base, "amount": _french(value, separator)})
                if expected is None:
                    assert isinstance(result, Rejection), (value, result)
                else:
                    assert isinstance(result, dict), (value, separator, result)
                    assert result["amount"] == expected
                    accepted += 1
    assert accepted > 1000


# --- dates in declared formats (date_formats) ---------------------------------------------

DMY = ("%d/%m/%Y",)
NOT_DMY_MSG = "{} is not a date in date_formats (%d/%m/%Y) nor ISO 8601 (YYYY-MM-DD)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("05/04/2024", "2024-04-05", id="french"),
        pytest.param("5/4/2024", "2024-04-05", id="unpadded"),
        pytest.param(" 05/04/2024 ", "2024-04-05", id="surrounding-spaces"),
        pytest.param("29/02/2024", "2024-02-29", id="leap-day"),
        pytest.param("31/12/9999", "9999-12-31", id="max"),
        pytest.param("2024-04-05", "2024-04-05", id="iso-still-read"),
        pytest.param("2024-04-05T23:30:00-05:00", "2024-04-05", id="iso-datetime-still-read"),
        pytest.param(date(2024, 4, 5), "2024-04-05", id="date"),
        pytest.param(datetime(2024, 4, 5, 23, 30), "2024-04-05", id="datetime"),
        pytest.param(DateText("05/04/2024"), "2024-04-05", id="str-subclass"),
        pytest.param(
            "31/02/2024",
            Problem("issueDate", "'31/02/2024' is not a calendar date (%d/%m/%Y)"),
            id="31-february",
        ),
        pytest.param(
            "29/02/2023",
            Problem("issueDate", "'29/02/2023' is not a calendar date (%d/%m/%Y)"),
            id="not-a-leap-year",
        ),
        pytest.param(
            "2024-02-30",
            Problem("issueDate", "'2024-02-30' is not a calendar date (ISO 8601)"),
            id="impossible-iso",
        ),
        *(
            pytest.param(text, Problem("issueDate", NOT_DMY_MSG.format(repr(text))), id=text)
            for text in (
                "05-04-2024",
                "05/04/24",
                "05/04/2024 10:30",
                "32/01/2024",
                "00/01/2024",
                "05/13/2024",
                "05/04/02024",
                "05/04/2024junk",
                "\u0660\u0665/\u0660\u0664/\u0662\u0660\u0662\u0664",  # Arabic-Indic digits
                "05/04/\uff12\uff10\uff12\uff14",  # full-width digits
                "20240405",
            )
        ),
        pytest.param(
            "05/04/" + "2" * 100_000,
            Problem("issueDate", NOT_DMY_MSG.format(f"'05/04/{'2' * 34}…'")),
            id="100kB",
        ),
        pytest.param(
            20240405,
            Problem(
                "issueDate",
                "must be a date (YYYY-MM-DD string, date or datetime), got int 20240405",
            ),
            id="int",
        ),
    ],
)
def test_date_in_a_declared_format(value: Any, expected: Any) -> None:
    result = field_result("invoices", "issueDate", value, date_formats=DMY)
    assert result == expected
    if isinstance(expected, str):
        assert type(result) is str


@pytest.mark.parametrize(
    ("formats", "value", "expected"),
    [
        pytest.param(
            ("%d/%m/%Y", "%m/%d/%Y"),
            "05/04/2024",
            "'05/04/2024' is ambiguous: date_formats read it as different days "
            "(%d/%m/%Y: '2024-04-05'; %m/%d/%Y: '2024-05-04')",
            id="day-month-or-month-day",
        ),
        pytest.param(("%d/%m/%Y", "%m/%d/%Y"), "13/04/2024", "2024-04-13", id="only-dmy-reads"),
        pytest.param(("%d/%m/%Y", "%m/%d/%Y"), "04/13/2024", "2024-04-13", id="only-mdy-reads"),
        pytest.param(("%d/%m/%Y", "%m/%d/%Y"), "05/05/2024", "2024-05-05", id="both-agree"),
        pytest.param(
            ("%d/%m/%Y", "%m/%d/%Y"),
            "31/04/2024",
            "'31/04/2024' is not a calendar date (%d/%m/%Y)",
            id="impossible-in-the-only-fitting-format",
        ),
        pytest.param(
            ("%Y-%d-%m",),
            "2024-05-04",
            "'2024-05-04' is ambiguous: date_formats read it as different days "
            "(ISO 8601: '2024-05-04'; %Y-%d-%m: '2024-04-05')",
            id="iso-and-a-declared-format-disagree",
        ),
        pytest.param(
            ("%Y-%d-%m",), "2024-13-04", "2024-04-13", id="an-impossible-reading-does-not-count"
        ),
        pytest.param(("%Y-%m-%d",), "2024-04-05", "2024-04-05", id="iso-declared-again"),
        pytest.param(("%d.%m.%Y %H:%M",), "05.04.2024 23:30", "2024-04-05", id="with-a-time"),
        pytest.param(("%d/%m/%y",), "05/04/24", "2024-04-05", id="two-digit-year"),
        pytest.param(("%d/%m/%y",), "05/04/70", "1970-04-05", id="two-digit-year-1900s"),
        pytest.param(("%Y%m%d",), "20240405", "2024-04-05", id="compact"),
        pytest.param(
            ("%d/%m/%Y", "%d-%m-%Y"), "05-04-2024", "2024-04-05", id="second-format-reads"
        ),
        pytest.param(("%d %b %Y",), "05 Apr 2024", "2024-04-05", id="english-month-abbreviation"),
    ],
)
def test_declared_formats_agree_or_the_value_is_refused(
    formats: tuple[str, ...], value: str, expected: str
) -> None:
    record = {**valid_record("invoices"), "issueDate": date(2024, 3, 1), "dueDate": value}
    result = mapper("invoices", date_formats=formats).map(record)
    if isinstance(result, Rejection):
        [result] = result.problems
    else:
        result = result["dueDate"]
    if expected.startswith("'"):
        assert result == Problem("dueDate", expected)
    else:
        assert result == expected


@pytest.mark.parametrize(("resource", "fld"), fields(lambda f: f.kind is Kind.DATE))
def test_every_date_field_reads_the_declared_formats(resource: str, fld: Field) -> None:
    assert field_result(resource, fld.name, "05/04/2024", date_formats=DMY) == "2024-04-05"


@pytest.mark.parametrize(
    ("fmt", "problem"),
    [
        ("%d/%m/%Y", None),
        ("%d.%m.%y %H:%M:%S", None),
        ("%Y%m%d", None),
        ("%d/%m", "'%d/%m' names no year (%Y or %y)"),
        (
            "%Y-%m",
            "'%Y-%m' does not name a whole day: 2024-01-02 written with it reads back as "
            "2024-01-01",
        ),
        (
            "%Y",
            "'%Y' does not name a whole day: 2024-01-02 written with it reads back as 2024-01-01",
        ),
        (
            "%Q/%Y",
            "'%Q/%Y' is not a strptime pattern that can be read back "
            "('Q' is a bad directive in format '%Q/%Y')",
        ),
        ("", "must be a non-empty strptime pattern such as %d/%m/%Y"),
        ("  ", "must be a non-empty strptime pattern such as %d/%m/%Y"),
        (5, "must be a non-empty strptime pattern such as %d/%m/%Y"),
    ],
)
def test_a_date_format_is_checked_once(fmt: Any, problem: str | None) -> None:
    assert date_format_problem(fmt) == problem


def test_a_mapper_refuses_a_format_that_names_no_day() -> None:
    with pytest.raises(ValueError, match="date_formats: '%m/%Y' does not name a whole day"):
        RecordMapper(RESOURCES["invoices"], settings_with(date_formats=("%m/%Y",)))


def test_an_ambiguous_date_is_never_remembered_as_one_reading() -> None:
    m = RecordMapper(RESOURCES["invoices"], settings_with(date_formats=("%d/%m/%Y", "%m/%d/%Y")))
    record = {**valid_record("invoices"), "dueDate": "05/04/2024"}
    for _ in range(3):
        result = m.map(record)
        assert isinstance(result, Rejection)
        assert [p.field for p in result.problems] == ["dueDate"]
    assert m.map({**record, "dueDate": "13/04/2024"})["dueDate"] == "2024-04-13"  # type: ignore[index]


# --- what a rejection tells a report --------------------------------------------------------


def test_a_problem_carries_the_record_value_it_is_about_outside_its_identity() -> None:
    record = {
        "clientExternalId": "C-404",
        "reference": "F-1",
        "amount": "1.234,5",
        "issueDate": "05/04/2024",
        "dueDate": None,
    }
    result = mapper("invoices", client_ids={"C-1": U1}).map(record)
    assert isinstance(result, Rejection)
    assert [(p.field, p.value) for p in result.problems] == [
        ("clientId", "C-404"),
        ("amount", "1.234,5"),
        ("issueDate", "05/04/2024"),
        ("dueDate", None),
    ]
    assert [unmapped_client(p) for p in result.problems] == ["C-404", None, None, None]
    assert result.problems[0] == Problem(
        "clientId",
        "client 'C-404' (clientExternalId) has no Leanpay id in client_ids / client_ids_file",
    )
    assert Problem("amount", "x", 1) == Problem("amount", "x", 2)


def test_an_integer_client_code_is_reported_as_its_digits() -> None:
    result = mapper("invoices").map(
        {**valid_record("invoices"), "clientId": None, "clientExternalId": 42}
    )
    assert isinstance(result, Rejection)
    assert [unmapped_client(p) for p in result.problems] == ["42"]
