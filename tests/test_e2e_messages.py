"""Messages a user acts on, through the real CLI against the stand-in (issue 25, point 5):
an api_url without `/v1/public`, a host name DNS cannot resolve, retries of the listing
counted in the summary, a blank client code named, and the receipts' contradiction
counted by invoice."""

from __future__ import annotations

import json
import re
from pathlib import Path

from conftest import (
    CLIENT_ID,
    invoice,
    invoices_with_state,
    run_target,
    schema,
    state,
    target_config,
)

from leanpay_standin import StandIn


def errors(stderr: str) -> list[str]:
    return re.findall(r"\| ERROR +\| [\w.-]+ +\| (.*)", stderr)


def test_an_api_url_without_its_v1_public_suffix_says_how_it_must_end(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, api_url=leanpay.root_url)

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    [error] = errors(result.stderr)
    assert error.startswith("GET /invoices: HTTP 404"), error
    assert (
        f"there is no such endpoint under {leanpay.root_url}: api_url must end with "
        "/v1/public, as Leanpay's does (https://api.leanpay.fr/v1/public)"
    ) in error
    assert leanpay.store("invoices") == []  # (the journal keeps only requests under /v1/public)


def test_a_host_name_dns_cannot_resolve_is_named(tmp_path: Path) -> None:
    # `.invalid` never resolves (RFC 6761): the resolver answers, no address is contacted
    config = target_config(
        None, tmp_path, api_key="k", api_url="https://leanpay.invalid/v1/public", max_retries=0
    )

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    [error] = errors(result.stderr)
    assert error.startswith(
        "GET /invoices: the host name 'leanpay.invalid' could not be resolved ("
    ), error
    assert "check the api_url setting" in error


def test_the_summary_counts_the_listings_retries(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(
        {"path": "/invoices", "method": "GET", "action": "status", "status": 503, "times": 2}
    )

    result = run_target(
        target_config(leanpay, tmp_path, max_retry_wait=0.1), invoices_with_state(1)
    )

    assert result.returncode == 0, result.stderr
    statuses = [r["status"] for r in leanpay.requests() if r["method"] == "GET"]
    assert statuses == [503, 503, 200]
    assert result.stderr.count("retrying in") == 2  # the retries the log shows
    assert re.search(
        r"\| Summary: 2 retries reading what Leanpay holds \(GET\), counted in no stream's line",
        result.stderr,
    ), result.stderr


def test_a_blank_client_code_is_named_as_the_column_it_came_from(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "dead.jsonl"
    config = target_config(
        leanpay, tmp_path, dead_letter_path=str(dead), client_ids={"C-1": CLIENT_ID}
    )
    messages = [
        schema(),
        invoice(1, clientId=None, clientExternalId="C-1"),
        invoice(2, clientId=None, clientExternalId=""),  # the mapped column was blank
        state(2),
    ]

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    [line] = [json.loads(x) for x in dead.read_text().splitlines()]
    assert line["reasons"] == [
        {
            "field": "clientId",
            "reason": "is required, and clientExternalId (the client code it is looked up by) "
            "is empty",
        }
    ]
    assert len(leanpay.store("invoices")) == 1


def test_the_receipts_contradiction_counts_invoices_not_lines(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path, receipts_path=str(tmp_path / "receipts.jsonl"))
    for _ in range(2):  # each run into an emptied tenant receipts both invoices again
        leanpay.reset()
        assert run_target(config, invoices_with_state(2)).returncode == 0
    assert len((tmp_path / "receipts.jsonl").read_text().splitlines()) == 4
    leanpay.reset()

    result = run_target(config, invoices_with_state(2))

    assert result.returncode == 0, result.stderr
    assert (
        "The store's receipts record 2 invoices this target created that Leanpay does not list"
        in (result.stderr)
    )
