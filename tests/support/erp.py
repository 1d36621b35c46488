"""Records of an ERP export, one stream per resource (invoices, credit notes, links and
paybacks naming their documents by the ERP's own ids), each built in one place, with the
config that routes the streams and keeps dead letters and receipts in the test's folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from conftest import target_config

from leanpay_standin import StandIn
from support.dead_letters import RUN_FILE
from support.singer import CLIENT_ID

INVOICES, CREDIT_NOTES, LINKS, PAYBACKS = "erp-invoices", "erp-credits", "erp-links", "erp-refunds"
ROUTES = {CREDIT_NOTES: "credit_notes", LINKS: "links", PAYBACKS: "paybacks"}


def schema(stream: str, *names: str) -> dict[str, Any]:
    """A SCHEMA message declaring `names` (with no type: the target maps what comes)."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": {n: {} for n in names}},
        "key_properties": ["externalId"],
    }


def record(stream: str, **fields: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": fields}


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"done": n}}


def invoice(n: int, **changed: Any) -> dict[str, Any]:
    fields = {
        "externalId": f"INV-{n}", "clientId": CLIENT_ID, "reference": f"F-{n}",
        "amount": 10_000 + n, "issueDate": "2024-03-01", "dueDate": "2024-03-31",
    }  # fmt: skip
    return record(INVOICES, **{**fields, **changed})


def credit_note(n: int, **changed: Any) -> dict[str, Any]:
    fields = {
        "externalId": f"CN-{n}", "clientId": CLIENT_ID, "reference": f"A-{n}",
        "amount": 500 + n, "issueDate": "2024-03-05",
    }  # fmt: skip
    return record(CREDIT_NOTES, **{**fields, **changed})


def link(
    n: int, invoice: str | None = None, credit_note: str | None = None, **changed: Any
) -> dict[str, Any]:
    """Link LNK-n of `invoice` and `credit_note` (by externalId: INV-n and CN-n unless said)."""
    fields = {
        "externalId": f"LNK-{n}", "invoiceExternalId": invoice or f"INV-{n}",
        "creditNoteExternalId": credit_note or f"CN-{n}", "amount": 100 + n, "date": "2024-03-10",
    }  # fmt: skip
    return record(LINKS, **{**fields, **changed})


def payback(n: int, credit_note: str | None = None, **changed: Any) -> dict[str, Any]:
    """Payback PB-n of `credit_note` (CN-n unless said), named in snake_case as some ERPs do."""
    fields = {
        "externalId": f"PB-{n}", "credit_note_external_id": credit_note or f"CN-{n}",
        "amount": 50 + n, "date": "2024-03-12",
    }  # fmt: skip
    return record(PAYBACKS, **{**fields, **changed})


SCHEMAS = [
    schema(INVOICES, "externalId", "clientId", "reference", "amount", "issueDate", "dueDate"),
    schema(CREDIT_NOTES, "externalId", "clientId", "reference", "amount", "issueDate"),
    schema(LINKS, "externalId", "invoiceExternalId", "creditNoteExternalId", "amount", "date"),
    schema(PAYBACKS, "externalId", "credit_note_external_id", "amount", "date"),
]


def ids_by_external_id(leanpay: StandIn, resource: str) -> dict[str, str]:
    """Leanpay's id of each stored object by externalId, asserting each is stored once."""
    stored = leanpay.store(resource)
    counts = Counter(o["externalId"] for o in stored)
    assert set(counts.values()) <= {1}, counts  # each once
    return {o["externalId"]: o["id"] for o in stored}


def config(leanpay: StandIn, tmp_path: Path, **settings: Any) -> Path:
    """The streams routed (ROUTES unless `stream_resources` says), dead letters and
    receipts in `tmp_path`."""
    return target_config(
        leanpay,
        tmp_path,
        **{
            "stream_resources": ROUTES,
            "dead_letter_path": str(tmp_path / RUN_FILE),
            "receipts_path": str(tmp_path / "receipts.jsonl"),
            **settings,
        },
    )
