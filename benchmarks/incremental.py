"""Section 7 of `throughput.py`: scheduled incremental runs against a big tenant.

A stand-in tenant of 200,000 invoices (25 per page), listed newest first and then
oldest first; one run loads 1,000 invoices into it (latency 0: it lists the whole
tenant, which is the setup, not a figure), then each scenario runs at 50 ms, one after
the other, on the same tenant and index, as scheduled runs would:

a. 10 repeated + 100 new invoices: pages read (goal <= 20) and seconds over the same
   110 records into an empty tenant with replay safety off (goal <= 1.0 s);
b. an invoice another writer created meanwhile, sent again: recognised, <= 20 pages;
c. one answer lost after Leanpay stored it (the connection dropped; request_timeout 2 s,
   so the documented wait is min(max_retry_wait 5, 2 x 2) = 4 s): every invoice once,
   <= 40 pages, <= that wait + 2 s over the same records into an empty tenant with
   replay safety off;
d. a run killed (SIGKILL) after its first STATE, then resumed from that STATE: exactly
   once, <= 60 pages for the resumed run.

A tenant listed by id (no relation to time) gets setup and (a) only, at latency 0: its
figure is the page count (a full listing, as before the index), and at 50 ms it would
cost 100 s of a shared machine. Each run's check is the stand-in's: it refuses a
duplicate externalId (409), and it must hold exactly the tenant plus the input once.
The figures the issue measured before the index are printed beside them.

Run alone: `python benchmarks/throughput.py --only incremental` (`make bench-incremental`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import (
    API_KEY,
    CLIENTS,
    INVOICES_BATCH,
    INVOICES_LIST,
    RECORD_LINE,
    SCHEMA,
    STREAM,
    TARGET_CMD,
    Input,
    Run,
    StandIn,
)

BIG = 200_000
LOADED = 1_000
LATENCY_MS = 50.0
REQUEST_TIMEOUT = 2.0
MAX_RETRY_WAIT = 5.0
WAIT = min(MAX_RETRY_WAIT, 2 * REQUEST_TIMEOUT)
"""The documented wait before checking an unanswered batch."""
BEFORE = {
    "a": "8,040 pages, 122.4 s",
    "c": "8,047 pages, 126.2 s",
    "d": "8,125 pages",
}
"""What the issue measured before the tenant index, at the same scale."""


def write_range(path: Path, first: int, last: int, every: int = 100) -> Input:
    """SCHEMA, then INV-<first> .. INV-<last> (as `write_input` numbers them), a STATE
    every `every` records and at the end."""
    state: dict[str, Any] = {}
    states = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(SCHEMA) + "\n")
        for i in range(first, last + 1):
            out.write(
                RECORD_LINE.format(
                    i=i,
                    client=CLIENTS[i % len(CLIENTS)],
                    amount=1000 + i,
                    issued="2024-05-01",
                    due="2024-05-31",
                    person="alice",
                    seq=i,
                )
            )
            if (i - first + 1) % every == 0 or i == last:
                state = {"bookmarks": {STREAM: {"replication_key_value": f"INV-{i:07d}"}}}
                out.write(json.dumps({"type": "STATE", "value": state}) + "\n")
                states += 1
    return Input(path, last - first + 1, states, state)


class Incremental:
    """The scenarios above, on one stand-in; `figures` collects (name, measured,
    against, goal, passed)."""

    def __init__(
        self,
        server: StandIn,
        workdir: Path,
        run_target: Callable[..., Run],
        check_load: Callable[..., None],
        add: Callable[[Run], Run],
    ) -> None:
        self.server = server
        self.workdir = workdir
        self._run_target = run_target
        self._check_load = check_load
        self._add = add
        self.figures: list[tuple[str, str, str, str, bool | None]] = []
        self.runs: list[Run] = []
        self.stored = 0

    def run(self, label: str, source: Input, index: Path | None, **settings: Any) -> Run:
        config = {"max_retry_wait": MAX_RETRY_WAIT, **settings}
        if index is not None:
            config["store"] = str(index)
        run = self._run_target(
            self.server, source, self.workdir, label=label, timeout=900, settings=config
        )
        self.runs.append(self._add(run))
        return run

    def baseline(self, records: int, label: str) -> Run:
        """The same records into an empty tenant, replay safety off, 50 ms."""
        source = write_range(self.workdir / f"base-{records}.singer", 900_001, 900_000 + records)
        self.server.reset(LATENCY_MS)  # and a store of its own: a machine that starts empty
        run = self.run(label, source, self.workdir / f"store-base-{records}", replay_safety=False)
        self._check_load(run, self.server)
        return run

    def setup(self, order: str) -> Path:
        """A 200,000-invoice tenant in `order`, and one run that loaded 1,000 (latency 0)."""
        self.server.reset(0, seed_invoices=BIG)
        self.server.configure(order=order)
        index = self.workdir / f"index-{order}"
        source = write_range(self.workdir / "first.singer", 1, LOADED)
        run = self.run(f"{order}: setup, 1,000 (lists all)", source, index)
        self._check_load(run, self.server, seeded=BIG)
        self.stored = BIG + LOADED
        return index

    def measured(self, label: str, source: Input, index: Path, **settings: Any) -> tuple[Run, int]:
        """A run at 50 ms; its pages of GET /invoices."""
        self.server.configure(latency_ms=LATENCY_MS)
        before = len(self.server.journal())
        run = self.run(label, source, index, **settings)
        run.journal = run.journal[before:]
        return run, _pages(run)

    def check(self, run: Run, new: int) -> None:
        """Exactly once: the tenant holds what it held plus the `new` invoices, no 409."""
        self.stored += new
        total = self.server.invoice_count()
        if total != self.stored:
            run.problems.append(f"the stand-in holds {total:,} invoices, not {self.stored:,}")
        refused = [e for e in run.journal if e["path"] == INVOICES_BATCH and e["status"] == 409]
        if refused:
            run.problems.append(f"{len(refused)} POSTs refused as duplicates: a double send")

    def scenarios(self, order: str, base_110: Run, base_150: Run) -> None:
        index = self.setup(order)
        w = self.workdir
        # a. 10 repeated + 100 new
        source = write_range(w / "a.singer", LOADED - 9, LOADED + 100)
        run, pages = self.measured(f"{order}: a. 10 repeated + 100 new", source, index)
        self.check(run, 100)
        over = run.wall - base_110.wall
        self._figure(f"{order}: a. pages, 10 repeated + 100 new", pages, BEFORE["a"], 20)
        self.figures.append(
            (
                f"{order}: a. s over empty, replay off",
                f"{over:+.2f} s",
                f"{base_110.wall:.2f} s",
                "<= 1.0 s",
                over <= 1.0,
            )
        )
        # b. another writer's invoice, sent again
        other = LOADED + 101
        self._post_as_another_writer(other)
        self.stored += 1
        source = write_range(w / "b.singer", other, other)
        run, pages = self.measured(f"{order}: b. another writer's, again", source, index)
        self.check(run, 0)
        if "1 already present" not in (w / "stderr.txt").read_text():
            run.problems.append("the other writer's invoice was not recognised")
        self._figure(f"{order}: b. pages, another writer's", pages, "(every page)", 20)
        # c. one answer lost after storing
        self._fault({"path": INVOICES_BATCH, "action": "drop_after_store", "times": 1})
        source = write_range(w / "c.singer", other + 1, other + 150)
        run, pages = self.measured(
            f"{order}: c. one answer lost (150)", source, index, request_timeout=REQUEST_TIMEOUT
        )
        self.check(run, 150)
        over = run.wall - base_150.wall
        self._figure(f"{order}: c. pages, one answer lost", pages, BEFORE["c"], 40)
        self.figures.append(
            (
                f"{order}: c. s over empty, replay off",
                f"{over:+.2f} s",
                f"{base_150.wall:.2f} s",
                f"<= {WAIT + 2:.0f} s",
                over <= WAIT + 2,
            )
        )
        # d. kill -9 after the first STATE, then resume from it
        first = other + 151
        source = write_range(w / "d.singer", first, first + 999)
        done = self._killed_after_first_state(source, index, first)
        rest = write_range(w / "d2.singer", first + done, first + 999)
        run, pages = self.measured(f"{order}: d. resumed after kill -9", rest, index)
        self.check(run, 1000)
        self._figure(f"{order}: d. pages, resume after kill -9", pages, BEFORE["d"], 60)

    def by_id(self, base_110: Run) -> None:
        """Listed by id: a full listing each run (latency 0), exactly once."""
        index = self.setup("id")
        source = write_range(self.workdir / "a.singer", LOADED - 9, LOADED + 100)
        before = len(self.server.journal())
        run = self.run("id: a. 10 repeated + 100 new (0 ms)", source, index)
        run.journal = run.journal[before:]
        full = -(-self.stored // 25)  # the tenant when the run listed it
        self.check(run, 100)
        pages = _pages(run)
        self.figures.append(
            (
                "id: a. pages (a full listing)",
                f"{pages:,}",
                f"{full:,} pages",
                "full",
                pages >= full,
            )
        )

    def _figure(self, name: str, pages: int, before: str, goal: int) -> None:
        self.figures.append((name, f"{pages:,} pages", before, f"<= {goal}", pages <= goal))

    def _post_as_another_writer(self, number: int) -> None:
        item = {  # the very invoice the input holds: recognised as already present
            "clientId": CLIENTS[number % len(CLIENTS)],
            "reference": f"F2024-{number:07d}",
            "amount": 1000 + number,
            "issueDate": "2024-05-01",
            "dueDate": "2024-05-31",
            "externalId": f"INV-{number:07d}",
        }
        body = json.dumps({"invoices": [item]}).encode()
        request = urllib.request.Request(  # noqa: S310 - the stand-in on 127.0.0.1
            self.server.url + INVOICES_BATCH, data=body, method="POST"
        )
        request.add_header("Authorization", API_KEY)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310
            pass

    def _fault(self, rule: dict[str, Any]) -> None:
        self.server._control("faults", {"faults": [rule]})

    def _killed_after_first_state(self, source: Input, index: Path, first: int) -> int:
        """Run `source` at 50 ms, SIGKILL it once it printed a STATE; the records that
        STATE covers (the tap resumes after them)."""
        self.server.configure(latency_ms=LATENCY_MS)
        config = {
            "api_key": API_KEY,
            "api_url": self.server.url,
            "store": str(index),
            "max_retry_wait": MAX_RETRY_WAIT,
        }
        path = self.workdir / "killed.json"
        path.write_text(json.dumps(config))
        with source.path.open("rb") as stdin, (self.workdir / "killed.err").open("wb") as err:
            process = subprocess.Popen(
                [*TARGET_CMD, "--config", str(path)],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=err,
            )
            assert process.stdout is not None
            line = process.stdout.readline()
            process.send_signal(signal.SIGKILL)
            process.wait()
        last = json.loads(line)["bookmarks"][STREAM]["replication_key_value"]
        return int(last[4:]) - first + 1


def _pages(run: Run) -> int:
    return sum(1 for e in run.journal if e["method"] == "GET" and e["path"] == INVOICES_LIST)
