"""The tenant index on disk: named without the key, trusted only when sound, verified
only by a complete listing; a plan reads it and writes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from target_leanpay.store.store import SEVERAL, CacheDamaged, Found, Row, TenantKey, Watermark
from target_leanpay.store.tenant_index import TenantIndex

URL = "https://api.leanpay.fr/v1/public"
TENANT = "9b1f0c1e-7d0a-4c55-9a57-0f4b7d9b2a10"
KEY = TenantKey.of(URL, TENANT)


def filled(folder: Path, rows: int = 3) -> TenantIndex:
    index = TenantIndex(folder, KEY, writable=True)
    index.begin_full_listing()
    index.add(Row(f"id-{n}", f"INV-{n}", 1000 + n) for n in range(rows))
    index.verified(total=rows, order="newest")
    return index


def test_the_file_is_named_from_the_host_and_tenant(tmp_path: Path) -> None:
    index = filled(tmp_path)
    assert index.path == tmp_path / f"api.leanpay.fr-{TENANT}.sqlite"
    assert TenantKey.of("http://127.0.0.1:8042", "a/b").stem == "127.0.0.1_8042-a_b"
    index.close()


def test_a_verified_index_is_found_again_by_the_next_run(tmp_path: Path) -> None:
    filled(tmp_path).close()
    again = TenantIndex(tmp_path, KEY, writable=True)
    assert again.problem is None
    assert again.count() == 3
    assert again.has([Row("id-0", None, 1000), Row("id-9", None, 1009)]) == {"id-0"}
    assert again.has([Row("id-1", None, 999)]) == set()  # another createdAt: not it
    assert again.watermark() == Watermark(True, 1002, 3, "newest")
    again.close()


def test_a_full_listing_cut_short_leaves_an_index_that_says_so(tmp_path: Path) -> None:
    index = filled(tmp_path)
    index.begin_full_listing()
    index.add([Row("id-0", "INV-0", 1000)])  # killed here
    index.close()
    again = TenantIndex(tmp_path, KEY, writable=True)
    assert again.watermark().complete is False
    again.close()


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:1500]), "unusable"),
        (lambda p: p.write_bytes(b"not a database at all, not even close" * 40), "unusable"),
        (lambda p: _sql(p, "PRAGMA user_version = 99"), "schema version 99, not 3"),
        (lambda p: _sql(p, "UPDATE meta SET value = 'other' WHERE key = 'tenant'"), "'other'"),
        (lambda p: _sql(p, "UPDATE meta SET value = 'x' WHERE key = 'newest'"), "newest"),
        (lambda p: _sql(p, "UPDATE meta SET value = -3 WHERE key = 'count'"), "count"),
    ],
    ids=["truncated", "garbage", "other-version", "other-tenant", "newest", "count"],
)
def test_an_index_that_cannot_be_trusted_is_replaced_by_an_empty_unverified_one(
    tmp_path: Path, damage: object, why: str
) -> None:
    filled(tmp_path, rows=2000).close()
    path = tmp_path / f"api.leanpay.fr-{TENANT}.sqlite"
    damage(path)  # type: ignore[operator]
    again = TenantIndex(tmp_path, KEY, writable=True)
    assert again.problem is not None and why in again.problem
    assert again.count() == 0
    assert again.watermark().complete is False
    again.close()


def _sql(path: Path, statement: str) -> None:
    db = sqlite3.connect(path)
    db.execute(statement)
    db.commit()
    db.close()


def test_a_plan_reads_the_index_and_writes_nothing(tmp_path: Path) -> None:
    filled(tmp_path).close()
    path = tmp_path / f"api.leanpay.fr-{TENANT}.sqlite"
    before = path.read_bytes()
    plan = TenantIndex(tmp_path, KEY, writable=False)
    assert plan.count() == 3 and plan.watermark().complete
    plan.add([Row("id-new", "INV-new", 5000)])
    plan.verified(total=4, order="newest")
    assert plan.count() == 4  # in memory
    plan.close()
    assert path.read_bytes() == before
    other = TenantIndex(tmp_path / "none", KEY, writable=False)
    assert other.count() == 0
    assert not (tmp_path / "none").exists()
    other.close()


def test_a_chunk_finds_what_the_index_holds_by_external_id(tmp_path: Path) -> None:
    index = filled(tmp_path, rows=1200)
    index.add([Row("id-twin", "INV-5", 1)])  # two Leanpay invoices carry INV-5
    index.add([Row("id-0", "INV-0", 1000, contents=b'{"amount":5}')])  # known better now
    assert index.count() == 1201
    ids = ["INV-0", "INV-1199", "INV-x", "INV-5"] + [f"INV-{n}" for n in range(600)]
    found = index.find(ids)
    assert set(found) == {f"INV-{n}" for n in range(600)} | {"INV-1199"}
    assert found["INV-0"] == Found("id-0", b'{"amount":5}')
    assert found["INV-1199"] == Found("id-1199", None)
    assert found["INV-5"].leanpay_id == SEVERAL
    index.close()


@pytest.mark.parametrize(
    "garble",
    [
        "UPDATE invoices SET contents = x'7b22616d6f756e74' WHERE external_id = 'INV-1'",
        "UPDATE invoices SET contents = 12 WHERE external_id = 'INV-1'",
        "UPDATE invoices SET leanpay_id = x'00' WHERE external_id = 'INV-1'",
    ],
    ids=["torn-contents", "contents-not-bytes", "id-not-text"],
)
def test_a_value_read_that_cannot_be_trusted_says_the_index_is_damaged(
    tmp_path: Path, garble: str
) -> None:
    filled(tmp_path).close()
    path = tmp_path / f"api.leanpay.fr-{TENANT}.sqlite"
    _sql(path, garble)
    index = TenantIndex(tmp_path, KEY, writable=True)  # nothing read yet: opens
    assert index.problem is None and index.find(["INV-0"]) == {"INV-0": Found("id-0", None)}
    with pytest.raises(CacheDamaged, match=str(path)):
        index.find(["INV-1"])
    index.damaged("seen")
    index.close()
    again = TenantIndex(tmp_path, KEY, writable=True)
    assert again.watermark().complete is False  # the next listing is a full one
    again.close()


@pytest.mark.parametrize(
    ("url", "stem"),
    [
        ("https://api.leanpay.fr/v1/public", "api.leanpay.fr"),
        ("https://API.leanpay.fr:443/v1/public", "api.leanpay.fr"),
        ("http://127.0.0.1:80/v1", "127.0.0.1"),
        ("http://127.0.0.1:8042/v1", "127.0.0.1_8042"),
        ("https://api.leanpay.fr:8443/v1", "api.leanpay.fr_8443"),
    ],
)
def test_a_host_written_two_ways_is_one_index(url: str, stem: str) -> None:
    assert TenantKey.of(url, TENANT).stem == f"{stem}-{TENANT}"


def test_the_index_says_which_host_and_tenant_it_belongs_to(tmp_path: Path) -> None:
    filled(tmp_path).close()
    db = sqlite3.connect(tmp_path / f"api.leanpay.fr-{TENANT}.sqlite")
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('host', 'tenant')"))
    db.close()
    assert meta == {"host": "api.leanpay.fr", "tenant": TENANT}


def test_a_plan_reads_the_file_in_place_and_its_full_listing_hides_the_rows(
    tmp_path: Path,
) -> None:
    filled(tmp_path).close()
    plan = TenantIndex(tmp_path, KEY, writable=False)
    assert plan.find(["INV-1"]) == {"INV-1": Found("id-1", None)}
    plan.begin_full_listing()  # a plan's own full listing: KnownIds holds what it lists
    assert plan.find(["INV-1"]) == {} and plan.has([Row("id-1", None, 1001)]) == set()
    assert plan.watermark().complete is False and plan.count() == 0
    plan.close()
    again = TenantIndex(tmp_path, KEY, writable=True)
    assert again.count() == 3 and again.watermark().complete  # the file was not touched
    again.close()
