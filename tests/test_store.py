"""The store through its own API: one tenant however its host is written (one cache, one
lock); facts kept as promises; a guard that looks up each chunk in the cache, never loads
it whole, and lists again when a value read cannot be trusted; a listing nobody waits for
ends quietly when the run closes the cache under it."""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from target_leanpay.leanpay.errors import Stopped
from target_leanpay.listings.listing import Listing
from target_leanpay.listings.replay import ReplayGuard
from target_leanpay.listings.tenant_gate import TenantGate
from target_leanpay.listings.tenant_listing import TenantListing
from target_leanpay.output.runmark import RunMark
from target_leanpay.records.resources import INVOICES
from target_leanpay.store.folder_store import FolderStore
from target_leanpay.store.store import PromisesDamaged, Row, TenantKey, host_of

URL = "https://api.leanpay.fr/v1/public"
TENANT = "9b1f0c1e-7d0a-4c55-9a57-0f4b7d9b2a10"
START = datetime(2026, 1, 1, tzinfo=UTC)


class Tenant:
    """`GET /invoices`, newest first, 25 a page; counts the pages it served."""

    def __init__(self, count: int) -> None:
        self.invoices = [self.invoice(n) for n in range(count)]
        self.pages: list[int] = []
        self.hold: threading.Event | None = None
        """While set to an unset event, page 2 waits for it."""

    @staticmethod
    def invoice(n: int) -> dict[str, Any]:
        created = (START + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
        return {
            "id": f"id-{n}",
            "externalId": f"INV-{n}",
            "tenantId": TENANT,
            "createdAt": created,
            "amount": 1000 + n,
        }

    def read_page(self, path: str, page: int) -> dict[str, Any]:
        if page == 2 and self.hold is not None:
            self.hold.wait(10)
        self.pages.append(page)
        newest = list(reversed(self.invoices))
        rows = newest[(page - 1) * 25 : page * 25]
        count = len(self.invoices)
        return {"data": rows, "total": count, "pageCount": max(1, -(-count // 25))}


def listing(tenant: Tenant, store: FolderStore, stopping: threading.Event) -> TenantListing:
    plain = Listing("invoices", "/invoices", tenant.read_page, concurrency=2, stopping=stopping)
    gate = TenantGate(None, api_url=URL, where=store.where, held=lambda: None)  # no lock
    return TenantListing(plain, api_url=URL, store=store, gate=gate, writable=True)


def guard_of(tenant: Tenant, store: FolderStore) -> ReplayGuard[str]:
    stopping = threading.Event()
    made: ReplayGuard[str] = ReplayGuard(
        INVOICES, listing(tenant, store, stopping), stopping=stopping
    )
    made.start()
    made.held([])  # the first listing is over
    return made


def test_a_host_written_with_its_default_port_is_one_tenant_one_cache_and_one_lock(
    tmp_path: Path,
) -> None:
    spelled = [URL, "https://API.leanpay.fr:443/v1/public", "https://api.leanpay.fr./v1"[:-4]]
    assert {host_of(url) for url in spelled[:2]} == {"api.leanpay.fr"}
    assert host_of("https://api.leanpay.fr:8443/v1") == "api.leanpay.fr:8443"
    assert host_of("http://127.0.0.1:80/v1") == host_of("http://127.0.0.1/v1") == "127.0.0.1"
    store = FolderStore(tmp_path, host="api.leanpay.fr", run=RunMark.new())
    one, other = (TenantKey.of(url, TENANT) for url in spelled[:2])
    assert one == other
    store.cache(one, writable=True).close()
    assert [p.name for p in tmp_path.glob("*.sqlite")] == [f"api.leanpay.fr-{TENANT}.sqlite"]
    first = store.lock(host_of(spelled[0]), stopping=threading.Event())
    assert first.hold_tenant(one) is False
    stopped = threading.Event()
    stopped.set()
    second = store.lock(host_of(spelled[1]), stopping=stopped)
    with pytest.raises(Stopped, match="waiting for another run"):
        second.hold_tenant(other)
    second.release()
    first.release()


def test_facts_about_a_tenant_are_kept_and_damage_names_their_file(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store", host="api.leanpay.fr", run=RunMark.new())
    key = TenantKey.of(URL, TENANT)
    assert store.fact(key, "date_zone") is None
    store.keep_fact(key, "date_zone", "Europe/Paris")
    store.keep_fact(key, "other", "x")
    again = FolderStore(tmp_path / "store", host="api.leanpay.fr", run=RunMark.new())
    assert again.fact(key, "date_zone") == "Europe/Paris"
    assert again.fact(TenantKey.of(URL, "another"), "date_zone") is None
    path = tmp_path / "store" / f"{key.stem}.facts.json"
    path.write_text('{"date_zone": "Eur')
    with pytest.raises(PromisesDamaged, match=str(path)):
        again.fact(key, "date_zone")


def test_a_guard_looks_up_each_chunk_in_the_cache_after_a_delta_of_one_page(
    tmp_path: Path,
) -> None:
    store = FolderStore(tmp_path, host="api.leanpay.fr", run=RunMark.new())
    tenant = Tenant(1000)
    with closing(guard_of(tenant, store)) as first:
        assert first.held(["INV-0", "INV-999", "INV-x"]) == {"INV-0", "INV-999"}
    assert len(tenant.pages) == 40  # no cache yet: every page
    tenant.invoices.append(Tenant.invoice(1000))  # another writer's, since
    tenant.pages.clear()

    with closing(guard_of(tenant, store)) as again:
        assert again.held(["INV-0", "INV-500", "INV-1000", "INV-x"]) == {
            "INV-0",
            "INV-500",
            "INV-1000",
        }
        assert again.settled_id("INV-1000") == "id-1000"  # listed in this run's delta
        assert again.holdings(["INV-7"])["INV-7"][0] == "id-7"
    assert tenant.pages == [1]


def test_a_cached_value_that_cannot_be_decoded_costs_one_full_listing_and_a_right_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = FolderStore(tmp_path, host="api.leanpay.fr", run=RunMark.new())
    tenant = Tenant(100)
    guard_of(tenant, store).close()
    (path,) = tmp_path.glob("*.sqlite")
    db = sqlite3.connect(path)
    db.execute("UPDATE invoices SET contents = x'7b22' WHERE external_id = 'INV-7'")
    db.commit()
    db.close()
    tenant.pages.clear()

    with closing(guard_of(tenant, store)) as again:
        assert again.held(["INV-7", "INV-8", "INV-x"]) == {"INV-7", "INV-8"}
        holding = again.holdings(["INV-7"])["INV-7"]
    # the delta's page 1, then every page: page 1 first, the others two at a time in any order
    assert tenant.pages[:2] == [1, 1] and sorted(tenant.pages[2:]) == [2, 3, 4]
    assert "unreadable fields of invoice id-7" in caplog.text
    assert holding[0] == "id-7"
    tenant.pages.clear()
    guard_of(tenant, store).close()
    assert tenant.pages == [1]  # rebuilt: a delta again


def test_what_a_chunk_was_told_leanpay_holds_stays_known_after_a_full_listing_empties_the_cache(
    tmp_path: Path,
) -> None:
    """A chunk's finds (or a reference) ask again after its `held`; a full listing of
    another chunk may have emptied the cache meanwhile: the run still knows the invoice,
    and the full listing then says it is gone (it is sent again, not taken as held)."""
    store = FolderStore(tmp_path, host="api.leanpay.fr", run=RunMark.new())
    tenant = Tenant(100)
    guard_of(tenant, store).close()
    with closing(guard_of(tenant, store)) as again:
        assert again.held(["INV-5"]) == {"INV-5"}  # from the cache
        del tenant.invoices[5]  # deleted in Leanpay
        again.confirm_since(again.now())  # a delta: the count shows a deletion
        again.confirm_since(again.now())  # the index distrusted: every page
        assert again.holdings(["INV-5"]) == {"INV-5": ("id-5", None)}
        listing = again.listing
        assert isinstance(listing, TenantListing)
        assert listing.in_doubt(["id-5"]) == ({"id-5"}, [])


def test_a_listing_nobody_waits_for_ends_quietly_when_the_run_closes_under_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = FolderStore(tmp_path, host="api.leanpay.fr", run=RunMark.new())
    tenant = Tenant(100)
    tenant.hold = threading.Event()
    stopping = threading.Event()
    reading = listing(tenant, store, stopping)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            reading.read_all(lambda rows: None)
            outcome.append(None)
        except BaseException as stopped:
            outcome.append(stopped)

    thread = threading.Thread(target=read)
    thread.start()
    while reading.index is None:  # page 1 read and the cache open; page 2 held
        threading.Event().wait(0.01)
    reading.close()
    tenant.hold.set()
    thread.join(10)

    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)
    assert "failed" not in caplog.text and "closed database" not in caplog.text


class AdvanceRecorder:
    """The part of an `InvoiceCache` acknowledgements write: what `advance` was told."""

    def __init__(self) -> None:
        self.advanced: list[int] = []

    def add(self, rows: object) -> None:
        pass

    def advance(self, newest: int) -> None:
        self.advanced.append(newest)


def test_the_watermark_moves_when_a_post_ends_and_stays_below_every_post_on_the_wire(
    tmp_path: Path,
) -> None:
    store = FolderStore(tmp_path, host="api.leanpay.fr", run=RunMark.new())
    tenant_listing = listing(Tenant(0), store, threading.Event())
    cache = AdvanceRecorder()
    tenant_listing.index = cache  # type: ignore[assignment]

    def row(n: int, created_at: int) -> Row:
        return Row(f"id-{n}", f"INV-{n}", created_at, TENANT)

    tenant_listing.sending(1)  # sent before anything was acknowledged
    tenant_listing.sending(2)
    tenant_listing.stored([row(2, 200)])
    tenant_listing.ended(2)
    assert cache.advanced == []  # post 1 may be stored anywhere above the old watermark
    tenant_listing.stored([row(1, 100)])
    tenant_listing.ended(1)
    assert cache.advanced == [200]
    tenant_listing.sending(3)  # sent once 200 was acknowledged: its rows are not older
    tenant_listing.sending(4)
    tenant_listing.stored([row(4, 400)])
    tenant_listing.ended(4)
    assert cache.advanced == [200, 199]  # post 3 may share 200's second
    tenant_listing.ended(3)  # unanswered: a listing settles it, this run or the next
    assert cache.advanced == [200, 199, 400]
