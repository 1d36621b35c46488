"""Records Leanpay holds that changed in the source: updated through PUT (links, paybacks)
or reported, never silently "already present". The real CLI against the stand-in,
asserting the requests it received, the dead-letter lines and the summary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import CLIENT_ID, Result, run_target
from support import erp
from support.dead_letters import dead_letters
from support.erp import (
    CREDIT_NOTES,
    INVOICES,
    LINKS,
    PAYBACKS,
    credit_note,
    invoice,
    link,
    payback,
    record,
    schema,
)
from support.erp import ids_by_external_id as ids

from leanpay_standin import StandIn

MISC, ADDRESSES = "erp-misc", "erp-addresses"
ROUTES = {**erp.ROUTES, MISC: "misc_operations", ADDRESSES: "addresses"}


def is_find(entry: dict[str, Any]) -> bool:
    """`GET /<resource>/{id}`: a belief checked by id before a repeat is skipped."""
    return entry["method"] == "GET" and entry["path"].count("/") == 2


def methods(entries: list[dict[str, Any]]) -> list[str]:
    """The methods of the requests other than finds, in order."""
    return [r["method"] for r in entries if not is_find(r)]


def misc(n: int) -> dict[str, Any]:
    return record(
        MISC, externalId=f"MISC-{n}", clientId=CLIENT_ID, amount=700, defaultCurrencyAmount=700,
        date="2024-03-15", currency="EUR", description=None,
    )  # fmt: skip


def address(n: int) -> dict[str, Any]:
    return record(
        ADDRESSES, externalId=f"ADR-{n}", clientId=CLIENT_ID, company="ACME", line1="1 rue X",
        city="Lyon", postalCode="69001", country="FR",
    )  # fmt: skip


STATE = {"type": "STATE", "value": {"done": True}}
SCHEMAS = [schema(s) for s in (INVOICES, CREDIT_NOTES, LINKS, PAYBACKS, MISC, ADDRESSES)]


def everything(
    *, invoices: dict[int, dict[str, Any]] | None = None, **changed: dict[str, Any]
) -> list[dict[str, Any]]:
    """Two of each resource, invoices first (links and paybacks refer to them); `invoices`:
    changes by invoice number; `credit`, `link`, `refund`: changes to number 0."""
    invoices = invoices or {}
    return [
        *SCHEMAS,
        *(invoice(n, **{"amount": 249_620 + n, **invoices.get(n, {})}) for n in range(3)),
        credit_note(0, **changed.get("credit", {})),
        credit_note(1),
        link(0, **changed.get("link", {})),
        link(1),
        payback(0, **changed.get("refund", {})),
        payback(1),
        misc(0),
        address(0),
        STATE,
    ]


def config(leanpay: StandIn, tmp_path: Path, **settings: Any) -> Path:
    return erp.config(leanpay, tmp_path, stream_resources=ROUTES, **settings)


def writes(leanpay: StandIn) -> list[tuple[str, str, Any]]:
    """Every POST and PUT the stand-in received, in order."""
    return [
        (r["method"], r["path"], r["body"])
        for r in leanpay.requests()
        if r["method"] in ("POST", "PUT")
    ]


def summary(result: Result) -> dict[str, dict[str, int]]:
    """The counts of each stream's summary line."""
    counts = {}
    for stream, rest in re.findall(r"Summary: stream '([^']+)' -> \w+: (.*)", result.stderr):
        counts[stream] = {
            name: int(number)
            for number, name in re.findall(
                r"(\d+) (acknowledged|already present|updated|changed, not updatable|rejected)",
                rest,
            )
        }
    return counts


def traffic(result: Result, stream: str) -> tuple[int, int]:
    """(requests, retries) of a stream's summary line."""
    line = re.search(rf"Summary: stream '{stream}' .*", result.stderr)
    assert line is not None, result.stderr
    found = re.search(r"(\d+) requests?, (\d+) retr", line.group(0))
    assert found is not None, line.group(0)
    return int(found.group(1)), int(found.group(2))


def loaded(leanpay: StandIn, tmp_path: Path) -> None:
    """The first run: everything created, nothing else."""
    first = run_target(config(leanpay, tmp_path), everything())
    assert first.returncode == 0, first.stderr
    assert dead_letters(tmp_path) == []
    assert "WARNING" not in first.stderr, first.stderr


def test_changed_invoices_and_credit_note_are_reported_with_both_values(
    leanpay: StandIn, tmp_path: Path
) -> None:
    loaded(leanpay, tmp_path)
    before = len(leanpay.requests())

    second = run_target(
        config(leanpay, tmp_path),
        everything(
            invoices={1: {"amount": 254_621}, 2: {"dueDate": "2024-04-30"}},
            credit={"amount": 650},
        ),
    )

    assert second.returncode == 0, second.stderr
    assert methods(leanpay.requests()[before:]) == ["GET"]  # nothing written
    assert second.states == [{"done": True}]
    assert summary(second)[INVOICES] == {
        "acknowledged": 0, "already present": 1, "updated": 0, "changed, not updatable": 2,
        "rejected": 0,
    }  # fmt: skip
    assert summary(second)[CREDIT_NOTES]["changed, not updatable"] == 1
    lines = sorted(dead_letters(tmp_path), key=lambda x: x["record_id"])  # streams: any order
    assert [(x["stream"], x["outcome"], x["changes"]) for x in lines] == [
        (CREDIT_NOTES, "changed, not updatable",
         [{"field": "amount", "leanpay": 500, "source": 650}]),
        (INVOICES, "changed, not updatable",
         [{"field": "amount", "leanpay": 249_621, "source": 254_621}]),
        (INVOICES, "changed, not updatable",
         [{"field": "dueDate", "leanpay": "2024-03-31", "source": "2024-04-30"}]),
    ]  # fmt: skip
    assert "cannot update a credit note" in lines[0]["reasons"][0]["reason"]
    assert (
        "Leanpay's API cannot update an invoice: change it in Leanpay"
        in (lines[1]["reasons"][0]["reason"])
    )
    warnings = sorted(x.split("Not updated: ")[1] for x in second.stderr.splitlines()
                      if "WARNING" in x)  # fmt: skip
    assert len(warnings) == 3, second.stderr
    assert "record externalId 'CN-0'" in warnings[0]
    assert "amount: 500 → 650" in warnings[0]
    assert "record externalId 'INV-1'" in warnings[1]
    assert "amount: 249621 → 254621" in warnings[1]
    assert "dueDate: '2024-03-31' → '2024-04-30'" in warnings[2]
    assert [o["amount"] for o in leanpay.store("invoices")] == [249_620, 249_621, 249_622]


def test_a_changed_link_and_payback_are_updated_through_put_and_their_receipts_follow(
    leanpay: StandIn, tmp_path: Path
) -> None:
    loaded(leanpay, tmp_path)
    before = len(leanpay.requests())
    changed = everything(
        link={"amount": 180, "date": "2024-03-20"}, refund={"amount": 75, "date": "2024-03-22"}
    )

    second = run_target(config(leanpay, tmp_path), changed)

    assert second.returncode == 0, second.stderr
    link_id, payback_id = ids(leanpay, "links")["LNK-0"], ids(leanpay, "paybacks")["PB-0"]
    assert sorted(writes(leanpay)[-2:]) == [  # two streams: in either order
        ("PUT", f"/links/{link_id}", {"amount": 180, "date": "2024-03-20"}),
        ("PUT", f"/paybacks/{payback_id}", {"amount": 75, "date": "2024-03-22",
                                            "externalId": "PB-0"}),
    ]  # fmt: skip
    assert methods(leanpay.requests()[before:]) == ["GET", "PUT", "PUT"]
    stored_link = next(o for o in leanpay.store("links") if o["id"] == link_id)
    assert (stored_link["amount"], stored_link["date"]) == (180, "2024-03-20")
    assert summary(second)[LINKS] == {
        "acknowledged": 0, "already present": 1, "updated": 1, "changed, not updatable": 0,
        "rejected": 0,
    }  # fmt: skip
    assert summary(second)[PAYBACKS]["updated"] == 1
    assert dead_letters(tmp_path) == []
    assert "WARNING" not in second.stderr, second.stderr
    receipts = [json.loads(x) for x in (tmp_path / "receipts.jsonl").read_text().splitlines()]
    newest = [r for r in receipts if r["externalId"] == "LNK-0"][-1]
    assert newest["id"] == link_id
    assert (newest["sent"]["amount"], newest["sent"]["date"]) == (180, "2024-03-20")

    third = run_target(config(leanpay, tmp_path), changed)  # the receipts' newest line wins

    assert third.returncode == 0, third.stderr
    assert [w[0] for w in writes(leanpay)].count("PUT") == 2
    assert summary(third)[LINKS]["already present"] == 2


def test_unchanged_records_of_every_kind_stay_silent(leanpay: StandIn, tmp_path: Path) -> None:
    loaded(leanpay, tmp_path)
    before = len(leanpay.requests())

    again = run_target(config(leanpay, tmp_path), everything())

    assert again.returncode == 0, again.stderr
    assert methods(leanpay.requests()[before:]) == ["GET"]
    found = [r["path"].split("/")[1] for r in leanpay.requests()[before:] if is_find(r)]
    assert sorted(found) == ["credit-notes"] * 2 + ["links"] * 2 + ["paybacks"] * 2
    assert "WARNING" not in again.stderr, again.stderr
    assert dead_letters(tmp_path) == []
    assert {s: c["already present"] for s, c in summary(again).items()} == {
        INVOICES: 3, CREDIT_NOTES: 2, LINKS: 2, PAYBACKS: 2, MISC: 1, ADDRESSES: 1,
    }  # fmt: skip
    assert all("updated" not in c for c in summary(again).values())


def test_receipts_without_the_fields_sent_compare_with_what_a_find_shows(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # a repeated credit note is found by id before it is skipped: its answer says what
    # Leanpay holds, even when the receipts do not
    loaded(leanpay, tmp_path)
    receipts = tmp_path / "receipts.jsonl"
    old_style = [json.loads(x) for x in receipts.read_text().splitlines()]
    receipts.write_text("".join(json.dumps({**r, "sent": None}) + "\n" for r in old_style))

    again = run_target(config(leanpay, tmp_path), everything(credit={"amount": 650}))

    assert again.returncode == 0, again.stderr
    assert "CN-0' (input line 10): changed in the source (amount: 500 → 650)" in again.stderr
    assert summary(again)[CREDIT_NOTES]["already present"] == 1
    assert summary(again)[CREDIT_NOTES]["changed, not updatable"] == 1


def test_a_put_answered_404_or_400_is_dead_lettered_with_why(
    leanpay: StandIn, tmp_path: Path
) -> None:
    loaded(leanpay, tmp_path)
    leanpay.add_faults(
        {"action": "status", "method": "PUT", "path": "/links/{id}", "status": 404},
        {
            "action": "status", "method": "PUT", "path": "/paybacks/{id}", "status": 400,
            "body": {"statusCode": 400, "message": ["amount must not be greater than 60"]},
        },
    )  # fmt: skip

    second = run_target(
        config(leanpay, tmp_path), everything(link={"amount": 180}, refund={"amount": 75})
    )

    assert second.returncode == 0, second.stderr
    assert sorted(w[:2] for w in writes(leanpay) if w[0] == "PUT") == [
        ("PUT", f"/links/{ids(leanpay, 'links')['LNK-0']}"),
        ("PUT", f"/paybacks/{ids(leanpay, 'paybacks')['PB-0']}"),
    ]
    lines = sorted(dead_letters(tmp_path), key=lambda x: x["stream"])  # streams: any order
    assert [(x["stream"], x["http_status"]) for x in lines] == [(LINKS, 404), (PAYBACKS, 400)]
    assert "Leanpay no longer holds it (404)" in lines[0]["reasons"][0]["reason"]
    assert "amount: 100 → 180" in lines[0]["reasons"][0]["reason"]
    assert "amount must not be greater than 60" in lines[1]["api_message"]
    assert summary(second)[LINKS]["rejected"] == 1
    assert second.states == [{"done": True}]


def test_a_put_whose_answer_is_lost_or_a_5xx_is_sent_again_and_leanpay_holds_one_update(
    leanpay: StandIn, tmp_path: Path
) -> None:
    loaded(leanpay, tmp_path)
    leanpay.add_faults(
        {"action": "drop_after_store", "method": "PUT", "path": "/links/{id}"},
        {"action": "status_after_store", "method": "PUT", "path": "/paybacks/{id}", "status": 503},
    )

    second = run_target(
        config(leanpay, tmp_path), everything(link={"amount": 180}, refund={"amount": 75})
    )

    assert second.returncode == 0, second.stderr
    link_id, payback_id = ids(leanpay, "links")["LNK-0"], ids(leanpay, "paybacks")["PB-0"]
    puts = [w for w in writes(leanpay) if w[0] == "PUT"]
    assert sorted(puts) == [
        *[("PUT", f"/links/{link_id}", {"amount": 180, "date": "2024-03-10"})] * 2,
        *[("PUT", f"/paybacks/{payback_id}",
           {"amount": 75, "date": "2024-03-12", "externalId": "PB-0"})] * 2,
    ]  # fmt: skip
    assert [(o["externalId"], o["amount"]) for o in leanpay.store("links")] == [
        ("LNK-0", 180), ("LNK-1", 101),
    ]  # fmt: skip
    assert [(o["externalId"], o["amount"]) for o in leanpay.store("paybacks")] == [
        ("PB-0", 75), ("PB-1", 51),
    ]  # fmt: skip
    assert summary(second)[LINKS]["updated"] == summary(second)[PAYBACKS]["updated"] == 1
    assert traffic(second, LINKS) == traffic(second, PAYBACKS) == (1, 1)
    assert dead_letters(tmp_path) == []


def test_a_plan_counts_and_lists_what_the_real_run_then_does(
    leanpay: StandIn, tmp_path: Path
) -> None:
    loaded(leanpay, tmp_path)
    changed = everything(
        invoices={1: {"amount": 254_621}}, credit={"amount": 650}, link={"amount": 180},
        refund={"date": "2024-03-22"},
    )  # fmt: skip
    requests_file = tmp_path / "plan.jsonl"
    before = len(leanpay.requests())

    planning = config(leanpay, tmp_path, plan=True, dry_run_path=str(requests_file))
    plan = run_target(planning, changed)

    assert plan.returncode == 0, plan.stderr
    assert set(methods(leanpay.requests()[before:])) == {"GET"}
    report = [m for m in re.findall(r"Plan: (.*)", plan.stderr)]
    link_id, payback_id = ids(leanpay, "links")["LNK-0"], ids(leanpay, "paybacks")["PB-0"]
    planned_puts = [json.loads(x) for x in requests_file.read_text().splitlines()]
    assert sorted(planned_puts, key=lambda x: x["path"]) == [
        {"method": "PUT", "path": f"/links/{link_id}", "body": {"amount": 180,
                                                                "date": "2024-03-10"}},
        {"method": "PUT", "path": f"/paybacks/{payback_id}",
         "body": {"amount": 50, "date": "2024-03-22", "externalId": "PB-0"}},
    ]  # fmt: skip
    assert f"    externalId 'LNK-0' (input line 12): would be updated by PUT /links/{link_id}: " \
        "amount: 100 → 180" in report  # fmt: skip
    assert "    externalId 'INV-1' (input line 8): changed in the source (amount: 249621 → " \
        "254621), and Leanpay's API cannot update an invoice: change it in Leanpay, or delete " \
        "it there and load this record again" in report  # fmt: skip
    planned = {
        stream: tuple(int(n) for n in counts)
        for stream, *counts in re.findall(
            r"stream '([^']+)' -> \w+: \d+ records? read, (\d+) would be sent, (\d+) already in "
            r"Leanpay, (?:(\d+) would be updated, (\d+) changed but cannot be updated, )?",
            plan.stderr,
        )
        for counts in [[c or "0" for c in counts]]
    }

    real = run_target(config(leanpay, tmp_path), changed)

    assert real.returncode == 0, real.stderr
    done = {
        stream: (
            c["acknowledged"], c["already present"], c.get("updated", 0),
            c.get("changed, not updatable", 0),
        )
        for stream, c in summary(real).items()
    }  # fmt: skip
    assert planned == done
    assert done[INVOICES] == (0, 2, 0, 1)
    assert done[LINKS] == (0, 1, 1, 0)
    assert done[PAYBACKS] == (0, 1, 1, 0)


def test_a_link_moved_to_another_invoice_is_reported_by_the_ids_its_references_resolve_to(
    leanpay: StandIn, tmp_path: Path
) -> None:
    loaded(leanpay, tmp_path)
    invoices = ids(leanpay, "invoices")

    second = run_target(
        config(leanpay, tmp_path), everything(link={"invoiceExternalId": "INV-2", "amount": 180})
    )

    assert second.returncode == 0, second.stderr
    assert [w for w in writes(leanpay) if w[0] == "PUT"] == []  # a PUT cannot move it
    (line,) = dead_letters(tmp_path)
    assert line["changes"] == [
        {"field": "invoiceId", "leanpay": invoices["INV-0"], "source": invoices["INV-2"]},
        {"field": "amount", "leanpay": 100, "source": 180},
    ]
    assert (
        "can update only the amount and date of a link, not its invoiceId"
        in (line["reasons"][0]["reason"])
    )
    assert line["payload"]["invoiceId"] == invoices["INV-2"]
    assert summary(second)[LINKS]["changed, not updatable"] == 1


def test_a_changed_amount_is_told_in_the_source_s_units(leanpay: StandIn, tmp_path: Path) -> None:
    """A French export in euros with a decimal comma: the report quotes `28 092,19` and
    `9 999,99` as the source wrote them (Leanpay's side in the same unit), the cents
    after; a date written otherwise than sent is quoted beside the one compared."""
    french = config(
        leanpay, tmp_path, amount_unit="major", decimal_separator=",", date_formats=["%d/%m/%Y"]
    )
    first = run_target(
        french, [schema(INVOICES), invoice(1, amount="28 092,19", dueDate="31/03/2024"), STATE]
    )
    assert first.returncode == 0, first.stderr
    assert leanpay.store("invoices")[0]["amount"] == 2_809_219

    second = run_target(
        french, [schema(INVOICES), invoice(1, amount="9 999,99", dueDate="30/04/2024"), STATE]
    )

    assert second.returncode == 0, second.stderr
    told = (
        "changed in the source (amount: 28092,19 → 9 999,99 (in cents: 2809219 → 999999); "
        "dueDate: '2024-03-31' → '2024-04-30' (written '30/04/2024')), and Leanpay's API "
        "cannot update an invoice"
    )
    assert told in second.stderr  # the WARNING
    [line] = dead_letters(tmp_path)
    assert told in line["reasons"][0]["reason"]
    assert line["changes"][0] == {"field": "amount", "leanpay": 2_809_219, "source": 999_999}
    assert [r["method"] for r in leanpay.requests()].count("POST") == 1
