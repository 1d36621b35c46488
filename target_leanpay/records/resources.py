"""The Leanpay batch-import surface, as data.

Each resource names its batch path, the body key of its item list, and the fields an
item may carry. Mapping, validation, the stand-in server and the documentation all read
this table, so adding a resource means adding an entry here and nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

MAX_ITEMS_PER_REQUEST = 100
"""Leanpay refuses batch imports of more than 100 items."""

MAX_STRING_LENGTH = 80


class Kind(enum.Enum):
    """How a field's value is checked and converted."""

    UUID = "uuid"
    STRING = "string"
    MONEY = "money"  # integer minor units, >= 0
    DATE = "date"  # YYYY-MM-DD
    BOOLEAN = "boolean"
    CURRENCY = "currency"  # ISO 4217 code, <= 3 characters


@dataclass(frozen=True)
class Field:
    """One property of a batch item."""

    name: str
    kind: Kind
    required: bool = False
    max_length: int | None = None
    nullable: bool = True
    refers_to: str | None = None
    """For a Leanpay id of another resource (a link's `invoiceId`): that resource's name.
    Records may then give the object's externalId instead (`invoiceExternalId`)."""

    @property
    def snake_name(self) -> str:
        """The snake_case alias accepted in records (`netAmount` -> `net_amount`)."""
        return _snake(self.name)

    @property
    def external_names(self) -> tuple[str, str]:
        """Record keys naming the referred object by its externalId, for `refers_to` fields:
        `invoiceId` -> (`invoiceExternalId`, `invoice_external_id`)."""
        name = self.name.removesuffix("Id") + "ExternalId"
        return name, _snake(name)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _string(name: str, *, required: bool = False, nullable: bool = True) -> Field:
    return Field(name, Kind.STRING, required, MAX_STRING_LENGTH, nullable)


@dataclass(frozen=True)
class Resource:
    """One batch-import endpoint of the Leanpay public API."""

    name: str
    path: str
    body_key: str
    fields: tuple[Field, ...]
    list_path: str | None = None
    """Where existing objects (with their externalId) can be listed, if anywhere."""
    listed_inside: str | None = None
    """The key under which each row of `list_path` holds this resource's objects, when they
    are listed inside another resource's (a link in its invoice's `creditNoteLinks`)."""
    field_names: frozenset[str] = field(init=False)
    reference_fields: tuple[str, ...] = field(init=False)
    """Fields holding another resource's Leanpay id (see `Field.refers_to`)."""

    @property
    def listed_first(self) -> bool:
        """Whether replay safety lists this resource before sending any of it (invoices).
        Objects listed inside another's rows (links) are listed only when a doubt must be
        settled: the receipts of earlier runs hold the rest."""
        return self.list_path is not None and self.listed_inside is None

    def __hash__(self) -> int:
        # the name says which endpoint it is; the generated hash would hash every field
        # (and its kind) again on each call, and the per-invoice caches call it
        return hash(self.name)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", frozenset(f.name for f in self.fields))
        references = tuple(f.name for f in self.fields if f.refers_to)
        object.__setattr__(self, "reference_fields", references)


INVOICES = Resource(
    name="invoices",
    path="/invoices/batch",
    body_key="invoices",
    list_path="/invoices",
    fields=(
        Field("clientId", Kind.UUID, required=True),
        _string("reference", required=True),
        Field("amount", Kind.MONEY, required=True),
        Field("netAmount", Kind.MONEY),
        Field("issueDate", Kind.DATE, required=True),
        Field("dueDate", Kind.DATE, required=True),
        _string("externalId"),
        Field("sentDate", Kind.DATE),
    ),
)

CREDIT_NOTES = Resource(
    name="credit_notes",
    path="/credit-notes/batch",
    body_key="creditNotes",
    fields=(
        Field("clientId", Kind.UUID, required=True),
        _string("reference", required=True),
        Field("amount", Kind.MONEY, required=True),
        Field("netAmount", Kind.MONEY),
        Field("issueDate", Kind.DATE, required=True),
        Field("dueDate", Kind.DATE),
        _string("externalId"),
    ),
)

PAYBACKS = Resource(
    name="paybacks",
    path="/paybacks/batch",
    body_key="paybacks",
    fields=(
        Field("creditNoteId", Kind.UUID, required=True, refers_to="credit_notes"),
        Field("amount", Kind.MONEY, required=True),
        Field("date", Kind.DATE, required=True),
        _string("externalId"),
    ),
)

LINKS = Resource(
    name="links",
    path="/links/batch",
    body_key="links",
    list_path="/invoices",
    listed_inside="creditNoteLinks",
    fields=(
        Field("invoiceId", Kind.UUID, required=True, refers_to="invoices"),
        Field("creditNoteId", Kind.UUID, required=True, refers_to="credit_notes"),
        Field("amount", Kind.MONEY, required=True),
        Field("date", Kind.DATE, required=True),
        _string("externalId"),
    ),
)

MISC_OPERATIONS = Resource(
    name="misc_operations",
    path="/misc-operations/batch",
    body_key="miscOperations",
    fields=(
        Field("clientId", Kind.UUID, required=True),
        _string("externalId", required=True, nullable=False),
        Field("amount", Kind.MONEY, required=True),
        Field("defaultCurrencyAmount", Kind.MONEY, required=True),
        Field("date", Kind.DATE, required=True),
        Field("currency", Kind.CURRENCY, required=True, max_length=3),
        Field("description", Kind.STRING),
    ),
)

ADDRESSES = Resource(
    name="addresses",
    path="/addresses/batch",
    body_key="addresses",
    fields=(
        Field("clientId", Kind.UUID, required=True),
        _string("company", required=True),
        _string("line1", required=True),
        _string("city", required=True),
        _string("postalCode", required=True),
        _string("country", required=True),
        _string("name"),
        _string("line2"),
        _string("line3"),
        _string("externalId"),
        Field("main", Kind.BOOLEAN),
    ),
)

RESOURCES: dict[str, Resource] = {
    r.name: r for r in (INVOICES, CREDIT_NOTES, PAYBACKS, LINKS, MISC_OPERATIONS, ADDRESSES)
}
"""Resources by the name used in the `stream_resources` setting."""
