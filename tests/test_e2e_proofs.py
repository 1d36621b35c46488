"""What the target believes Leanpay holds is proved before a record is skipped: each wrong
answer of a tenant index that believed a count (Leanpay changed in ways the count does
not show), through the real CLI against the stand-in. Judged by the requests its journal
recorded and by what it stores."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import test_e2e_references as refs
from conftest import (
    API_KEY,
    CLIENT_ID,
    emitted,
    invoices_with_state,
    payload,
    run_target,
    target_config,
)

from leanpay_standin import StandIn


def pages_read(leanpay: StandIn, since: int = 0) -> list[int]:
    """The page numbers of GET /invoices after the `since`-th journal entry, in order."""
    return [
        int(r["query"]["page"])
        for r in leanpay.requests()[since:]
        if r["method"] == "GET" and r["path"] == "/invoices"
    ]


def finds(leanpay: StandIn, since: int = 0, prefix: str = "/invoices/") -> int:
    """GET /<resource>/{id} requests after the `since`-th journal entry."""
    return sum(
        1
        for r in leanpay.requests()[since:]
        if r["method"] == "GET" and r["path"].startswith(prefix) and r["path"] != prefix
    )


def sent(leanpay: StandIn, since: int = 0, path: str = "/invoices/batch") -> list[str]:
    """The externalIds of the batch POSTs after the `since`-th journal entry."""
    key = {"/invoices/batch": "invoices", "/credit-notes/batch": "creditNotes"}[path]
    return [
        item["externalId"]
        for r in leanpay.requests()[since:]
        if r["method"] == "POST" and r["path"] == path and isinstance(r["body"], dict)
        for item in r["body"][key]
    ]


def stored_once(leanpay: StandIn, numbers: range | list[int]) -> None:
    """Leanpay holds INV-<n> for exactly these numbers, each once."""
    counts = Counter(i["externalId"] for i in leanpay.store())
    mine = {k: v for k, v in counts.items() if k and k.startswith("INV-")}
    assert sorted(mine) == [f"INV-{i:05d}" for i in numbers]
    assert set(mine.values()) == {1}, {k: v for k, v in mine.items() if v > 1}


def other_writer(leanpay: StandIn, numbers: range | list[int]) -> None:
    """Another writer imports INV-<n> for these numbers, 100 a batch."""
    numbers = list(numbers)
    for start in range(0, len(numbers), 100):
        answer = requests.post(
            leanpay.url + "/invoices/batch",
            json={"invoices": [payload(i) for i in numbers[start : start + 100]]},
            headers={"Authorization": API_KEY},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text


def next_second() -> None:
    """Let the stand-in's one-second createdAt clock tick: runs an hour apart never share
    a createdAt (a precondition, not a check: nothing is judged by time)."""
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.01)


def ok(result: Any) -> None:
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("order", "created"), [("newest", 26), ("oldest", 3)])
def test_creations_and_a_deletion_since_the_last_run_each_count(
    tmp_path: Path, order: str, created: int
) -> None:
    # 26 created and 1 deleted: a walk that stops at `total - indexed` new ones missed one
    # (sent again: held twice) and kept believing the deleted one (never sent: lost).
    # Oldest first, 3 created on the last page did the same.
    with StandIn(api_key=API_KEY, order=order) as leanpay:  # type: ignore[arg-type]
        leanpay.seed_invoices(1010)
        config = target_config(leanpay, tmp_path)
        ok(run_target(config, invoices_with_state(500, every=100)))
        other_writer(leanpay, range(500, 500 + created))
        assert leanpay.delete(external_ids=["INV-00100"]) == 1
        since = len(leanpay.requests())

        result = run_target(config, invoices_with_state(500 + created, every=100))

        ok(result)
        assert sent(leanpay, since) == ["INV-00100"]
        stored_once(leanpay, range(500 + created))
        assert "holds 1 invoices more than Leanpay lists" in result.stderr
        assert emitted(result.states)[-1] == 500 + created


def test_a_deletion_during_the_first_full_listing_is_caught_and_listed_again(
    tmp_path: Path,
) -> None:
    # max_list_in_flight 1: pages 1 and 2 are read, then the oldest invoice is deleted
    # just before page 3 is answered: INV-00050 moves up to page 2, already read
    with StandIn(api_key=API_KEY, order="oldest") as leanpay:
        other_writer(leanpay, range(200))
        leanpay.add_faults(
            {
                "action": "delete_before_answer",
                "path": "/invoices",
                "page": 3,
                "which": "oldest",
                "times": 1,
            }
        )
        config = target_config(leanpay, tmp_path, max_list_in_flight=1)
        since = len(leanpay.requests())

        result = run_target(config, invoices_with_state(200, every=100))

        ok(result)
        assert "invoices are listed again (attempt 2 of 3): the tenant changed" in result.stderr
        assert pages_read(leanpay) == [*range(1, 9), *range(1, 9)]  # 200, then 199: 8 pages
        assert sent(leanpay, since) == ["INV-00000"]  # the deleted one; INV-00050 was not hidden
        stored_once(leanpay, range(200))

        since = len(leanpay.requests())  # the index it verified is whole
        again = run_target(config, invoices_with_state(200, every=100))
        ok(again)
        assert sent(leanpay, since) == [] and "every page" not in again.stderr
        assert pages_read(leanpay, since) == [1, 8]


def test_a_tenant_that_keeps_changing_under_every_listing_stops_the_run_with_one_line(
    tmp_path: Path,
) -> None:
    with StandIn(api_key=API_KEY, order="oldest") as leanpay:
        other_writer(leanpay, range(200))
        leanpay.add_faults(
            {
                "action": "delete_before_answer",
                "path": "/invoices",
                "page": 3,
                "which": "oldest",
                "times": None,
            }
        )
        since = len(leanpay.requests())
        config = target_config(leanpay, tmp_path, max_list_in_flight=1)

        result = run_target(config, invoices_with_state(200, every=100))

        assert result.returncode == 1
        assert result.stdout == ""  # no STATE
        assert sent(leanpay, since) == []
        assert pages_read(leanpay, since) == [*range(1, 9)] * 3
        assert (
            "Replay safety: Leanpay's list of invoices changed under each of 3 listings (the "
            "last: the tenant changed while it was read (total 198 on page 1, 197 on page 3)), "
            "so which invoices it holds cannot be proved; nothing was sent. Run again once "
            "the tenant is quiet"
        ) in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("clock", ["millisecond", "second"])
def test_a_reset_tenant_refilled_by_another_writer_with_more_is_read_whole(
    tmp_path: Path, clock: str
) -> None:
    # the index held INV 0-299; after the reset another writer loaded 450 others: a walk
    # that stopped at `total - indexed` new ones lost the 300 and doubled 300 of theirs
    with StandIn(api_key=API_KEY, order="newest") as leanpay:
        leanpay.configure(created_at=clock)
        config = target_config(leanpay, tmp_path)
        ok(run_target(config, invoices_with_state(300, every=100)))
        leanpay.empty_tenant()
        next_second()
        other_writer(leanpay, range(300, 750))
        next_second()
        since = len(leanpay.requests())

        result = run_target(config, invoices_with_state(750, every=100))

        ok(result)
        assert sorted(sent(leanpay, since)) == [f"INV-{i:05d}" for i in range(300)]
        stored_once(leanpay, range(750))
        read = pages_read(leanpay, since)  # every page (450 in one second: once more)
        assert sorted(set(read)) == list(range(1, 19)) and len(read) <= 19

        next_second()
        since = len(leanpay.requests())  # the reloaded tenant: the next run is a delta
        again = run_target(config, invoices_with_state(110, every=110, start=740))
        ok(again)
        assert len(pages_read(leanpay, since)) <= 20 and "every page" not in again.stderr
        assert sorted(sent(leanpay, since)) == [f"INV-{i:05d}" for i in range(750, 850)]
        stored_once(leanpay, range(850))


def credit_notes(count: int) -> list[dict[str, Any]]:
    stream = "erp-credits"
    messages: list[dict[str, Any]] = [
        {
            "type": "SCHEMA",
            "stream": stream,
            "schema": {"type": "object", "properties": {}},
            "key_properties": ["externalId"],
        }
    ]
    for n in range(count):
        record = {
            "externalId": f"CN-{n}",
            "clientId": CLIENT_ID,
            "reference": f"A-{n}",
            "amount": 500 + n,
            "issueDate": "2024-03-05",
        }
        messages.append({"type": "RECORD", "stream": stream, "record": record})
    messages.append({"type": "STATE", "value": {"done": count}})
    return messages


def test_credit_notes_of_a_reset_tenant_are_found_missing_and_sent_again(
    tmp_path: Path,
) -> None:
    with StandIn(api_key=API_KEY) as leanpay:
        config = target_config(
            leanpay,
            tmp_path,
            receipts_path=str(tmp_path / "receipts.jsonl"),
            stream_resources={"erp-credits": "credit_notes"},
        )
        ok(run_target(config, credit_notes(20)))
        since = len(leanpay.requests())
        again = run_target(config, credit_notes(20))
        ok(again)
        assert sent(leanpay, since, "/credit-notes/batch") == []  # found: still there
        assert finds(leanpay, since, "/credit-notes/") == 20

        leanpay.empty_tenant()
        since = len(leanpay.requests())

        result = run_target(config, credit_notes(20))

        ok(result)
        assert finds(leanpay, since, "/credit-notes/") == 20
        assert sorted(sent(leanpay, since, "/credit-notes/batch")) == sorted(
            f"CN-{n}" for n in range(20)
        )
        assert Counter(c["externalId"] for c in leanpay.store("credit_notes")) == {
            f"CN-{n}": 1 for n in range(20)
        }
        assert "Leanpay no longer holds 20 credit notes" in result.stderr


def test_a_refused_batch_is_checked_before_its_other_items_are_sent_again(
    tmp_path: Path,
) -> None:
    # the 50th of 150 refused while inserting, the 49 before it stored, then a 400: they
    # were held twice when the rest was sent again unchecked
    with StandIn(api_key=API_KEY, order="newest") as leanpay:
        leanpay.configure(created_at="second")  # a batch shares one createdAt
        leanpay.seed_invoices(2000, batch=100)
        config = target_config(
            leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(tmp_path / "dead.jsonl")
        )
        ok(run_target(config, invoices_with_state(10, every=10, start=5000)))  # the index
        next_second()
        leanpay.add_faults(
            {"action": "partial_refusal", "path": "/invoices/batch", "index": 49, "times": 1}
        )
        since = len(leanpay.requests())

        result = run_target(config, invoices_with_state(150, every=50))

        ok(result)
        stored_once(leanpay, [*range(49), *range(50, 150), *range(5000, 5010)])
        posted = sent(leanpay, since)
        assert posted[:100] == [f"INV-{i:05d}" for i in range(100)]  # the refused batch
        assert posted[100:] == [f"INV-{i:05d}" for i in range(50, 150)]  # not the 49 kept
        dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
        assert [d["record"]["externalId"] for d in dead] == ["INV-00049"]
        checked = pages_read(leanpay, since)
        assert len(checked) <= 1 + 3 + 2  # page 1 and the last; the check: a page or two


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_a_tenant_this_target_filled_gets_delta_runs(tmp_path: Path, order: str) -> None:
    # each batch of 100 shares one createdAt, and every batch sent within one second: the
    # pages tie; page 1 is compared with the last page, never believed alone
    with StandIn(api_key=API_KEY, order=order) as leanpay:  # type: ignore[arg-type]
        leanpay.configure(created_at="second")  # a batch shares one createdAt
        leanpay.seed_invoices(2000, batch=100)
        config = target_config(leanpay, tmp_path)
        ok(run_target(config, invoices_with_state(1000, every=100)))
        for run in range(2):
            next_second()
            since = len(leanpay.requests())
            start = 990 + 100 * run
            result = run_target(config, invoices_with_state(110, every=110, start=start))
            ok(result)
            assert "every page" not in result.stderr
            assert len(pages_read(leanpay, since)) <= 20
            assert finds(leanpay, since) == 0
            assert sorted(sent(leanpay, since)) == [
                f"INV-{i:05d}" for i in range(start + 10, start + 110)
            ]
        stored_once(leanpay, range(1200))


def test_an_hourly_full_table_tap_costs_two_pages_and_a_deletion_is_sent_again(
    tmp_path: Path,
) -> None:
    # 300 invoices re-sent every hour into a 5,000-invoice tenant
    with StandIn(api_key=API_KEY, order="oldest") as leanpay:
        leanpay.configure(created_at="second")  # a batch shares one createdAt
        leanpay.seed_invoices(4700, batch=100)
        config = target_config(leanpay, tmp_path)
        ok(run_target(config, invoices_with_state(300, every=100)))
        pages = math.ceil(5000 / 25)
        for _hour in range(2):
            next_second()
            since = len(leanpay.requests())
            result = run_target(config, invoices_with_state(300, every=100))
            ok(result)
            assert len(pages_read(leanpay, since)) <= 2 and finds(leanpay, since) == 0
            assert sent(leanpay, since) == []

        assert leanpay.delete(external_ids=["INV-00150"]) == 1
        since = len(leanpay.requests())
        result = run_target(config, invoices_with_state(300, every=100))
        ok(result)
        assert sent(leanpay, since) == ["INV-00150"]
        stored_once(leanpay, range(300))
        found, read = finds(leanpay, since), len(pages_read(leanpay, since))
        assert (found <= 300 and read <= 3) or (found <= pages and read <= 2 * pages + 3)

        since = len(leanpay.requests())  # whole again: the next hour is cheap
        ok(run_target(config, invoices_with_state(300, every=100)))
        assert len(pages_read(leanpay, since)) <= 2 and finds(leanpay, since) == 0


def test_a_link_whose_invoice_row_lacks_credit_note_links_is_set_aside_never_sent_twice(
    tmp_path: Path,
) -> None:
    # the link's answer is lost after it was stored; the listing that would settle it
    # gives rows without creditNoteLinks: that is "cannot tell", never "none"
    with StandIn(api_key=API_KEY) as leanpay:
        leanpay.seed_invoices(30)
        config = refs.config(leanpay, tmp_path)
        ok(run_target(config, [*refs.SCHEMAS, refs.credit_note(0), refs.state(1)]))
        leanpay.configure(omit_fields=["creditNoteLinks"])
        leanpay.add_faults({"path": "/links/batch", "action": "drop_after_store", "times": 1})

        result = run_target(config, [*refs.SCHEMAS, refs.link(0, "seed-000007", "CN-0")])

        ok(result)
        posts = [r for r in leanpay.requests() if r["path"] == "/links/batch"]
        assert len(posts) == 1  # sent once, its answer lost, never sent again
        assert [link["externalId"] for link in leanpay.store("links")] == ["LNK-0"]
        (dead,) = refs.dead_letters(tmp_path)
        assert dead["record"]["externalId"] == "LNK-0"
        assert "has no creditNoteLinks field to tell" in json.dumps(dead)


def test_links_and_credit_notes_believed_from_receipts_are_found_by_id(tmp_path: Path) -> None:
    with StandIn(api_key=API_KEY) as leanpay:
        leanpay.seed_invoices(30)
        config = refs.config(leanpay, tmp_path)
        messages = [
            *refs.SCHEMAS,
            refs.credit_note(0),
            refs.link(0, "seed-000007", "CN-0"),
            refs.payback(0, "CN-0"),
            refs.state(3),
        ]
        ok(run_target(config, messages))
        assert leanpay.delete("links", external_ids=["LNK-0"]) == 1
        since = len(leanpay.requests())

        result = run_target(config, messages)

        ok(result)
        assert finds(leanpay, since, "/credit-notes/") == 1
        assert finds(leanpay, since, "/paybacks/") == 1
        assert finds(leanpay, since, "/links/") == 1
        posted = [r["path"] for r in leanpay.requests()[since:] if r["method"] == "POST"]
        assert posted == ["/links/batch"]  # the deleted link only: the others are there
        assert [link["externalId"] for link in leanpay.store("links")] == ["LNK-0"]
        assert "Leanpay no longer holds 1 link" in result.stderr


def test_finds_answering_404_beyond_what_the_count_allows_are_not_believed(
    tmp_path: Path,
) -> None:
    # a path Leanpay does not serve answers 404 too: more 404s than deletions the count
    # showed, and every page is read instead of sending Leanpay's invoices twice
    with StandIn(api_key=API_KEY, order="newest") as leanpay:
        leanpay.seed_invoices(5000)  # 212 pages: 100 finds cost less
        config = target_config(leanpay, tmp_path)
        ok(run_target(config, invoices_with_state(300, every=100)))
        assert leanpay.delete(external_ids=["INV-00010"]) == 1
        leanpay.add_faults(
            {
                "action": "status",
                "method": "GET",
                "path": "/invoices/{id}",
                "status": 404,
                "times": None,
            }
        )
        since = len(leanpay.requests())

        result = run_target(config, invoices_with_state(300, every=100))

        ok(result)
        assert "more than the count allows: every page is read instead" in result.stderr
        assert sent(leanpay, since) == ["INV-00010"]
        stored_once(leanpay, range(300))
        assert 0 < finds(leanpay, since) <= 100  # one chunk's, then no more
        assert set(pages_read(leanpay, since)) == set(range(1, 213))  # 5,299 invoices


def test_an_invoice_that_became_visible_late_is_caught_by_the_count(tmp_path: Path) -> None:
    # another writer's long transaction: INV-00300 gets its createdAt before the last
    # listing, is listed only after it, below the watermark where no walk reads
    with StandIn(api_key=API_KEY, order="newest") as leanpay:
        leanpay.seed_invoices(500)
        config = target_config(leanpay, tmp_path)
        leanpay.store_late([payload(300)])
        ok(run_target(config, invoices_with_state(100, every=100)))
        leanpay.reveal_late()
        since = len(leanpay.requests())

        result = run_target(config, invoices_with_state(301, every=100))

        ok(result)
        assert "the count does not add up: Leanpay lists 601 invoices, 1 more" in result.stderr
        assert sorted(sent(leanpay, since)) == [f"INV-{i:05d}" for i in range(100, 300)]
        stored_once(leanpay, range(301))
