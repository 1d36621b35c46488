"""End to end: links and paybacks read before the invoices and credit notes they name
(a tap emitting its streams alphabetically) wait for them (parking.py): loaded once,
STATE only behind settled records, a reference whose document never comes rejected at
the end of the input, and a large waiting set held mostly on disk."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import Running, batch_posts, run_target, singer_input, wait_for
from support.dead_letters import dead_letters
from support.erp import (
    SCHEMAS,
    config,
    credit_note,
    ids_by_external_id,
    invoice,
    link,
    payback,
)

from leanpay_standin import StandIn
from target_leanpay.sending.parking import PARKED_IN_MEMORY


def step(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"step": n}}


def test_links_and_paybacks_before_their_documents_are_loaded_once_with_state_behind_them(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = [
        *SCHEMAS,
        *(invoice(n) for n in (100, 101, 102)),  # read first: nothing waits for them
        step(1),
        *(link(n, f"INV-{n}", f"CN-{n}") for n in range(10)),
        payback(0, "CN-3"),
        step(2),
        *(credit_note(n) for n in range(10)),
        step(3),
        *(invoice(n) for n in range(10)),
        link(99, "INV-NEVER", "CN-0"),  # its invoice never comes: waits to the end
        step(4),
    ]

    # one sending thread, ten records a request, no partial batch sent for waiting: which
    # STATE is written follows from the input alone
    settings = {"max_in_flight": 1, "batch_size_rows": 10, "batch_wait_limit_seconds": 86_400}

    result = run_target(config(leanpay, tmp_path, **settings), messages)

    assert result.returncode == 0, result.stderr[-3000:]
    # step 1 once its invoices are acknowledged; step 2 (the links) never: the links are
    # sent once the tenth of their invoices, read after step 3, is read, and settle after
    # it; by then step 3 (the credit notes and the payback) is covered too; step 4 waits
    # for the link whose invoice never comes, rejected at the end of the input
    assert result.states == [{"step": 1}, {"step": 3}, {"step": 4}]
    invoices = ids_by_external_id(leanpay, "invoices")
    credit_notes = ids_by_external_id(leanpay, "credit_notes")
    assert len(invoices) == 13 and len(credit_notes) == 10
    links = {s["externalId"]: s for s in leanpay.store("links")}
    assert sorted(links) == sorted(f"LNK-{n}" for n in range(10))
    for n in range(10):
        assert links[f"LNK-{n}"]["invoiceId"] == invoices[f"INV-{n}"]
        assert links[f"LNK-{n}"]["creditNoteId"] == credit_notes[f"CN-{n}"]
    [refund] = leanpay.store("paybacks")
    assert refund["creditNoteId"] == credit_notes["CN-3"]
    posts = batch_posts(leanpay, "/links/batch")
    sent = Counter(i["externalId"] for post in posts for i in post["body"]["links"])
    assert sent == Counter(f"LNK-{n}" for n in range(10))  # each sent once
    [letter] = dead_letters(tmp_path)
    assert letter["record"]["externalId"] == "LNK-99"
    assert letter["reasons"] == [
        {
            "field": "invoiceId",
            "reason": "no invoices with externalId 'INV-NEVER' is known to Leanpay (not "
            "listed by Leanpay, nor loaded from this input)",
        }
    ]


def test_a_large_waiting_set_waits_on_disk_past_the_constant(
    leanpay: StandIn, tmp_path: Path
) -> None:
    count = PARKED_IN_MEMORY + 150
    messages = [
        *SCHEMAS,
        credit_note(0),
        *(link(n, f"INV-{n}", "CN-0") for n in range(count)),
        *(invoice(n) for n in range(count)),
        step(1),
    ]

    result = run_target(config(leanpay, tmp_path, max_in_flight=2), messages, timeout=180)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.states == [{"step": 1}]
    invoices = ids_by_external_id(leanpay, "invoices")
    stored = leanpay.store("links")
    assert len(stored) == count == len(ids_by_external_id(leanpay, "links"))
    assert all(s["invoiceId"] == invoices[f"INV-{s['amount'] - 100}"] for s in stored)
    assert dead_letters(tmp_path) == []
    # what the parking measured: never more than the constant in memory, the rest on disk
    assert (
        f"{count} records naming documents not read yet (nor known to Leanpay) waited for them "
        f"(at most {PARKED_IN_MEMORY} in memory, 150 on disk)"
    ) in result.stderr


def test_a_repeated_link_read_before_its_documents_is_sent_once(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = [
        *SCHEMAS,
        link(1, "INV-1", "CN-1"),
        link(1, "INV-1", "CN-1"),  # the same row twice
        credit_note(1),
        invoice(1),
        step(1),
    ]

    result = run_target(config(leanpay, tmp_path, max_in_flight=2), messages)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.states == [{"step": 1}]
    [stored] = leanpay.store("links")
    assert stored["invoiceId"] == ids_by_external_id(leanpay, "invoices")["INV-1"]
    posts = batch_posts(leanpay, "/links/batch")
    assert [i["externalId"] for post in posts for i in post["body"]["links"]] == ["LNK-1"]
    assert (
        "stream 'erp-links' -> links: 2 records read, 1 acknowledged, 1 already present"
        in result.stderr
    )
    assert dead_letters(tmp_path) == []


def test_a_signal_while_a_link_waits_for_its_invoice_writes_no_state_past_it(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = [
        *SCHEMAS, invoice(100), credit_note(0), step(1),
        link(0, "INV-0", "CN-0"),  # INV-0 is not read yet: the link waits
        step(2), invoice(1), step(3),
    ]  # fmt: skip
    target = Running(config(leanpay, tmp_path, batch_size_rows=1))
    target.feed(singer_input(messages))  # stdin stays open: INV-0 may come yet

    wait_for(lambda: len(leanpay.store("invoices")) == 2 and target.stdout)
    target.process.send_signal(signal.SIGTERM)

    assert target.process.wait(timeout=60) == 128 + signal.SIGTERM
    target.kill()  # already gone: collects its output
    # invoice 1 is acknowledged, but steps 2 and 3 cover the waiting link
    assert [json.loads(line) for line in target.stdout] == [{"step": 1}]
    assert leanpay.store("links") == []
