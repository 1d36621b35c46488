"""Links and paybacks by the user's own ids, receipts, plan mode: the real CLI against the
stand-in, asserting the bytes it received."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, CLIENT_ID, run_target
from support.dead_letters import dead_letters
from support.erp import (
    CREDIT_NOTES,
    INVOICES,
    LINKS,
    SCHEMAS,
    config,
    credit_note,
    ids_by_external_id,
    invoice,
    link,
    payback,
    record,
    state,
)

from leanpay_standin import StandIn


def test_links_by_external_ids_carry_the_uuids_leanpay_gave(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.seed_invoices(30)  # invoices loaded earlier: seed-000001, ...
    messages = [
        *SCHEMAS,
        *(credit_note(n) for n in range(3)),
        state(3),
        link(0, "seed-000007", "CN-0"),
        link(1, "seed-000030", "CN-2"),
        payback(0, "CN-1"),
        state(6),
    ]

    result = run_target(config(leanpay, tmp_path), messages)

    assert result.returncode == 0, result.stderr
    invoices = ids_by_external_id(leanpay, "invoices")
    credit_notes = ids_by_external_id(leanpay, "credit_notes")
    assert leanpay.posted_items("links") == [
        {"invoiceId": invoices["seed-000007"], "creditNoteId": credit_notes["CN-0"],
         "amount": 100, "date": "2024-03-10", "externalId": "LNK-0"},
        {"invoiceId": invoices["seed-000030"], "creditNoteId": credit_notes["CN-2"],
         "amount": 101, "date": "2024-03-10", "externalId": "LNK-1"},
    ]  # fmt: skip
    assert leanpay.posted_items("paybacks") == [
        {"creditNoteId": credit_notes["CN-1"], "amount": 50, "date": "2024-03-12",
         "externalId": "PB-0"},
    ]  # fmt: skip
    assert emitted_done(result) == [3, 6] or emitted_done(result) == [6]


def emitted_done(result: Any) -> list[int]:
    return [s["done"] for s in result.states]


def test_a_link_waits_for_its_objects_created_earlier_in_the_run_across_interleaved_streams(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # invoices and credit notes are still buffered (partial chunks) when the links come
    leanpay.configure(latency_ms=30)
    messages: list[dict[str, Any]] = list(SCHEMAS)
    for n in range(150):
        messages += [invoice(n), credit_note(n), link(n, f"INV-{n}", f"CN-{n}")]
        if n % 50 == 49:
            messages.append(state(n + 1))

    result = run_target(config(leanpay, tmp_path, max_in_flight=4), messages)

    assert result.returncode == 0, result.stderr
    invoices = ids_by_external_id(leanpay, "invoices")
    credit_notes = ids_by_external_id(leanpay, "credit_notes")
    links = leanpay.posted_items("links")  # two chunks in flight at once: in either order
    assert sorted((x["externalId"], x["invoiceId"], x["creditNoteId"]) for x in links) == sorted(
        (f"LNK-{n}", invoices[f"INV-{n}"], credit_notes[f"CN-{n}"]) for n in range(150)
    )
    # each link was sent after Leanpay had answered for its invoice and credit note
    answered = {
        item["externalId"]: entry["answered"]
        for entry in leanpay.requests()
        if entry["method"] == "POST" and entry["status"] == 201
        for items in entry["body"].values()
        for item in items
    }
    for entry in leanpay.requests():
        if entry["path"] == "/links/batch":
            for item in entry["body"]["links"]:
                n = item["externalId"].removeprefix("LNK-")
                assert entry["time"] > max(answered[f"INV-{n}"], answered[f"CN-{n}"])
    assert emitted_done(result)[-1] == 150
    assert emitted_done(result) == sorted(emitted_done(result))
    assert dead_letters(tmp_path) == []


def test_a_credit_note_created_in_one_run_resolves_in_the_next_from_the_receipts_alone(
    leanpay: StandIn, tmp_path: Path
) -> None:
    first = run_target(config(leanpay, tmp_path), [*SCHEMAS, credit_note(1), state(1)])
    assert first.returncode == 0, first.stderr
    (receipt,) = [json.loads(x) for x in (tmp_path / "receipts.jsonl").read_text().splitlines()]
    cn_id = ids_by_external_id(leanpay, "credit_notes")["CN-1"]
    assert receipt == {
        "resource": "credit_notes", "externalId": "CN-1", "id": cn_id,
        "stream": CREDIT_NOTES, "run_started": receipt["run_started"],
        "tenantId": leanpay.store("credit_notes")[0]["tenantId"],  # whose receipt it is
        "sent": {"clientId": CLIENT_ID, "reference": "A-1", "amount": 501,
                 "issueDate": "2024-03-05"},
        "run_id": receipt["run_id"],  # the run that received it (its dead letters' run_id)
    }  # fmt: skip

    second = run_target(
        config(leanpay, tmp_path), [*SCHEMAS, credit_note(1), payback(1, "CN-1"), state(2)]
    )

    assert second.returncode == 0, second.stderr
    assert len(leanpay.store("credit_notes")) == 1  # the repeat is already present
    assert leanpay.posted_items("paybacks")[0]["creditNoteId"] == cn_id
    assert emitted_done(second) == [2]


def test_an_unknown_reference_is_dead_lettered_with_its_reason(
    leanpay: StandIn, tmp_path: Path
) -> None:
    messages = [*SCHEMAS, credit_note(1), link(1, "INV-NOPE", "CN-1"), payback(2, "CN-404")]
    messages.append(state(3))

    result = run_target(config(leanpay, tmp_path), messages)

    assert result.returncode == 0, result.stderr
    assert leanpay.posted_items("links") == leanpay.posted_items("paybacks") == []
    reasons = {line["record"]["externalId"]: line["reasons"] for line in dead_letters(tmp_path)}
    assert reasons == {
        "LNK-1": [
            {"field": "invoiceId", "reason": "no invoices with externalId 'INV-NOPE' is known "
             "to Leanpay (not listed by Leanpay, nor loaded from this input)"}
        ],
        "PB-2": [
            {"field": "creditNoteId", "reason": "no credit_notes with externalId 'CN-404' is "
             "known to Leanpay (credit_notes cannot be listed: only those loaded from this "
             "input or received by an earlier run into this store (its receipts) can be "
             "referred to by externalId)"}
        ],
    }  # fmt: skip
    assert emitted_done(result) == [3]


@pytest.mark.parametrize("duplicates", ["accept", "refuse"])
def test_a_kill_between_acknowledgement_and_receipt_sends_nothing_twice_nor_a_wrong_uuid(
    tmp_path: Path, duplicates: str
) -> None:
    # What a kill -9 in that window leaves: Leanpay holds the second batch of credit
    # notes; their receipts never reached the disk; STATE stops before them (receipts
    # are written first). Built exactly here, then the tap resumes from that STATE.
    with StandIn(api_key="k-refs-0001", duplicates=duplicates) as leanpay:
        settings = config(leanpay, tmp_path, api_key="k-refs-0001", batch_size_rows=100)
        notes = [credit_note(n) for n in range(200)]
        run = run_target(settings, [*SCHEMAS, *notes[:100], state(100), *notes[100:], state(200)])
        assert run.returncode == 0, run.stderr
        (receipts,) = (tmp_path / "index").glob("*.receipts.jsonl")  # the store's
        lines = receipts.read_text().splitlines()
        kept = [x for x in lines if int(json.loads(x)["externalId"].removeprefix("CN-")) < 100]
        assert len(kept) == 100 and len(lines) == 200
        receipts.write_text("".join(line + "\n" for line in kept))

        resumed = run_target(
            settings,
            [*SCHEMAS, *notes[100:], state(200), *(payback(n, f"CN-{n}") for n in range(200)),
             state(400)],
        )  # fmt: skip

        assert resumed.returncode == 0, resumed.stderr
        stored = [o["externalId"] for o in leanpay.store("credit_notes")]
        assert sorted(stored) == sorted(f"CN-{n}" for n in range(200))  # none stored twice
        assert len(leanpay.posted_items("credit_notes")) == 200
        by_id = {o["id"]: o["externalId"] for o in leanpay.store("credit_notes")}
        for sent in leanpay.posted_items("paybacks"):  # every UUID sent is the right one
            assert by_id[sent["creditNoteId"]] == f"CN-{sent['externalId'].removeprefix('PB-')}"
        assert len(leanpay.posted_items("paybacks")) == 100
        # marked on the wire, never receipted: set aside with why, and their paybacks too
        lines = {x["record"]["externalId"]: x for x in dead_letters(tmp_path)}
        assert set(lines) == {f"CN-{n}" for n in range(100, 200)} | {
            f"PB-{n}" for n in range(100, 200)
        }
        assert lines["CN-150"]["reasons"][0]["reason"].startswith(
            "a run that stopped abruptly (kill -9, a crash) was sending it to Leanpay when it "
            "died, so Leanpay may hold it"
        )
        assert lines["PB-150"]["reasons"][0]["reason"] == (
            "credit_notes with externalId 'CN-150' may be in Leanpay, but the answer that "
            "would have given its id was lost; give its Leanpay id instead"
        )


def test_a_plan_sends_nothing_and_counts_what_the_real_run_then_does(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.seed_invoices(40)
    messages: list[dict[str, Any]] = list(SCHEMAS)
    messages += [invoice(n) for n in range(20)]
    messages += [record(INVOICES, **{**invoice(99)["record"], "amount": -1})]  # rejected
    messages += [credit_note(n) for n in range(5)]
    messages += [link(n, f"seed-0000{10 + n}", f"CN-{n}") for n in range(5)]
    messages += [link(9, "INV-UNKNOWN", "CN-1"), state(32)]

    requests_file = tmp_path / "would-send.jsonl"
    plan = run_target(
        config(leanpay, tmp_path, plan=True, dry_run_path=str(requests_file)), messages
    )

    assert plan.returncode == 0, plan.stderr
    assert [r["method"] for r in leanpay.requests()] == ["GET"] * 2  # 40 invoices: 2 pages
    assert plan.states == []
    assert not (tmp_path / "receipts.jsonl").exists()
    planned = plan_counts(plan.stderr)
    written = [json.loads(x) for x in requests_file.read_text().splitlines()]
    assert sum(len(next(iter(w["body"].values()))) for w in written) == 30

    real = run_target(config(leanpay, tmp_path), messages)

    assert real.returncode == 0, real.stderr
    assert planned == summary_counts(real.stderr)
    assert planned[INVOICES] == (21, 20, 0, 1)
    assert planned[LINKS] == (6, 5, 0, 1)
    assert "Plan: READY WITH REJECTIONS: a real run would send 30 records" in plan.stderr


PLAN_LINE = re.compile(
    r"Plan: stream '(?P<stream>[^']+)' -> \w+: (?P<read>\d+) records? read, (?P<sent>\d+) "
    r"would be sent, (?P<present>\d+) already in Leanpay, (?P<rejected>\d+) would be rejected"
)
SUMMARY_LINE = re.compile(
    r"Summary: stream '(?P<stream>[^']+)' -> \w+: (?P<read>\d+) records read, "
    r"(?P<sent>\d+) acknowledged, (?P<present>\d+) already present, (?P<rejected>\d+) rejected"
)


def plan_counts(stderr: str) -> dict[str, tuple[int, ...]]:
    return _counts(PLAN_LINE, stderr)


def summary_counts(stderr: str) -> dict[str, tuple[int, ...]]:
    return _counts(SUMMARY_LINE, stderr)


def _counts(pattern: re.Pattern[str], stderr: str) -> dict[str, tuple[int, ...]]:
    found = {
        m["stream"]: (int(m["read"]), int(m["sent"]), int(m["present"]), int(m["rejected"]))
        for m in pattern.finditer(stderr)
    }
    assert found, stderr[-2000:]
    return found


CREDIT_NOTE_LOAD = [
    *SCHEMAS,
    invoice(0),
    credit_note(0),
    credit_note(1),
    state(1),
    link(0, "INV-0", "CN-0"),
    payback(0, "CN-1"),
    state(2),
]


@pytest.mark.parametrize("mode", ["accept", "refuse"])
def test_an_unanswered_credit_note_post_is_set_aside_never_sent_again(
    tmp_path: Path, mode: str
) -> None:
    """Credit notes cannot be listed: after a dropped connection nothing can tell whether
    Leanpay stored them. Sending them again stored them twice (a duplicate-accepting
    Leanpay) or had them dead-lettered as "already exists" and their link and payback as
    "refused" (a refusing one). Now they are set aside, never sent twice, with a reason
    saying to check them; the link and payback naming them say why they cannot be sent."""
    with StandIn(api_key=API_KEY, duplicates=mode) as leanpay:
        leanpay.add_faults({"action": "drop_after_store", "path": "/credit-notes/batch"})
        result = run_target(
            config(leanpay, tmp_path, max_retry_wait=1, request_timeout=1), CREDIT_NOTE_LOAD
        )
        counts = Counter(o["externalId"] for o in leanpay.store("credit_notes"))
        posts = [r for r in leanpay.requests() if r["path"] == "/credit-notes/batch"]
    assert result.returncode == 0, result.stderr
    assert counts == {"CN-0": 1, "CN-1": 1}, counts  # stored once, by the lost request
    assert len(posts) == 1
    reasons = {
        d["record"].get("externalId"): d["reasons"][0]["reason"] for d in dead_letters(tmp_path)
    }
    assert set(reasons) == {"CN-0", "CN-1", "LNK-0", "PB-0"}
    assert reasons["CN-0"].startswith("Leanpay may have stored it: ")
    assert (
        "may be in Leanpay, but the answer that would have given its id was lost"
        in (reasons["LNK-0"])
    )
    assert [s["done"] for s in result.states][-1] == 2


def test_a_run_without_invoices_never_believes_another_tenants_receipt(
    leanpay: StandIn, tmp_path: Path
) -> None:
    named = run_target(config(leanpay, tmp_path), [*SCHEMAS, invoice(1), state(1)])
    assert named.returncode == 0, named.stderr  # page 1 of invoices names the tenant now
    host = f"127.0.0.1_{leanpay.port}"
    other = {  # another tenant of this API host, in the same store, with the same externalId
        "resource": "credit_notes", "externalId": "CN-7", "id": "another-tenants-cn-7",
        "stream": CREDIT_NOTES, "run_started": "2026-01-01T00:00:00+00:00",
        "tenantId": "another-tenant",
    }  # fmt: skip
    with (tmp_path / "index" / f"{host}.receipts.jsonl").open("a") as receipts:
        receipts.write(json.dumps(other) + "\n")
    since = len(leanpay.requests())

    credit_notes_only = [m for m in SCHEMAS if m["stream"] == CREDIT_NOTES]
    result = run_target(config(leanpay, tmp_path), [*credit_notes_only, credit_note(7), state(2)])

    assert result.returncode == 0, result.stderr
    assert [r["path"] for r in leanpay.requests()[since:] if "another" in r["path"]] == []
    assert [cn["externalId"] for cn in leanpay.store("credit_notes")] == ["CN-7"]
    assert emitted_done(result) == [2]
