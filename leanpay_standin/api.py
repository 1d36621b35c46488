"""The Leanpay public API surface the stand-in serves, written from the project's API notes.

The notes summarise docs.leanpay.io's reference pages (paths, body keys, item fields).
This table is deliberately the stand-in's own, not target-leanpay's: the end-to-end tests
compare what the target sends with what this server accepts, so a mistake in the
product's table must not be repeated here to pass unnoticed on both sides.

Where the notes are silent, the stand-in assumes a NestJS service with class-validator:
an optional property (`@IsOptional`) accepts null as well as absence; a property the
notes mark "not nullable" refuses null even if it could be left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

MAX_BATCH_ITEMS = 100
"""The notes: every batch import takes at most 100 items."""

ValueType = Literal["uuid", "string", "integer", "date", "boolean"]
"""JSON value types as the notes write them; integers are amounts, always >= 0."""


@dataclass(frozen=True)
class Prop:
    """One property of a batch item."""

    type: ValueType
    required: bool = False
    nullable: bool = True
    """Whether an explicit null is accepted; required properties never accept one."""
    max_length: int | None = None
    """For strings: the documented maximum length, if any."""


def _uuid(*, required: bool = False) -> Prop:
    return Prop("uuid", required=required)


def _string(max_length: int | None, *, required: bool = False, nullable: bool = True) -> Prop:
    return Prop("string", required=required, nullable=nullable, max_length=max_length)


def _amount(*, required: bool = False) -> Prop:
    return Prop("integer", required=required)


def _date(*, required: bool = False) -> Prop:
    return Prop("date", required=required)


@dataclass(frozen=True)
class Batch:
    """One `POST /<resource>/batch` endpoint: body `{body_key: [items]}`."""

    name: str
    """The resource's name in the control API and the Python API (`store("invoices")`)."""
    path: str
    body_key: str
    items: Mapping[str, Prop]
    """The item properties, in the notes' order (objects are shown in this order)."""


INVOICES = Batch(
    name="invoices",
    path="/invoices/batch",
    body_key="invoices",
    items=MappingProxyType(
        {
            "clientId": _uuid(required=True),
            "reference": _string(80, required=True),
            "amount": _amount(required=True),
            "netAmount": _amount(),
            "issueDate": _date(required=True),
            "dueDate": _date(required=True),
            "externalId": _string(80),
            "sentDate": _date(),  # deprecated in favour of issueDate, still accepted
        }
    ),
)

CREDIT_NOTES = Batch(
    name="credit_notes",
    path="/credit-notes/batch",
    body_key="creditNotes",
    items=MappingProxyType(
        {
            "clientId": _uuid(required=True),
            "reference": _string(80, required=True),
            "amount": _amount(required=True),
            "netAmount": _amount(),
            "issueDate": _date(required=True),
            "dueDate": _date(),
            "externalId": _string(80),
        }
    ),
)

PAYBACKS = Batch(
    name="paybacks",
    path="/paybacks/batch",
    body_key="paybacks",
    items=MappingProxyType(
        {
            "creditNoteId": _uuid(required=True),
            "amount": _amount(required=True),
            "date": _date(required=True),
            "externalId": _string(80),
        }
    ),
)

LINKS = Batch(
    name="links",
    path="/links/batch",
    body_key="links",
    items=MappingProxyType(
        {
            "invoiceId": _uuid(required=True),
            "creditNoteId": _uuid(required=True),
            "amount": _amount(required=True),
            "date": _date(required=True),
            "externalId": _string(80),
        }
    ),
)

MISC_OPERATIONS = Batch(
    name="misc_operations",
    path="/misc-operations/batch",
    body_key="miscOperations",
    items=MappingProxyType(
        {
            "clientId": _uuid(required=True),
            "externalId": _string(80, required=True, nullable=False),
            "amount": _amount(required=True),
            "defaultCurrencyAmount": _amount(required=True),
            "date": _date(required=True),
            "currency": _string(3, required=True),
            "description": _string(None),  # string | null, no documented maximum
        }
    ),
)

ADDRESSES = Batch(
    name="addresses",
    path="/addresses/batch",
    body_key="addresses",
    items=MappingProxyType(
        {
            "clientId": _uuid(required=True),
            "company": _string(80, required=True),
            "line1": _string(80, required=True),
            "city": _string(80, required=True),
            "postalCode": _string(80, required=True),
            "country": _string(80, required=True),
            "name": _string(80),
            "line2": _string(80),
            "line3": _string(80),
            "externalId": _string(80),
            "main": Prop("boolean"),
        }
    ),
)

BATCHES: Mapping[str, Batch] = MappingProxyType(
    {b.name: b for b in (INVOICES, CREDIT_NOTES, PAYBACKS, LINKS, MISC_OPERATIONS, ADDRESSES)}
)
"""Every batch import, by resource name."""

LISTS: Mapping[str, str] = MappingProxyType({"/invoices": "invoices"})
"""List endpoints (`GET <path>?page=N`, pages from 1), by path, to the resource they list.

Only invoices can be listed; the notes document no page size, filter or sort order.
"""

FINDS: Mapping[str, str] = MappingProxyType(
    {
        "/invoices/": "invoices",
        "/credit-notes/": "credit_notes",
        "/links/": "links",
        "/paybacks/": "paybacks",
    }
)
"""Finds by Leanpay id (`GET <prefix>{id}`), by the path up to the id, to the resource.

Each answers one object as a batch answer shows it (an invoice with its
`creditNoteLinks[]`, a credit note with its `paybacks[]` and `invoiceLinks[]`); the notes
leave an unknown id undocumented: a NestJS 404, as for an update.
"""

DATETIME_RESOURCES = frozenset({"invoices", "credit_notes"})
"""Resources whose answers show their `date` properties as date-times: the notes say
invoice and credit-note `issueDate`, `dueDate` and `sentDate` come back so, although
they are sent as dates. Links and paybacks keep the date as sent (the notes are silent)."""


@dataclass(frozen=True)
class Update:
    """One `PUT <prefix>{id}` endpoint: the body's properties replace the stored object's.

    A property the body leaves out keeps its value; an explicit null (where nullable)
    clears it, as a NestJS service saving a partial entity does.
    """

    name: str
    """The resource whose objects it changes (a key of `BATCHES`)."""
    prefix: str
    """The path up to the object's id: `/links/` for `PUT /links/{linkId}`."""
    body: Mapping[str, Prop]


UPDATES: Mapping[str, Update] = MappingProxyType(
    {
        "links": Update(
            name="links",
            prefix="/links/",
            body=MappingProxyType({"amount": _amount(required=True), "date": _date(required=True)}),
        ),
        "paybacks": Update(
            name="paybacks",
            prefix="/paybacks/",
            body=MappingProxyType(
                {
                    "amount": _amount(required=True),
                    "date": _date(required=True),
                    "externalId": _string(80),
                }
            ),
        ),
    }
)
"""The only documented updates of what the batch imports create, by resource name."""
