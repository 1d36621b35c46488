"""Singer messages for the tests, each built in one place: invoice records of one stream
(`invoice`, `schema`, `state`), what the target must send for them (`payload`), and the
lines a tap writes (`singer_input`). conftest.py re-exports them for the tests that import
them from there."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

API_KEY = "lp_test_9f3c2a7e51b84d06"
CLIENT_ID = "6513270e-269e-4d37-b2a7-4de452e6b438"
STREAM = "public-invoices"


def schema(stream: str = STREAM, key_properties: Sequence[str] = ("externalId",)) -> dict[str, Any]:
    """A SCHEMA message for invoice-shaped records."""
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {
            "type": "object",
            "properties": {
                "externalId": {"type": ["string", "null"]},
                "clientId": {"type": ["string", "null"]},
                "reference": {"type": ["string", "null"]},
                "amount": {"type": ["integer", "null"]},
                "issueDate": {"type": ["string", "null"], "format": "date"},
                "dueDate": {"type": ["string", "null"], "format": "date"},
            },
        },
        "key_properties": list(key_properties),
    }


def invoice(i: int, stream: str = STREAM, **overrides: Any) -> dict[str, Any]:
    """A RECORD message for invoice number `i` (valid unless overridden)."""
    record = {
        "externalId": f"INV-{i:05d}",
        "clientId": CLIENT_ID,
        "reference": f"F-{i:05d}",
        "amount": 1000 + i,
        "issueDate": "2024-03-01",
        "dueDate": "2024-03-31",
        "_sdc_extracted_at": "2024-04-01T00:00:00Z",
    }
    record.update(overrides)
    return {"type": "RECORD", "stream": stream, "record": record}


def payload(i: int, **overrides: Any) -> dict[str, Any]:
    """What the target must send for `invoice(i)`."""
    item = {
        "clientId": CLIENT_ID,
        "reference": f"F-{i:05d}",
        "amount": 1000 + i,
        "issueDate": "2024-03-01",
        "dueDate": "2024-03-31",
        "externalId": f"INV-{i:05d}",
    }
    item.update(overrides)
    return item


def state(n: int, stream: str = STREAM) -> dict[str, Any]:
    """A STATE message saying the tap has emitted `n` records."""
    return {"type": "STATE", "value": {"bookmarks": {stream: {"emitted": n}}}}


def invoices_with_state(count: int, every: int = 50, start: int = 0) -> list[dict[str, Any]]:
    """SCHEMA, `count` invoices from `start`, and a STATE after every `every` records."""
    messages: list[dict[str, Any]] = [schema()]
    for i in range(start, start + count):
        messages.append(invoice(i))
        if (i + 1) % every == 0 or i == start + count - 1:
            messages.append(state(i + 1))
    return messages


def emitted(states: Sequence[dict[str, Any]]) -> list[int]:
    """The `emitted` counts of the STATE lines a run printed."""
    return [s["bookmarks"][STREAM]["emitted"] for s in states]


def singer_input(messages: Sequence[dict[str, Any] | str]) -> str:
    """Messages as Singer lines (strings are passed through as raw lines)."""
    return "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages)
