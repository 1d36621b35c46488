"""The store through the real CLI: a damaged tenant index costs a listing, never a
traceback or a wrong answer; damage nothing reads is not seen (a documented limit); a run
whose every record is rejected ends without a word about the index. Judged by the pages
and POSTs the stand-in's journal shows and by what it stores."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    API_KEY,
    invoice,
    invoices_with_state,
    run_target,
    schema,
    state,
    target_config,
)
from support.erp import ROUTES, SCHEMAS, credit_note

from leanpay_standin import StandIn

SEEDED = 200  # 8 pages of 25


def pages_read(leanpay: StandIn, since: int = 0) -> list[int]:
    return [
        int(r["query"]["page"])
        for r in leanpay.requests()[since:]
        if r["method"] == "GET" and r["path"] == "/invoices"
    ]


def posted(leanpay: StandIn, since: int = 0) -> list[str]:
    """The externalIds of every invoice POSTed after the `since`-th journal entry."""
    return [
        item["externalId"]
        for r in leanpay.requests()[since:]
        if r["method"] == "POST" and r["path"] == "/invoices/batch"
        for item in (r["body"] or {}).get("invoices", [])
    ]


def held(leanpay: StandIn) -> Counter[str]:
    return Counter(i["externalId"] for i in leanpay.store() if i["externalId"].startswith("INV-"))


@pytest.fixture
def leanpay() -> Iterator[StandIn]:
    with StandIn(api_key=API_KEY, order="newest") as server:
        server.seed_invoices(SEEDED)
        yield server


def loaded(leanpay: StandIn, tmp_path: Path) -> tuple[Path, Path]:
    """INV-00000..00099 loaded by a first run (a full listing); the config, the index."""
    config = target_config(leanpay, tmp_path)
    first = run_target(config, invoices_with_state(100, every=50))
    assert first.returncode == 0, first.stderr
    (index,) = sorted((tmp_path / "index").glob("*.sqlite"))
    return config, index


def garble(index: Path, statement: str) -> None:
    db = sqlite3.connect(index)
    db.execute(statement)
    db.commit()
    db.close()


def test_garbled_contents_cost_a_full_listing_not_a_traceback_nor_a_wrong_answer(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config, index = loaded(leanpay, tmp_path)
    garble(index, "UPDATE invoices SET contents = x'7b22616d' WHERE external_id = 'INV-00007'")
    since = len(leanpay.requests())

    result = run_target(config, invoices_with_state(10, every=10, start=0))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "DecodeError" not in result.stderr
    assert "unreadable fields of invoice" in result.stderr
    assert "10 already present" in result.stderr
    assert posted(leanpay, since) == []
    assert sorted(set(pages_read(leanpay, since))) == list(range(1, 13))  # 300 rows
    assert set(held(leanpay).values()) == {1}
    since = len(leanpay.requests())
    again = run_target(config, invoices_with_state(10, every=10, start=0))
    assert again.returncode == 0, again.stderr
    assert pages_read(leanpay, since) == [1]  # rebuilt: a delta again
    assert "10 already present" in again.stderr


def test_a_garbled_external_id_of_an_old_row_is_not_seen_a_documented_limit(
    leanpay: StandIn, tmp_path: Path
) -> None:
    """Nothing reads that row (a lookup by INV-00007 finds none), and only a whole-file
    check would: the record is sent again. The README says so."""
    config, index = loaded(leanpay, tmp_path)
    garble(index, "UPDATE invoices SET external_id = 'INV-0000?' WHERE external_id = 'INV-00007'")
    since = len(leanpay.requests())

    result = run_target(config, invoices_with_state(10, every=10, start=0))

    assert result.returncode == 0, result.stderr
    assert posted(leanpay, since) == ["INV-00007"]
    assert pages_read(leanpay, since) == [1]


def test_a_run_whose_every_record_is_rejected_says_nothing_of_the_index(
    tmp_path: Path,
) -> None:
    """The run ends while its first listing (20,000 invoices, nobody waits for it) is still
    filling the index: closing the index under it used to log that it "failed (Cannot
    operate on a closed database.)". A race seen from outside (the process may exit first):
    `test_store.py` holds a page to reproduce it every time."""
    with StandIn(api_key=API_KEY, order="newest") as leanpay:
        leanpay.seed_invoices(20_000)
        config = target_config(leanpay, tmp_path, dead_letter_path=str(tmp_path / "dead.jsonl"))
        messages = [schema(), *(invoice(i, amount=-1) for i in range(10)), state(10)]

        result = run_target(config, messages)

        assert result.returncode == 0, result.stderr
        assert "10 rejected" in result.stderr
        assert "closed database" not in result.stderr
        assert "failed" not in result.stderr


NOT_A_RECEIPT = b'{"resource":"credit_notes","externalId":"CN-0","id":12}\n'
NOT_A_MARK = b'{"resource":"credit_notes","externalIds":"CN-0"}\n'


@pytest.mark.parametrize(
    ("damaged", "line", "says"),
    [
        ("receipts.jsonl", NOT_A_RECEIPT, "is not a receipt"),
        ("sending.jsonl", NOT_A_MARK, "is not a sending mark"),
    ],
    ids=["receipt", "sending-mark"],
)
def test_a_damaged_promise_stops_the_run_naming_its_file_and_sends_nothing(
    tmp_path: Path, damaged: str, line: bytes, says: str
) -> None:
    with StandIn(api_key=API_KEY) as leanpay:
        config = target_config(
            leanpay,
            tmp_path,
            stream_resources=ROUTES,
            receipts_path=str(tmp_path / "receipts.jsonl"),
        )
        done = {"type": "STATE", "value": {"done": 3}}
        messages = [SCHEMAS[1], *(credit_note(n) for n in range(3)), done]
        assert run_target(config, messages).returncode == 0
        promise = tmp_path / "index" / f"127.0.0.1_{leanpay.port}.{damaged}"  # in the store
        number = len(promise.read_bytes().splitlines()) + 1
        with promise.open("ab") as file:
            file.write(line)
        since = len(leanpay.requests())

        result = run_target(config, [*messages[:-1], credit_note(3), done])

        assert result.returncode == 1
        assert result.stdout == ""  # no STATE
        assert f"{promise} line {number} {says}" in result.stderr
        assert "Traceback" not in result.stderr and "Warning" not in result.stderr
        assert [r for r in leanpay.requests()[since:] if r["method"] == "POST"] == []
