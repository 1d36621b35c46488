"""The comparison of what would be sent with what Leanpay holds (changes.py), and the
update policy (updates.py) with fakes for the client, the guard and the files."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from target_leanpay.leanpay.errors import ApiError, ItemsRefused, RetriesExhausted
from target_leanpay.output.deadletter import DeadLetters
from target_leanpay.output.progress import StreamStats
from target_leanpay.output.runmark import RunMark
from target_leanpay.records.mapping import Reference
from target_leanpay.records.resources import ADDRESSES, CREDIT_NOTES, INVOICES, LINKS, PAYBACKS
from target_leanpay.records.values import amount_shown
from target_leanpay.sending.repeats import repeat_reason
from target_leanpay.sending.updates import NotUpdatable, Put, Updates, decide, in_source
from target_leanpay.store import changes
from target_leanpay.store.changes import Change
from target_leanpay.store.folder_promises import FolderPromises

CLIENT = "6513270e-269e-4d37-b2a7-4de452e6b438"
INVOICE = {
    "clientId": CLIENT, "reference": "F-3", "amount": 249_623, "issueDate": "2024-03-01",
    "dueDate": "2024-03-31", "externalId": "INV-3",
}  # fmt: skip
LISTED = {  # how Leanpay lists it: date-times, computed fields, no netAmount
    **INVOICE, "id": "11111111-1111-4111-8111-111111111111", "issueDate": "2024-03-01T00:00:00Z",
    "dueDate": "2024-03-31T00:00:00.000Z", "status": "due", "remainingAmount": 0,
    "netAmount": None, "sentDate": "2024-03-01T00:00:00Z",
}  # fmt: skip
LINK = {"invoiceId": "inv-1", "creditNoteId": "cn-1", "amount": 100, "date": "2024-03-10"}


def held(resource: Any, obj: dict[str, Any]) -> dict[str, Any]:
    """What the listing or a receipt keeps, read back."""
    return changes.decode(changes.encode(changes.kept(resource, obj)))


# -- changes.py ------------------------------------------------------------------------


def test_a_listed_invoice_equal_to_the_record_shows_no_change() -> None:
    # dates as calendar dates, absent and null alike, computed fields and a sentDate Leanpay
    # filled itself ignored
    assert changes.differences(INVOICES, held(INVOICES, LISTED), INVOICE) == []


def test_money_compares_as_integers_and_dates_as_days() -> None:
    wire = {**INVOICE, "amount": Decimal("249623"), "dueDate": "2024-03-31"}
    assert changes.differences(INVOICES, held(INVOICES, LISTED), wire) == []


def test_each_changed_field_is_shown_old_then_new() -> None:
    wire = {**INVOICE, "amount": 254_623, "dueDate": "2024-04-30", "netAmount": 200_000}
    found = changes.differences(INVOICES, held(INVOICES, LISTED), wire)
    assert found == [
        Change("amount", 249_623, 254_623),
        Change("netAmount", None, 200_000),
        Change("dueDate", "2024-03-31", "2024-04-30"),
    ]
    assert changes.describe(found) == (
        "amount: 249623 → 254623; netAmount: (none) → 200000; dueDate: '2024-03-31' → '2024-04-30'"
    )


def test_a_sent_date_the_record_carries_is_compared() -> None:
    wire = {**INVOICE, "sentDate": "2024-03-02"}
    assert changes.differences(INVOICES, held(INVOICES, LISTED), wire) == [
        Change("sentDate", "2024-03-01", "2024-03-02")
    ]


def test_references_compare_by_the_leanpay_id_they_resolved_to() -> None:
    moved = {**LINK, "invoiceId": "inv-2"}
    assert changes.differences(LINKS, held(LINKS, LINK), LINK) == []
    assert changes.differences(LINKS, held(LINKS, LINK), moved) == [
        Change("invoiceId", "inv-1", "inv-2")
    ]


# -- updates.decide ----------------------------------------------------------------------


def test_changes_are_told_in_the_source_s_units() -> None:
    found = [Change("amount", 2_809_219, 999_999), Change("netAmount", None, 833_333)]
    record = {"amount": " 9 999,99", "net_amount": "8 333,33"}
    euros = amount_shown(2, ",")
    assert in_source(INVOICES, found, record, euros) == (
        "amount: 28092,19 → 9 999,99 (in cents: 2809219 → 999999); "
        "netAmount: (none) → 8 333,33 (in cents: (none) → 833333)"
    )
    # a source in cents, as numbers: the cents alone, as before
    assert in_source(INVOICES, found[:1], {"amount": 999_999}, amount_shown(0, ".")) == (
        "amount: 2809219 → 999999"
    )
    # euros as JSON numbers: Leanpay's side in euros too
    assert in_source(INVOICES, found[:1], {"amount": Decimal("9999.99")}, amount_shown(2, ".")) == (
        "amount: 28092.19 → 9999.99 (in cents: 2809219 → 999999)"
    )
    due = [Change("dueDate", "2024-03-31", "2024-04-30")]
    assert in_source(INVOICES, due, {"due_date": "30/04/2024"}, euros) == (
        "dueDate: '2024-03-31' → '2024-04-30' (written '30/04/2024')"
    )
    assert amount_shown(2, ",")(5) == "0,05"


def test_unknown_or_unchanged_is_no_decision() -> None:
    assert decide(LINKS, "link-1", None, {**LINK, "amount": 999}) is None
    assert decide(LINKS, "link-1", held(LINKS, LINK), LINK) is None


def test_a_link_whose_amount_or_date_changed_is_put_in_place() -> None:
    decision = decide(LINKS, "link-1", held(LINKS, LINK), {**LINK, "amount": 180})
    assert decision == Put(
        "/links/link-1", {"amount": 180, "date": "2024-03-10"}, [Change("amount", 100, 180)]
    )


def test_a_payback_put_carries_its_external_id_so_that_it_is_kept() -> None:
    payback = {"creditNoteId": "cn-1", "amount": 50, "date": "2024-03-12", "externalId": "PB-1"}
    decision = decide(PAYBACKS, "pb-1", held(PAYBACKS, payback), {**payback, "date": "2024-03-20"})
    assert isinstance(decision, Put)
    assert decision.body == {"amount": 50, "date": "2024-03-20", "externalId": "PB-1"}


@pytest.mark.parametrize(
    ("resource", "article"),
    [(INVOICES, "an invoice"), (CREDIT_NOTES, "a credit note"), (ADDRESSES, "an address")],
)
def test_what_the_api_cannot_update_is_reported_with_why(resource: Any, article: str) -> None:
    obj = {"amount": 10, "company": "A"}
    decision = decide(resource, "x", held(resource, obj), {"amount": 20, "company": "B"})
    assert isinstance(decision, NotUpdatable)
    assert f"Leanpay's API cannot update {article}: change it in Leanpay" in decision.reason


def test_a_link_moved_to_another_invoice_is_reported_not_put() -> None:
    moved = {**LINK, "invoiceId": "inv-2", "amount": 180}
    decision = decide(LINKS, "link-1", held(LINKS, LINK), moved)
    assert isinstance(decision, NotUpdatable)
    assert "only the amount and date of a link, not its invoiceId" in decision.reason


@pytest.mark.parametrize("leanpay_id", [None, "*"])
def test_a_change_without_a_single_leanpay_id_is_reported(leanpay_id: str | None) -> None:
    decision = decide(LINKS, leanpay_id, held(LINKS, LINK), {**LINK, "amount": 180})
    assert isinstance(decision, NotUpdatable)
    assert "cannot be updated" in decision.reason


# -- updates.Updates ---------------------------------------------------------------------


@dataclass
class Item:
    external_id: str | None
    wire: dict[str, Any]
    stream: str = "erp-links"
    record: dict[str, Any] = field(default_factory=dict)
    stats: StreamStats = field(default_factory=lambda: StreamStats("erp-links", "links"))

    @property
    def ident(self) -> str:
        return f"externalId {self.external_id!r} (input line 1)"


class Guard:
    """What the replay guard knows: Leanpay ids and kept fields, by externalId."""

    def __init__(self, known: dict[str, tuple[str | None, dict[str, Any] | None]]) -> None:
        self.known = {
            e: (i, None if f is None else changes.encode(f)) for e, (i, f) in known.items()
        }

    def holdings(self, ids: Any) -> dict[str, tuple[str | None, bytes | None]]:
        return {e: self.known[e] for e in ids if e in self.known}

    def now_holds(self, external_id: str, kept: bytes) -> None:
        leanpay_id, _ = self.known[external_id]
        self.known[external_id] = (leanpay_id, kept)


class Puts:
    def __init__(self, fail: Exception | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def __call__(self, path: str, body: dict[str, Any], *, on_retry: Any = None) -> None:
        self.sent.append((path, body))
        if self.fail is not None:
            raise self.fail
        if on_retry is not None and path.endswith("-retried"):
            on_retry("PUT answer lost; retrying")


def promises(tmp_path: Path, *, writable: bool = True) -> FolderPromises:
    """The folder store's promises, exported to `receipts.jsonl`."""
    export = str(tmp_path / "receipts.jsonl") if writable else None
    store = tmp_path / "store"
    run = RunMark.new()
    return FolderPromises(store, "leanpay.test", writable=writable, run=run, export=export)


def updates(tmp_path: Path, puts: Puts) -> tuple[Updates, DeadLetters, FolderPromises]:
    dead = DeadLetters(str(tmp_path / "dead.jsonl"), None)
    receipts = promises(tmp_path)
    return Updates(put=puts, dead_letters=dead, receipts=receipts), dead, receipts


def test_items_are_sorted_into_unchanged_updated_and_reported(tmp_path: Path) -> None:
    puts = Puts()
    policy, dead, receipts = updates(tmp_path, puts)
    guard = Guard({
        "L-same": ("id-same", held(LINKS, LINK)),
        "L-amount": ("id-amount", held(LINKS, LINK)),
        "L-moved": ("id-moved", held(LINKS, LINK)),
        "L-old-receipt": ("id-old", None),
    })  # fmt: skip
    items = [
        Item("L-same", LINK),
        Item("L-amount", {**LINK, "amount": 180}),
        Item("L-moved", {**LINK, "creditNoteId": "cn-9"}, record={"externalId": "L-moved"}),
        Item("L-old-receipt", {**LINK, "amount": 999}),
    ]

    done = policy.sort_out(LINKS, guard, items)
    dead.close()
    receipts.close()

    assert [i.external_id for i in done.unchanged] == ["L-same", "L-old-receipt"]
    assert [i.external_id for i in done.updated] == ["L-amount"]
    assert [i.external_id for i in done.reported] == ["L-moved"]
    assert done.refused == []
    assert puts.sent == [("/links/id-amount", {"amount": 180, "date": "2024-03-10"})]
    assert (items[1].stats.requests, items[1].stats.retries) == (1, 0)
    (receipt,) = [json.loads(x) for x in (tmp_path / "receipts.jsonl").read_text().splitlines()]
    assert (receipt["externalId"], receipt["id"]) == ("L-amount", "id-amount")
    assert receipt["sent"] == {**LINK, "amount": 180}
    assert changes.decode(guard.known["L-amount"][1] or b"") == {**LINK, "amount": 180}
    (line,) = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert line["outcome"] == "changed, not updatable"
    assert line["changes"] == [{"field": "creditNoteId", "leanpay": "cn-1", "source": "cn-9"}]
    assert line["reasons"][0]["field"] == "(item)"
    assert dead.count == 0  # not a rejection: max_rejections never counts it


@pytest.mark.parametrize(
    "error",
    [
        ApiError("PUT /links/id-1: HTTP 404", status=404, body='{"statusCode":404}'),
        ItemsRefused("PUT /links/id-1: HTTP 400", status=400, body='{"message":["amount"]}'),
    ],
)
def test_a_put_leanpay_refuses_is_returned_to_be_rejected(tmp_path: Path, error: Exception) -> None:
    policy, _, receipts = updates(tmp_path, Puts(fail=error))
    guard = Guard({"L-1": ("id-1", held(LINKS, LINK))})

    done = policy.sort_out(LINKS, guard, [Item("L-1", {**LINK, "amount": 180})])
    receipts.close()

    ((item, problems, api_error),) = done.refused
    assert item.external_id == "L-1" and api_error is error
    assert problems[0].field == "(item)"
    assert "PUT /links/id-1 to update it failed" in problems[0].reason
    assert not (tmp_path / "receipts.jsonl").read_text()  # no receipt for a refused PUT


def test_a_put_that_fails_otherwise_stops_the_run(tmp_path: Path) -> None:
    failure = RetriesExhausted("PUT /links/id-1: HTTP 503 (gave up)", status=503)
    policy, _, receipts = updates(tmp_path, Puts(fail=failure))
    guard = Guard({"L-1": ("id-1", held(LINKS, LINK))})
    with pytest.raises(RetriesExhausted):
        policy.sort_out(LINKS, guard, [Item("L-1", {**LINK, "amount": 180})])
    receipts.close()


def test_without_a_dead_letter_file_a_changed_record_is_a_warning_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = DeadLetters(None, None)
    receipts = promises(tmp_path, writable=False)
    policy = Updates(put=Puts(), dead_letters=dead, receipts=receipts)
    guard = Guard({"INV-3": ("id-3", held(INVOICES, LISTED))})
    with caplog.at_level(logging.WARNING, logger="target-leanpay"):
        done = policy.sort_out(INVOICES, guard, [Item("INV-3", {**INVOICE, "amount": 254_623})])
    assert len(done.reported) == 1
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("Not updated: stream 'erp-links', record externalId 'INV-3'")
    assert "amount: 249623 → 254623" in message


def test_each_put_and_each_of_its_retries_is_counted_for_its_stream(tmp_path: Path) -> None:
    policy, _, receipts = updates(tmp_path, Puts())
    guard = Guard({"L-1": ("id-retried", held(LINKS, LINK))})
    item = Item("L-1", {**LINK, "amount": 180})
    done = policy.sort_out(LINKS, guard, [item])
    receipts.close()
    assert done.updated == [item]
    assert (item.stats.requests, item.stats.retries) == (1, 1)


def test_repeats_are_compared_as_changes_are_with_references_shown_by_external_id() -> None:
    first = {"amount": 1002, "netAmount": None, "invoiceId": Reference("invoices", "INV-1")}
    later = {"amount": 1200, "invoiceId": Reference("invoices", "INV-2")}
    found = changes.differences(LINKS, first, later)
    assert [c.field for c in found] == ["invoiceId", "amount"]
    assert repeat_reason("L-1", "externalId 'L-1' (input line 4)", found) == (
        "repeats externalId 'L-1' of an earlier record of this input (externalId 'L-1' "
        "(input line 4)) with other contents (invoiceId: invoices 'INV-1' → invoices "
        "'INV-2'; amount: 1002 → 1200); only the first is sent: fix the source so that one "
        "externalId names one document"
    )
    alike = {"amount": 1002, "invoiceId": Reference("invoices", "INV-1")}
    assert changes.differences(LINKS, first, alike) == []  # absent and null alike
