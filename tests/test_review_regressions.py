"""Hostile review: reproductions of defects found by the review branch.

Each test here FAILS on the code it was written against (35c307f) and states the
promise it checks. They drive the real CLI against the stand-in, like the e2e tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    API_KEY,
    Running,
    run_target,
    singer_input,
    target_config,
)
from conftest import (
    invoice as inv,
)
from conftest import (
    schema as inv_schema,
)
from conftest import (
    state as inv_state,
)
from test_e2e_references import ROUTES, SCHEMAS, credit_note, invoice, link, payback, state

from leanpay_standin import StandIn


def _dead(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _references_config(leanpay: StandIn, tmp_path: Path) -> Path:
    return target_config(
        leanpay,
        tmp_path,
        stream_resources=ROUTES,
        dead_letter_path=str(tmp_path / "dead.jsonl"),
        receipts_path=str(tmp_path / "receipts.jsonl"),
        max_retry_wait=1,
        request_timeout=1,
    )


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


# -- 1. credit notes after an unanswered POST ------------------------------------------


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
        result = run_target(_references_config(leanpay, tmp_path), CREDIT_NOTE_LOAD)
        counts = Counter(o["externalId"] for o in leanpay.store("credit_notes"))
        posts = [r for r in leanpay.requests() if r["path"] == "/credit-notes/batch"]
    assert result.returncode == 0, result.stderr
    assert counts == {"CN-0": 1, "CN-1": 1}, counts  # stored once, by the lost request
    assert len(posts) == 1
    reasons = {d["record"].get("externalId"): d["reasons"][0]["reason"] for d in _dead(tmp_path)}
    assert set(reasons) == {"CN-0", "CN-1", "LNK-0", "PB-0"}
    assert reasons["CN-0"].startswith("Leanpay may have stored it: ")
    assert (
        "may be in Leanpay, but the answer that would have given its id was lost"
        in (reasons["LNK-0"])
    )
    assert [s["done"] for s in result.states][-1] == 2


# -- 2. a re-listing runs while other POSTs of the run land ------------------------------


class NewestFirst:
    """Makes the stand-in list invoices newest first (the API notes: "no sort order
    documented ... in any order"; newest first is the usual default of a SaaS list).

    To make the interleaving deterministic, a re-listing's pages after the first are
    answered only once `grow_by` more invoices were stored after its first page was
    read (at most `patience` seconds): it does not cause the target to POST, it only
    lets POSTs the target makes meanwhile land first.
    """

    def __init__(self, leanpay: StandIn, grow_by: int, patience: float = 10) -> None:
        self.store = store = leanpay.state.store["invoices"]
        self.original = store.page
        self.grow_by, self.patience = grow_by, patience
        self.listings = 0
        self.size_at_first_page = 0
        self.relisting = threading.Event()
        store.page = self.page  # type: ignore[method-assign]

    def page(self, start: int, stop: int, order: Any) -> tuple[list[Any], int]:
        store = self.store
        if start == 0:
            self.listings += 1
            self.size_at_first_page = len(store)
            if self.listings >= 2:
                self.relisting.set()
        elif self.listings >= 2:
            deadline = time.monotonic() + self.patience
            while len(store) < self.size_at_first_page + self.grow_by:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        return self.original(start, stop, "newest")


@pytest.mark.parametrize("mode", ["accept", "refuse"])
def test_relisting_while_other_posts_land_misses_the_ambiguous_batch(
    tmp_path: Path, mode: str
) -> None:
    """The re-listing after an unanswered POST reads pages while the run's other POSTs
    keep landing. With a list that is not in creation order, the new invoices shift the
    pages under the listing: the unanswered batch (stored, now beyond the pageCount the
    first page declared) is not seen and is sent again. accept: stored twice; refuse:
    the run stops telling the user to "fix the record" of an invoice Leanpay holds."""
    with StandIn(api_key=API_KEY, duplicates=mode, page_size=5) as leanpay:
        # patience: a page waits (at most) for POSTs to land; the target sends none while
        # it re-lists, so every page is answered after 0.3 s, within request_timeout
        listing = NewestFirst(leanpay, grow_by=25, patience=0.3)
        leanpay.add_faults({"action": "drop_after_store", "path": "/invoices/batch"})
        config = target_config(
            leanpay, tmp_path, batch_size_rows=5, max_in_flight=4, max_list_in_flight=1,
            max_retry_wait=1, request_timeout=1,
        )  # fmt: skip
        run = Running(config)
        run.feed(singer_input([inv_schema(), *(inv(i) for i in range(30)), inv_state(30)]))
        run.wait_for_stderr("then checking which items Leanpay holds")
        assert listing.relisting.wait(20), "no re-listing"
        run.feed(singer_input([*(inv(i) for i in range(30, 130)), inv_state(130)]))
        run.close_input()
        code = run.process.wait(60)
        counts = Counter(o["externalId"] for o in leanpay.store())
    doubled = sorted(k for k, v in counts.items() if v > 1)
    assert doubled == [], f"stored twice: {doubled}"
    assert code == 0, "".join(run.stderr)[-1500:]
    assert len(counts) == 130


# -- 3. the 429 throttle ---------------------------------------------------------------


def test_a_rate_limited_tenant_is_not_hammered_with_one_429_per_success(tmp_path: Path) -> None:
    """throttle.py: "A rate-limited tenant is neither hammered nor left idle"; a 429
    "costs a 429 or two ... near 5% of requests at worst". With Leanpay allowing 5
    requests a second (burst 1), after every pause the throttle lets requests go back to
    back (it bounds concurrency, not rate): the first takes the one token, the next gets
    429 and pauses everything for a whole second. Observed: about one 429 per accepted
    request, ~1 request/s instead of 5, and in about one run of four a batch meets six
    429s in a row and the whole run fails ("gave up after 6 attempts").

    Judged by the pattern of answers, not a ratio over 30 requests: the search for the
    pace costs a fixed number of 429s that would dominate any ratio of a short run."""
    with StandIn(api_key=API_KEY, rate_limit=5, rate_burst=1) as leanpay:
        config = target_config(leanpay, tmp_path, batch_size_rows=10, max_retry_wait=60)
        messages: list[Any] = [inv_schema(), *(inv(i) for i in range(300)), inv_state(300)]
        result = run_target(config, messages, timeout=120)
        answers = [e["status"] for e in leanpay.requests() if e["method"] == "POST"]
    assert result.returncode == 0, result.stderr[-800:]
    assert Counter(answers)[201] == 30, Counter(answers)
    # The pace is found by halving: 4 -> 2 -> 1 in flight (3 refusals in the first round,
    # 1 or 2 at two in flight), then the spacing doubles from 5 ms (or two round trips)
    # until requests are 0.2 s apart (at most 1 + 6 refusals): a bounded search,
    # whatever the length of the run (given 2 more for a slow machine's overlaps) ...
    pattern = "".join("x" if status == 429 else "." for status in answers)
    found = pattern.find("." * 10)
    assert found >= 0, f"never 10 accepted in a row: {pattern}"
    assert pattern[:found].count("x") <= 3 + 2 + 7 + 2, pattern
    # ... after which a 429 only marks a step back up (one per 32 clean answers, at most)
    assert pattern[found:].count("x") <= 1 + len(pattern[found:]) // 32, pattern
    assert "one request in flight, starting at least" in result.stderr


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/invoices/batch", 429), ("GET", "/invoices", 503)],
)
def test_an_odd_retry_after_is_not_a_crash(
    leanpay: StandIn, tmp_path: Path, method: str, path: str, status: int
) -> None:
    """parse_retry_after uses str.isdigit(), true for '²' (a Latin-1 byte a proxy may
    send), then float('²') raises ValueError in a sending thread: "failed
    unexpectedly" with a traceback and exit 1, instead of ignoring the header (backoff)."""
    leanpay.add_faults(
        {"action": "status", "status": status, "method": method, "path": path,
         "headers": {"Retry-After": "\u00b2"}},
    )  # fmt: skip
    config = target_config(leanpay, tmp_path, max_retry_wait=1)
    result = run_target(config, [inv_schema(), *(inv(i) for i in range(3)), inv_state(3)])
    assert "Traceback" not in result.stderr, result.stderr[-1500:]
    assert result.returncode == 0, result.stderr[-800:]
