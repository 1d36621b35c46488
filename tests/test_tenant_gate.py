"""The run's hold on its tenant (tenant_gate.py), driven with a fake lock and a fake
`GET /invoices`: taken once, whoever asks first; what was read before a wait is read
again after it; the marks are re-read once, when the lock is held."""

from __future__ import annotations

import threading
from typing import Any

from target_leanpay.listings.listing import Listing
from target_leanpay.listings.tenant_gate import TenantGate
from target_leanpay.store.store import TenantKey

URL = "https://api.leanpay.fr/v1"


class FakeLock:
    """`store.TenantLock`: records what was taken; `waits` says whether another run held it."""

    def __init__(self, waits: list[bool]) -> None:
        self.waits = waits
        self.taken: list[str] = []
        self.released = 0

    def hold_tenant(self, key: TenantKey) -> bool:
        self.taken.append(key.tenant_id)
        return self.waits.pop(0)

    def hold_new_tenant(self) -> bool:
        self.taken.append("host")
        return self.waits.pop(0)

    def release(self) -> None:
        self.released += 1


class Invoices:
    """Page 1 of `GET /invoices`, naming `tenants` in turn (the last one repeats; None: empty)."""

    def __init__(self, *tenants: str | None) -> None:
        self.tenants = list(tenants)
        self.reads = 0

    def read_page(self, path: str, page: int) -> dict[str, Any]:
        tenant = self.tenants[min(self.reads, len(self.tenants) - 1)]
        self.reads += 1
        rows = [] if tenant is None else [{"id": "i1", "externalId": "INV-1", "tenantId": tenant}]
        return {"data": rows, "total": len(rows), "pageCount": 1}


def gate_of(lock: FakeLock | None, reread: list[int]) -> TenantGate:
    return TenantGate(lock, api_url=URL, where="store", held=lambda: reread.append(1))


def listing(invoices: Invoices) -> Listing:
    return Listing(
        "invoices", "/invoices", invoices.read_page, concurrency=1, stopping=threading.Event()
    )


def test_the_lock_is_taken_once_whoever_asks_first_and_the_marks_read_once_held() -> None:
    lock, reread, invoices = FakeLock([False]), [], Invoices("t1")
    gate = gate_of(lock, reread)

    gate.hold(listing(invoices))  # a credit note stream, before any listing
    page = gate.first_page(listing(invoices))  # the invoice listing, later
    gate.hold(listing(invoices))

    assert lock.taken == ["t1"]
    assert gate.tenant == "t1"  # whose receipts a run without invoices reads
    assert reread == [1]
    assert invoices.reads == 2  # page 1 to name the tenant, then the listing's own
    assert page["data"][0]["tenantId"] == "t1"
    gate.close()
    assert lock.released == 1


def test_after_a_wait_page_1_is_read_again_and_a_tenant_named_meanwhile_takes_its_lock() -> None:
    lock, reread = FakeLock([True, False]), []
    invoices = Invoices(None, "t1")  # empty; the other run loaded it while this one waited
    gate = gate_of(lock, reread)

    page = gate.first_page(listing(invoices))

    assert lock.taken == ["host", "t1"]
    assert page["data"][0]["tenantId"] == "t1"  # read after the wait, not before
    assert invoices.reads == 2
    assert reread == [1]


def test_no_lock_no_read_for_a_resource_leanpay_cannot_list() -> None:
    """A plan, a dry run, replay_safety false: nothing is taken, page 1 is not read."""
    reread: list[int] = []
    invoices = Invoices("t1")
    gate = gate_of(None, reread)

    gate.hold(listing(invoices))
    gate.close()

    assert invoices.reads == 0
    assert reread == []
