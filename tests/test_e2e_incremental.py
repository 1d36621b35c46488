"""Incremental runs through the real CLI: the tenant index makes a run read only the pages
of what is new, and every guarantee of a full listing holds. Judged by the pages the
stand-in's journal shows were read and by what it stores."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import (
    API_KEY,
    Running,
    emitted,
    invoices_with_state,
    payload,
    run_target,
    singer_input,
    target_config,
    wait_for,
)

from leanpay_standin import StandIn

SEEDED = 2000  # 80 pages of 25
PAGES = math.ceil(SEEDED / 25)


def pages_read(leanpay: StandIn, since: int = 0) -> list[int]:
    """The page numbers of GET /invoices after the `since`-th journal entry, in order."""
    return [
        int(r["query"]["page"])
        for r in leanpay.requests()[since:]
        if r["method"] == "GET" and r["path"] == "/invoices"
    ]


def posts(leanpay: StandIn, since: int = 0) -> list[dict[str, Any]]:
    return [
        r
        for r in leanpay.requests()[since:]
        if r["method"] == "POST" and r["path"] == "/invoices/batch"
    ]


def stored_once(leanpay: StandIn, numbers: range) -> None:
    counts = Counter(i["externalId"] for i in leanpay.store())
    mine = {k: v for k, v in counts.items() if k and k.startswith("INV-")}
    assert sorted(mine) == [f"INV-{i:05d}" for i in numbers]
    assert set(mine.values()) == {1}


def index_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "index").glob("*.sqlite"))


@pytest.fixture
def tenant() -> Any:
    with StandIn(api_key=API_KEY, order="newest") as server:
        server.seed_invoices(SEEDED)
        yield server


def first_run(leanpay: StandIn, tmp_path: Path, **settings: Any) -> Path:
    """Load INV-00000..00999 (a full listing: no index yet); return the config."""
    config = target_config(leanpay, tmp_path, **settings)
    result = run_target(config, invoices_with_state(1000, every=100))
    assert result.returncode == 0, result.stderr
    assert "every page of invoices is read: no verified index of this tenant yet" in result.stderr
    assert sorted(pages_read(leanpay)) == list(range(1, PAGES + 1))
    return config


@pytest.mark.parametrize("order", ["newest", "oldest", "id"])
def test_a_run_of_10_repeated_and_100_new_reads_only_the_pages_of_what_is_new(
    tmp_path: Path, order: str
) -> None:
    with StandIn(api_key=API_KEY, order=order) as leanpay:  # type: ignore[arg-type]
        leanpay.seed_invoices(SEEDED)
        config = first_run(leanpay, tmp_path)
        since = len(leanpay.requests())

        result = run_target(config, invoices_with_state(110, every=110, start=990))

        assert result.returncode == 0, result.stderr
        last = math.ceil((SEEDED + 1000) / 25)
        expected = {"newest": [1], "oldest": [1, last], "id": list(range(1, last + 1))}[order]
        assert sorted(pages_read(leanpay, since)) == expected
        if order == "id":
            assert "every page of invoices is read: the pages are in no order of createdAt" in (
                result.stderr
            )
        else:
            assert "every page" not in result.stderr
            assert "3000 invoices in Leanpay, 0 new since the tenant index was verified" in (
                result.stderr
            )
        sent = [i["externalId"] for p in posts(leanpay, since) for i in p["body"]["invoices"]]
        assert sorted(sent) == [f"INV-{i:05d}" for i in range(1000, 1100)]
        assert "10 already present" in result.stderr
        stored_once(leanpay, range(1100))
        assert emitted(result.states) == [1100]


def test_an_invoice_another_writer_created_since_is_recognised(
    tenant: StandIn, tmp_path: Path
) -> None:
    config = first_run(tenant, tmp_path)
    other = requests.post(
        tenant.url + "/invoices/batch",
        json={"invoices": [payload(1005)]},
        headers={"Authorization": API_KEY},
        timeout=10,
    )
    assert other.status_code == 201
    since = len(tenant.requests())

    result = run_target(config, invoices_with_state(10, every=10, start=1000))

    assert result.returncode == 0, result.stderr
    assert pages_read(tenant, since) == [1]
    assert "1 new since the tenant index was verified" in result.stderr
    sent = [item["externalId"] for p in posts(tenant, since) for item in p["body"]["invoices"]]
    assert sent == [f"INV-{i:05d}" for i in range(1000, 1010) if i != 1005]
    stored_once(tenant, range(1010))


def test_an_invoice_deleted_in_leanpay_and_sent_again_is_created_again_once(
    tenant: StandIn, tmp_path: Path
) -> None:
    config = first_run(tenant, tmp_path)
    assert tenant.delete(external_ids=["INV-00500"]) == 1
    since = len(tenant.requests())

    result = run_target(config, invoices_with_state(1000, every=100))

    assert result.returncode == 0, result.stderr
    assert "the tenant index holds 1 invoices more than Leanpay lists" in result.stderr
    # its 1,000 repeats: found by id within the pages of a full listing (120), then listed
    found = sum(
        1 for r in tenant.requests()[since:] if r["method"] == "GET" and r["path"] != "/invoices"
    )
    read = pages_read(tenant, since)
    assert found <= 120 and sorted(set(read)) == list(range(1, 121)) and len(read) <= 120 + 3
    sent = [item["externalId"] for p in posts(tenant, since) for item in p["body"]["invoices"]]
    assert sent == ["INV-00500"]
    stored_once(tenant, range(1000))
    since = len(tenant.requests())
    again = run_target(config, invoices_with_state(1000, every=100))
    assert again.returncode == 0, again.stderr
    assert pages_read(tenant, since) == [1]  # the index is whole again
    assert posts(tenant, since) == []


def test_an_answer_lost_after_storing_is_checked_by_reading_the_first_pages_only(
    tenant: StandIn, tmp_path: Path
) -> None:
    config = first_run(tenant, tmp_path, max_in_flight=1)
    tenant.add_faults({"path": "/invoices/batch", "action": "drop_after_store", "times": 1})
    since = len(tenant.requests())

    result = run_target(config, invoices_with_state(300, every=100, start=1000))

    assert result.returncode == 0, result.stderr
    # page 1 before sending; after the lost answer, the pages that can hold its 100
    read = pages_read(tenant, since)
    assert read[0] == 1 and sorted(read[1:]) == [1, 2, 3, 4, 5]  # the boundary opens page 5
    assert "listed again (for 1 uncertain request)" in result.stderr
    assert len(posts(tenant, since)) == 3  # the dropped one is not sent again
    stored_once(tenant, range(1300))
    assert emitted(result.states)[-1] == 1300


def test_a_run_killed_mid_load_resumes_with_a_delta_and_loads_every_invoice_once(
    tenant: StandIn, tmp_path: Path
) -> None:
    # One request at a time: its page bound is exact (several in flight, answered out of
    # order: test_a_kill_with_a_stored_batch_answered_after_later_ones_...).
    config = first_run(tenant, tmp_path)
    tenant.configure(latency_ms=150)
    since = len(tenant.requests())
    one_at_a_time = config.parent / "one-at-a-time.json"
    one_at_a_time.write_text(json.dumps({**json.loads(config.read_text()), "max_in_flight": 1}))
    target = Running(one_at_a_time)
    target.feed(singer_input(invoices_with_state(1000, every=100, start=1000)))
    wait_for(lambda: len(target.states) >= 2, timeout=60)
    target.kill()
    done = emitted(target.states)[-1] - 1000
    tenant.configure(latency_ms=0)
    resumed_from = len(tenant.requests())

    result = run_target(config, invoices_with_state(1000 - done, every=100, start=1000 + done))

    assert result.returncode == 0, result.stderr
    assert "every page" not in result.stderr
    read = pages_read(tenant, resumed_from)
    # one batch in flight: 4 pages, and the page the boundary opens
    assert read[0] == 1 and len(read) <= 1 + 5 and max(read) <= 5
    stored_once(tenant, range(2000))
    assert len(pages_read(tenant, since)) < PAGES


def test_a_kill_with_a_stored_batch_answered_after_later_ones_still_resumes_with_a_delta(
    tenant: StandIn, tmp_path: Path
) -> None:
    config = first_run(tenant, tmp_path)  # four requests in flight, the default
    since = len(tenant.requests())
    # the first batch to arrive is stored, then its answer held: the others are answered
    tenant.add_faults(
        {"path": "/invoices/batch", "action": "delay_after_store", "seconds": 120, "times": 1}
    )
    target = Running(config)
    target.feed(singer_input(invoices_with_state(1000, every=100, start=1000)))
    wait_for(lambda: len(tenant.store()) >= SEEDED + 2000, timeout=60)  # all stored
    target.kill()
    assert [rule["used"] for rule in tenant.faults()] == [1]
    done = emitted(target.states)[-1] - 1000 if target.states else 0  # STATE waits behind it
    assert done < 1000
    resumed_from = len(tenant.requests())

    result = run_target(config, invoices_with_state(1000 - done, every=100, start=1000 + done))

    assert result.returncode == 0, result.stderr
    assert "every page" not in result.stderr
    assert f"0 acknowledged, {1000 - done} already present" in result.stderr
    read = pages_read(tenant, resumed_from)
    # the watermark stayed below the held batch: at most the rows the killed run created
    assert read[0] == 1 and len(read) <= 1 + 1000 // 25 + 1
    stored_once(tenant, range(2000))
    assert len(pages_read(tenant, since)) < PAGES


def test_a_damaged_index_costs_one_full_listing(tenant: StandIn, tmp_path: Path) -> None:
    config = first_run(tenant, tmp_path)
    (index,) = index_files(tmp_path)
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 3])
    since = len(tenant.requests())

    result = run_target(config, invoices_with_state(10, every=10, start=1000))

    assert result.returncode == 0, result.stderr
    assert f"the index {index} is unusable" in result.stderr
    assert sorted(pages_read(tenant, since)) == list(range(1, 121))
    stored_once(tenant, range(1010))
    since = len(tenant.requests())
    again = run_target(config, invoices_with_state(10, every=10, start=1000))
    assert again.returncode == 0, again.stderr
    assert pages_read(tenant, since) == [1]


def test_a_plan_reads_the_same_index_and_writes_nothing_to_it(
    tenant: StandIn, tmp_path: Path
) -> None:
    first_run(tenant, tmp_path)
    (index,) = index_files(tmp_path)
    before = index.read_bytes()
    since = len(tenant.requests())
    plan = target_config(
        tenant,
        tmp_path,
        plan=True,
        dry_run_path=str(tmp_path / "plan.jsonl"),
    )

    result = run_target(plan, invoices_with_state(20, every=20, start=990))

    assert result.returncode == 0, result.stderr
    assert pages_read(tenant, since) == [1]
    assert posts(tenant, since) == []
    assert index.read_bytes() == before
    wal = index.with_name(index.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_the_index_is_named_by_host_and_tenant_and_holds_no_key(
    tenant: StandIn, tmp_path: Path
) -> None:
    first_run(tenant, tmp_path)
    tenant_id = tenant.store()[0]["tenantId"]
    (index,) = index_files(tmp_path)
    assert index.name == f"127.0.0.1_{tenant.port}-{tenant_id}.sqlite"
    for path in (tmp_path / "index").iterdir():
        assert API_KEY not in path.name
        assert API_KEY.encode() not in path.read_bytes()


def test_receipts_of_a_reset_tenant_are_contradicted_by_the_listing_and_reported_once(
    tmp_path: Path,
) -> None:
    with StandIn(api_key=API_KEY) as leanpay:
        config = target_config(leanpay, tmp_path, receipts_path=str(tmp_path / "r.jsonl"))
        assert run_target(config, invoices_with_state(282, every=100)).returncode == 0
        leanpay.reset()  # a stand-in started afresh: its tenant holds nothing

        result = run_target(config, invoices_with_state(282, every=100))

        assert result.returncode == 0, result.stderr
        assert (
            result.stderr.count("The store's receipts record 282 invoices this target created") == 1
        )
        assert "282 acknowledged, 0 already present" in result.stderr
        stored_once(leanpay, range(282))


def test_a_delta_that_adds_up_reads_no_receipt_and_a_full_listing_reports_what_leanpay_lacks(
    tenant: StandIn, tmp_path: Path
) -> None:
    config = first_run(tenant, tmp_path)
    (receipts,) = (tmp_path / "index").glob("*.receipts.jsonl")
    kept = json.loads(receipts.read_text().splitlines()[0])
    ghost = {**kept, "externalId": "INV-GHOST", "id": "00000000-0000-4000-8000-000000000000"}
    with receipts.open("a") as file:  # a receipt of an invoice Leanpay does not hold
        file.write(json.dumps(ghost) + "\n")
    since = len(tenant.requests())

    delta = run_target(config, invoices_with_state(10, every=10, start=1000))

    assert delta.returncode == 0, delta.stderr
    assert pages_read(tenant, since) == [1]
    assert "receipts record" not in delta.stderr  # the count proved the index: none read
    for cache in (tmp_path / "index").glob("*.sqlite*"):  # the next run lists every page
        cache.unlink()
    full = run_target(config, invoices_with_state(10, every=10, start=1010))
    assert full.returncode == 0, full.stderr
    assert (
        "The store's receipts record 1 invoice this target created that Leanpay does not "
        "list (first: 'INV-GHOST')"
    ) in full.stderr
    stored_once(tenant, range(1020))


def test_a_second_run_on_the_same_tenant_waits_for_the_first(
    tenant: StandIn, tmp_path: Path
) -> None:
    config = first_run(tenant, tmp_path)
    first = Running(config)
    first.feed(singer_input(invoices_with_state(100, every=100, start=1000)))
    wait_for(lambda: len(first.states) == 1)  # it holds the tenant, input still open
    second = Running(config)
    second.feed(singer_input(invoices_with_state(200, every=100, start=1000)))
    second.close_input()
    second.wait_for_stderr("Another target-leanpay run is loading this Leanpay tenant")
    posted_while_waiting = len(posts(tenant))

    first.close_input()
    assert first.process.wait(timeout=30) == 0
    assert second.process.wait(timeout=30) == 0
    first.kill()
    second.kill()

    assert posted_while_waiting == len(posts(tenant)) - 1  # the second sent only after
    stored_once(tenant, range(1200))
    # STATE 1100 may be skipped: when 1100-1199 are acknowledged by the time 1000-1099 are
    # found present, only the newest STATE is written (checkpoint.py)
    assert emitted(second.states) in ([1100, 1200], [1200])
    assert "100 already present" in "".join(second.stderr)


def test_by_default_the_store_is_the_users_state_folder_and_an_unusable_one_stops_the_run(
    tenant: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = target_config(tenant, tmp_path)
    settings = json.loads(config.read_text())
    del settings["store"]
    config.write_text(json.dumps(settings))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    first = run_target(config, invoices_with_state(10, every=10))

    assert first.returncode == 0, first.stderr
    tenant_id = tenant.store()[0]["tenantId"]
    folder = tmp_path / "state" / "target-leanpay"
    assert (folder / f"127.0.0.1_{tenant.port}-{tenant_id}.sqlite").exists()
    assert folder.stat().st_mode & 0o777 == 0o700
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "not-a-folder"))
    since = len(tenant.requests())

    second = run_target(config, invoices_with_state(10, every=10))

    # it holds promises (receipts, sending marks): a run that cannot keep them sends nothing
    assert second.returncode == 1
    assert second.stdout == ""  # no STATE
    unusable = tmp_path / "not-a-folder" / "target-leanpay"
    assert f"The store {unusable} cannot be written (Not a directory" in second.stderr
    assert "Traceback" not in second.stderr
    assert tenant.requests()[since:] == []


def test_a_kill_during_the_full_listing_leaves_an_index_that_is_not_trusted(
    tenant: StandIn, tmp_path: Path
) -> None:
    config = target_config(tenant, tmp_path, max_list_in_flight=1)
    # page 40 is held until the kill: the listing cannot end first, however busy the machine
    tenant.add_faults(
        {"path": "/invoices", "method": "GET", "page": 40, "action": "delay_before_store",
         "seconds": 600}
    )  # fmt: skip
    target = Running(config)
    target.feed(singer_input(invoices_with_state(10, every=10)))
    wait_for(lambda: 40 in pages_read(tenant))  # index rows written, not verified
    target.kill()
    (index,) = index_files(tmp_path)
    since = len(tenant.requests())

    result = run_target(config, invoices_with_state(10, every=10))

    assert result.returncode == 0, result.stderr
    assert "every page of invoices is read: no verified index of this tenant yet" in result.stderr
    assert sorted(pages_read(tenant, since)) == list(range(1, PAGES + 1))
    stored_once(tenant, range(10))
    since = len(tenant.requests())
    assert run_target(config, invoices_with_state(10, every=10)).returncode == 0
    assert pages_read(tenant, since) == [1]
    assert index.exists()
