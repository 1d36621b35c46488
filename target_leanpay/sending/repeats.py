"""Repeats: a record whose externalId an earlier record of the same input already carries.

ERP exports repeat rows: the same invoice twice, identical (a re-extract at a bookmark's
edge), or with other contents (two rows sharing an invoice number). An identical repeat
shares the first one's fate, quietly (delivery.py, replay.py's twins). A repeat whose
contents differ is rejected, with both values side by side, and the first one is what
Leanpay gets: sending the second would store a duplicate, and dropping it silently would
leave Leanpay and the ERP disagreeing without a word.

Contents are the mapped payload, as read (references by externalId unresolved), so the
comparison does not depend on when the first one was sent; they are compared as changes
are (`changes.differences`: normalised, absent and null alike).
"""

from __future__ import annotations

from typing import Any

import msgspec

from target_leanpay.records.mapping import Reference
from target_leanpay.sending.items import identify
from target_leanpay.store import changes
from target_leanpay.store.changes import Change

SHOWN_DIFFERENCES = 5


def _reference_as_data(value: Any) -> Any:
    if isinstance(value, Reference):
        return {"resource": value.resource, "externalId": value.external_id}
    raise TypeError(f"cannot encode {type(value).__name__}")


_encode = msgspec.json.Encoder(enc_hook=_reference_as_data).encode
_decode = msgspec.json.Decoder(tuple[int, dict[str, Any]]).decode


def remembered(line: int, payload: dict[str, Any]) -> bytes:
    """What is kept of a record Leanpay acknowledged: its input line, and its payload
    (the place a message names is built only if a repeat needs it; a BATCH file's record
    is kept by its BATCH message's line: `Place` is an int)."""
    return _encode((int(line), payload))


def recalled(kept: bytes, external_id: str) -> tuple[str, dict[str, Any]]:
    """The place (as `items.identify` names it) and payload of the record with
    `external_id`, from `remembered`."""
    line, payload = _decode(kept)
    return identify({"externalId": external_id}, (), line), payload


def as_data(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as `recalled` gives it back (references as their externalIds)."""
    return _decode(remembered(0, payload))[1]


def repeat_reason(external_id: str, first_ident: str, changed: list[Change]) -> str:
    """Why a repeat with other contents is rejected, both values side by side (as
    `changes.differences` finds them: the one comparison of repeats and changes)."""
    shown = changes.describe(changed[:SHOWN_DIFFERENCES])
    if len(changed) > SHOWN_DIFFERENCES:
        shown += f"; and {len(changed) - SHOWN_DIFFERENCES} more"
    return (
        f"repeats externalId {external_id!r} of an earlier record of this input "
        f"({first_ident}) with other contents ({shown}); only the first is sent: fix the "
        "source so that one externalId names one document"
    )
