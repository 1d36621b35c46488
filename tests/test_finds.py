"""Finds' decisions with a fake Leanpay: which beliefs are found by id, what a 404 and a
found object do, and what a listing of this run already proved."""

from __future__ import annotations

import threading
from typing import Any

from target_leanpay.listings.finds import Finds
from target_leanpay.listings.listing import Listing
from target_leanpay.listings.replay import ReplayGuard
from target_leanpay.records.resources import CREDIT_NOTES, INVOICES
from target_leanpay.store import changes


class FakeLeanpay:
    """Objects by path; records every find."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            self.asked.append(path)
        return self.objects.get(path)


def credit_note(amount: int) -> dict[str, Any]:
    return {"clientId": "c", "reference": "A-1", "amount": amount, "issueDate": "2024-03-05"}


def test_credit_notes_believed_from_receipts_are_found_and_a_404_is_sent_again() -> None:
    guard: ReplayGuard[str] = ReplayGuard(CREDIT_NOTES, None, stopping=threading.Event())
    kept = changes.encode(changes.kept(CREDIT_NOTES, credit_note(500)))
    guard.learn([("CN-1", "id-1", kept), ("CN-2", "id-2", kept), ("CN-3", None, None)])
    leanpay = FakeLeanpay({"/credit-notes/id-1": {"id": "id-1", **credit_note(700)}})

    gone = Finds(leanpay, concurrency=4).gone(CREDIT_NOTES, guard, ["CN-1", "CN-2", "CN-3"])

    assert gone == {"CN-2"}  # 404: Leanpay no longer holds it
    assert sorted(leanpay.asked) == ["/credit-notes/id-1", "/credit-notes/id-2"]  # CN-3: no id
    assert guard.held(["CN-1", "CN-2", "CN-3"]) == {"CN-1", "CN-3"}
    held = guard.holdings(["CN-1"])["CN-1"][1]
    assert held is not None and changes.decode(held)["amount"] == 700  # fresh contents


def test_a_dry_run_finds_nothing_and_believes() -> None:
    guard: ReplayGuard[str] = ReplayGuard(CREDIT_NOTES, None, stopping=threading.Event())
    guard.learn([("CN-1", "id-1", None)])
    assert Finds(None, concurrency=4).gone(CREDIT_NOTES, guard, ["CN-1"]) == set()
    assert guard.held(["CN-1"]) == {"CN-1"}


def listing_of(rows: list[dict[str, Any]]) -> Listing:
    def one_page(path: str, page: int) -> dict[str, Any]:
        return {"data": rows, "total": len(rows), "pageCount": 1}

    return Listing("invoices", "/invoices", one_page, concurrency=1, stopping=threading.Event())


def test_invoices_a_full_listing_of_this_run_read_are_not_found_again() -> None:
    listing = listing_of([{"id": "id-1", "externalId": "INV-1"}])
    guard: ReplayGuard[str] = ReplayGuard(INVOICES, listing, stopping=threading.Event())
    guard.start()
    assert guard.held(["INV-1"]) == {"INV-1"}
    leanpay = FakeLeanpay({})
    assert Finds(leanpay, concurrency=4).gone(INVOICES, guard, ["INV-1"]) == set()
    assert leanpay.asked == []


def test_a_listing_read_again_believes_only_its_last_reading() -> None:
    # INV-2 was read by a first reading that did not prove itself, then deleted
    listing = listing_of([{"id": "id-1", "externalId": "INV-1"}])
    listing.reread = frozenset({"id-1"})
    guard: ReplayGuard[str] = ReplayGuard(INVOICES, None, stopping=threading.Event())
    guard.listing = listing
    guard.learn([("INV-1", "id-1", None), ("INV-2", "id-2", None)])
    leanpay = FakeLeanpay({})

    gone = Finds(leanpay, concurrency=4).gone(INVOICES, guard, ["INV-1", "INV-2"])

    assert gone == {"INV-2"} and leanpay.asked == []
    assert guard.held(["INV-1", "INV-2"]) == {"INV-1"}
