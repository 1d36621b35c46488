"""What target-leanpay costs a user: `make bench` (a script, not a test).

One run generates Singer input, starts the Leanpay stand-in as its own process on
127.0.0.1, runs the real CLI against it scenario by scenario, checks that every run
loaded exactly what it should, and prints each figure beside its ideal or baseline with
PASS/MISS against its goal (issues 10 and 11). It stops everything it started, also on
Ctrl-C. Unless a setting is named, target-leanpay runs with its defaults (read from
`target-leanpay --about`: C = max_in_flight, replay safety on).

1. **CPU cost**: user+sys CPU-seconds per 100k invoices of the target's whole process
   tree (`os.wait4`: the kernel's rusage of the child and whatever it reaped), stand-in
   latency 0, against the stock no-op SDK target (`noop_target.py`: default reader,
   per-record jsonschema validation, a sink that drops each batch) on the same input.
   CPU, not wall clock: a user's load is bounded by Leanpay's latency, what they pay on
   their own machine is CPU. Runs are interleaved (target, no-op, target, ...) so drift
   hits both alike; each run is shown, the figure is the median. Goal: no-op / target
   >= 2.5.
2. **Latency**: records/s (wall clock from spawn to exit, startup included: what a user
   waits for) at 50 ms stand-in latency, against the *network ideal* (`network_ideal.py`):
   the same requests sent by `requests` alone from C threads, interleaved with the runs,
   in the same run of this script. Goal >= 0.9 of it (median of the repeated runs).
   Beside it, for information, the same rate against the ideal 100 items x C / L
   (8,000/s for C = 4), and the rate with startup excluded against `requests` alone.
3. **Memory**: peak RSS (`ru_maxrss`) for 1M records against 100k (latency 0): memory
   must be bounded by what is in flight, not by the input. Goal 1M <= 1.2 x 100k.
4. **Listing**: time to the first POST for a tenant preloaded with 20,000 invoices
   (page size 25: 800 pages; 50 ms per request, GETs included), from the stand-in's
   journal (first GET arrival -> first POST arrival; both processes read the same
   system-wide monotonic clock, so it is also shown from the target's spawn), against
   the ideal pages x L / C_list. C_list is the default of the target's listing
   concurrency setting `max_list_in_flight`, or max_in_flight's default while that
   setting does not exist (what issue 11 asks for). Goal: ideal / measured >= 0.8. The
   run is the fault-free baseline of 5 (loading 20,000 new invoices into that tenant).
5. **Transient faults** on that load (same tenant, latency and page size), each a run of
   its own after a reset, with `max_retry_wait` 5 so an unanswered batch costs its
   documented wait, min(max_retry_wait, 2 x request_timeout): the extra seconds (wall
   clock minus the fault-free baseline's) caused by (a) one 500 answered after storing,
   (b) one 500 answered before storing, (c) one dropped connection after storing, (d)
   four simultaneous drops, with the re-listings each caused (`GET /invoices?page=1`
   after the first). Bounds: an answered 500 <= one re-listing + 2 s; a drop <= the
   documented wait + one re-listing + 2 s; one re-listing's ideal is pages x L / C_list
   for the tenant it re-reads (20,000 + what the journal shows stored before the
   re-listing began). Goal for (d): one re-listing, not four.
6. **Rate limit**: records/s (wall clock, as in 2) loading 40,000 invoices into a
   stand-in that allows R = 20 requests/s (token bucket, default burst, 429 with
   Retry-After) at 50 ms, against the ideal 100 x R = 2,000/s, and the share of all API
   requests answered 429 (journal). Goals: >= 0.85 of the ideal, <= 5 % answered 429.

A run counts only if it exited 0, wrote only STATE lines to stdout, the last one being
the input's last STATE, and the stand-in ends holding exactly the tenant's invoices plus
the input's: it refuses duplicate externalIds (409), so its count proves each one is
there once and any double send shows as a 409 in the journal; POSTs that stored (2xx,
or the injected after-store faults) must account for every input record. Exit status:
0 when every run checked out (goals may still be MISS), 1 otherwise.

Each run prints one line as it ends: wall clock, CPU, peak RSS, and the CPU the stand-in
and every *other* process used meanwhile (a share of one core), so a noisy machine shows
up as noise rather than as a slower target. The whole run lasts as long as what it
measures, mostly the five loads into the 20k tenant (each lists it, four re-list it): on
2 cores ~7 minutes for a target near its listing ideal, ~15 for one that lists a page at
a time and waits a fixed time after any 5xx. `--only SECTION ...` runs some sections
(cpu latency memory listing faults rate incremental); every size is an option too.
7. **Incremental runs** (issue 17; `incremental.py` says what each scenario does): a
   200,000-invoice tenant after one run that loaded 1,000, newest first and oldest
   first: pages read and seconds over an empty tenant with replay safety off, for 10
   repeated + 100 new, another writer's invoice sent again, one answer lost after
   storing, a resume after kill -9; listed by id, a full listing. Run alone with
   `make bench-incremental` (~2-3 minutes).
9. **Stores** (issue 24; `store_bench.py`): CPU per 100k invoices with the PostgreSQL
   store over the folder store's, and a second run from another machine into a
   200,000-invoice tenant with each store: pages, and seconds over the folder store.
   Run alone with `make bench-store`.

Where the CPU goes: `python benchmarks/profile_target.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

from harness import (
    API_KEY,
    INVOICES_BATCH,
    INVOICES_LIST,
    ITEMS_PER_REQUEST,
    NOOP_CMD,
    PAGE_SIZE,
    STATE_EVERY,
    TARGET_CMD,
    Input,
    Run,
    StandIn,
    pages,
    run_cli,
    standin,
    write_input,
)
from incremental import Incremental
from network_ideal import dry_run, records_per_second
from store_bench import StoreBench, postgres
from tenant_size import TenantSize

LATENCY_MS = 50.0
TENANT = 20_000
"""Invoices a big tenant already holds (sections 4 and 5)."""
FAULT_MAX_RETRY_WAIT = 5.0
"""`max_retry_wait` of the fault runs: bounds the documented wait of an unanswered batch."""
ANSWERED_SLACK = 2.0
"""Seconds a fault may cost on top of its re-listing (and wait), per issue 11."""
RATE_LIMIT = 20.0

GOAL_CPU = 2.5
GOAL_LATENCY = 0.9
GOAL_MEMORY = 1.2
GOAL_LISTING = 0.8
GOAL_RATE = 0.85
GOAL_THROTTLED = 0.05

STANDIN_BUSY = 0.8
"""Stand-in CPU (share of one core) above which it, not the target, may limit a run."""
NOISY = 0.1
"""CPU of unrelated processes (share of one core) above which a run is flagged noisy."""
SUMMARY = re.compile(r"Summary: .*? (\d+) acknowledged, (\d+) already present, (\d+) rejected")
READER_DONE = re.compile(r"completed processing \d+ lines of input \(\d+ schemas, (\d+) records")
SECTIONS = (
    "cpu", "latency", "memory", "listing", "faults", "rate", "incremental", "size", "store",
)  # fmt: skip


# -- what the target says about itself -----------------------------------------------


@dataclass(frozen=True)
class Defaults:
    """The target's defaults that the ideals depend on, from `--about --format=json`."""

    in_flight: int
    list_in_flight: int
    list_source: str
    request_timeout: float

    @property
    def no_answer_wait(self) -> float:
        """What the target documents waiting before checking an unanswered batch, in the
        fault runs: min(max_retry_wait, 2 x request_timeout)."""
        return min(FAULT_MAX_RETRY_WAIT, 2 * self.request_timeout)


def read_defaults() -> Defaults:
    """C, C_list and request_timeout as the installed target declares them."""
    about = subprocess.run(
        [*TARGET_CMD, "--about", "--format=json"], capture_output=True, check=True, text=True
    )
    settings = json.loads(about.stdout)["settings"]["properties"]
    in_flight = int(settings["max_in_flight"]["default"])
    listing = settings.get("max_list_in_flight", {}).get("default")
    if listing is None:
        source = "max_list_in_flight is not a setting yet: max_in_flight's default"
        listing = in_flight
    else:
        source = "max_list_in_flight's default"
    return Defaults(
        in_flight=in_flight,
        list_in_flight=int(listing),
        list_source=source,
        request_timeout=float(settings["request_timeout"]["default"]),
    )


# -- the goal table ------------------------------------------------------------------


@dataclass
class Figure:
    """One line of the final table: a measure beside its ideal or baseline."""

    name: str
    measured: str
    against: str
    ratio: str
    goal: str
    passed: bool | None
    """None: shown for information, no goal."""


RUN_HEADER = (
    f"  {'run':<40} {'records':>9} {'wall s':>7} {'rec/s':>7} {'CPU s':>6} "
    f"{'/100k':>6} {'peak RSS':>9} {'stand-in':>8} {'others':>6}  check"
)


class Section:
    """One part of the benchmark: its runs, printed one line each as they end (so a
    long section shows progress), and the figures it concluded."""

    def __init__(self, title: str) -> None:
        self.runs: list[Run] = []
        self.figures: list[Figure] = []
        print(f"\n== {title}\n{RUN_HEADER}", flush=True)

    def add(self, run: Run) -> Run:
        """Keep a finished run and print its line: enough to see noise, the stand-in's
        share of a core, and whether it checked out."""
        self.runs.append(run)
        print(
            f"  {run.label:<40} {run.records:>9,} {run.wall:>7.2f} {run.rate:>7,.0f} "
            f"{run.cpu:>6.2f} {per_100k(run):>6.2f} {run.peak_rss_mib:>6.1f}MiB "
            f"{run.standin_load:>8.0%} {run.other_load:>6.0%}  "
            f"{'WRONG' if run.problems else 'ok'}",
            flush=True,
        )
        return run


def print_figures(figures: Sequence[Figure]) -> None:
    """Every figure beside its ideal or baseline, with PASS/MISS."""
    header = f"{'figure':<46} {'measured':>12} {'against':>22} {'ratio':>7} {'goal':>9}  result"
    print(f"\n{header}\n{'-' * len(header)}")
    for f in figures:
        result = "info" if f.passed is None else ("PASS" if f.passed else "MISS")
        print(f"{f.name:<46} {f.measured:>12} {f.against:>22} {f.ratio:>7} {f.goal:>9}  {result}")


# -- runs and their checks -----------------------------------------------------------


def journal_entries(
    run: Run, method: str, path: str, page: str | None = None
) -> list[dict[str, Any]]:
    """The run's API requests of one method and path (and page), in arrival order."""
    return [
        e
        for e in run.journal
        if e["method"] == method
        and e["path"] == path
        and (page is None or e["query"].get("page") == page)
    ]


def _is_2xx(entry: dict[str, Any]) -> bool:
    return entry["status"] is not None and 200 <= entry["status"] < 300


def _stored(entry: dict[str, Any], fault: Fault | None) -> bool:
    """Whether a POST stored its batch: answered 2xx, or hit an after-store fault (the
    stand-in then answers 500 or drops the connection: status 500 or null)."""
    return _is_2xx(entry) or (fault is not None and fault.stores and entry["status"] in (None, 500))


def check_load(run: Run, server: StandIn, *, seeded: int = 0, fault: Fault | None = None) -> None:
    """Exactly once: the stand-in holds the tenant plus each input invoice once."""
    total = server.invoice_count()
    if total != seeded + run.records:
        run.problems.append(f"the stand-in holds {total:,} invoices, not {seeded + run.records:,}")
    posts = journal_entries(run, "POST", INVOICES_BATCH)
    doubles = [e for e in posts if e["status"] == 409]
    if doubles:
        run.problems.append(f"{len(doubles)} POSTs refused as duplicates: a double send")
    stored = sum(e["items"] or 0 for e in posts if _stored(e, fault))
    if stored != run.records:
        run.problems.append(f"the POSTs that stored carried {stored:,} items, not {run.records:,}")
    if fault is None:
        unanswered = [e for e in posts if not _is_2xx(e) and e["status"] != 429]
        if unanswered:
            run.notes.append(f"{len(unanswered)} POSTs answered neither 2xx nor 429")
        sent = [e for e in posts if e["status"] != 429]
        ideal = -(-run.records // ITEMS_PER_REQUEST)
        if len(sent) != ideal:
            run.notes.append(
                f"{len(sent)} POSTs (429s aside) for {run.records:,} records, not {ideal}"
            )


def run_target(
    server: StandIn,
    source: Input,
    workdir: Path,
    *,
    label: str,
    timeout: float,
    settings: dict[str, Any] | None = None,
) -> Run:
    """target-leanpay against the stand-in as it was just reset; the journal is kept."""
    config: dict[str, Any] = {"api_key": API_KEY, "api_url": server.url, **(settings or {})}
    run, log = run_cli(label, TARGET_CMD, config, source, workdir, timeout=timeout, server=server)
    run.journal = server.journal()
    check_summary(run, log)
    return run


def check_summary(run: Run, log: str) -> None:
    """The target's own summary must settle every record and reject none. Its wording is
    the target's to change: a missing line is only a note (the stand-in is the proof)."""
    summary = SUMMARY.search(log)
    if summary is None:
        run.notes.append("no summary line found in the target's log")
        return
    acknowledged, present, rejected = (int(n) for n in summary.groups())
    if acknowledged + present != run.records or rejected:
        run.problems.append(
            f"the target's summary: {acknowledged:,} acknowledged, {present:,} already "
            f"present, {rejected:,} rejected of {run.records:,}"
        )


def run_noop(server: StandIn, source: Input, workdir: Path, timeout: float) -> Run:
    """The stock SDK baseline; its reader's own count says it saw every record."""
    label = "stock SDK no-op target"
    run, log = run_cli(label, NOOP_CMD, {}, source, workdir, timeout=timeout, server=server)
    done = READER_DONE.search(log)
    if done is None or int(done.group(1)) != source.records:
        run.problems.append(f"the SDK reader reports {done and done.group(1)} records")
    return run


def per_100k(run: Run) -> float:
    """CPU-seconds per 100,000 records."""
    return run.cpu * 100_000 / run.records


# -- 1. CPU cost, 2. latency, 3. memory ----------------------------------------------


def cpu_section(server: StandIn, source: Input, workdir: Path, repeat: int) -> Section:
    """Target and no-op in turn over the same input, latency 0; the ratio is taken pair by
    pair (the two runs of a pair see the same machine speed, which drifts on a shared
    machine by a third within minutes) and its median quoted."""
    section = Section(f"1. CPU cost: {source.records:,} invoices, latency 0")
    targets: list[Run] = []
    noops: list[Run] = []
    for n in range(1, repeat + 1):  # interleaved, so drift hits both alike
        server.reset(0)
        label = f"target-leanpay, latency 0 #{n}"
        run = run_target(server, source, workdir, label=label, timeout=180)
        check_load(run, server)
        targets.append(section.add(run))
        noop = run_noop(server, source, workdir, timeout=300)
        noop.label += f" #{n}"
        noops.append(section.add(noop))
    target_cpu = statistics.median(per_100k(r) for r in targets)
    noop_cpu = statistics.median(per_100k(r) for r in noops)
    ratios = [noop.cpu / target.cpu for target, noop in zip(targets, noops, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"  CPU-s per 100k invoices: target {_each(targets, per_100k)}, "
        f"no-op {_each(noops, per_100k)}; medians {target_cpu:.2f} / {noop_cpu:.2f}; "
        f"no-op / target pair by pair {', '.join(f'{r:.2f}' for r in ratios)}"
    )
    section.figures.append(
        Figure(
            f"1 CPU-s per 100k invoices (median of {repeat} pairs)",
            f"{target_cpu:.2f}",
            f"no-op SDK {noop_cpu:.2f}",
            f"{ratio:.2f}x",
            f">= {GOAL_CPU:g}x",
            ratio >= GOAL_CPU,
        )
    )
    return section


def _each(runs: Sequence[Run], measure: Callable[[Run], float], spec: str = ".2f") -> str:
    return ", ".join(format(measure(r), spec) for r in runs)


def latency_section(
    server: StandIn, source: Input, workdir: Path, defaults: Defaults, repeat: int
) -> Section:
    """Records/s at 50 ms against 100 x C / L."""
    section = Section(f"2. Latency: {source.records:,} invoices at {LATENCY_MS:g} ms")
    requests_file, requests_count = dry_run(source, workdir)
    bare: list[float] = []
    for n in range(1, repeat + 1):
        server.reset(LATENCY_MS)
        label = f"target-leanpay, latency {LATENCY_MS:g} ms #{n}"
        run = run_target(server, source, workdir, label=label, timeout=180)
        check_load(run, server)
        section.add(run)
        server.reset(LATENCY_MS)  # interleaved, so drift hits both alike
        bare.append(
            records_per_second(server.url, requests_file, defaults.in_flight, source.records)
        )
    ideal = ITEMS_PER_REQUEST * defaults.in_flight / (LATENCY_MS / 1000)
    rate = statistics.median(r.rate for r in section.runs)
    after_start = [r.rate_after_start for r in section.runs if r.rate_after_start]
    network = statistics.median(bare)
    print(
        f"  ideal 100 x C {defaults.in_flight} / {LATENCY_MS / 1000:g} s = {ideal:,.0f} rec/s;"
        f" startup excluded: {', '.join(f'{x:,.0f}' for x in after_start)} rec/s\n"
        f"  network ideal (the same {requests_count} bodies from {defaults.in_flight} threads"
        f" through one requests.Session, nothing else): {', '.join(f'{x:,.0f}' for x in bare)}"
        f" rec/s, {network / ideal:.3f} of 100 x C / L"
    )
    section.figures.append(
        Figure(
            f"2 records/s at {LATENCY_MS:g} ms (median of {repeat})",
            f"{rate:,.0f}",
            f"requests alone {network:,.0f}",
            f"{rate / network:.3f}",
            f">= {GOAL_LATENCY:g}",
            rate / network >= GOAL_LATENCY,
        )
    )
    section.figures.append(
        Figure(
            "2 same, vs the ideal 100 x C / L",
            f"{rate:,.0f}",
            f"ideal {ideal:,.0f}",
            f"{rate / ideal:.3f}",
            "",
            None,
        )
    )
    if after_start:  # a run whose log shows no start time has no such figure
        steady = statistics.median(after_start)
        section.figures.append(
            Figure(
                "2 same, startup excluded, vs requests alone",
                f"{steady:,.0f}",
                f"requests alone {network:,.0f}",
                f"{steady / network:.3f}",
                "",
                None,
            )
        )
    return section


def memory_section(
    server: StandIn, small: Input, big: Input, workdir: Path, small_runs: Sequence[Run]
) -> Section:
    """Peak RSS of the 1M run against the 100k runs' median (one of its own if none)."""
    section = Section(f"3. Memory: {small.records:,} and {big.records:,} invoices, latency 0")
    if not small_runs:
        server.reset(0)
        run = run_target(server, small, workdir, label="target-leanpay, latency 0", timeout=180)
        check_load(run, server)
        small_runs = [section.add(run)]
    server.reset(0)
    label = f"target-leanpay, latency 0, {big.records:,}"
    run = run_target(server, big, workdir, label=label, timeout=600)
    check_load(run, server)
    section.add(run)
    server.reset(0)  # let go of the 1M invoices
    small_rss = statistics.median(r.peak_rss_mib for r in small_runs)
    print(
        f"  peak RSS at {small.records:,}: {_each(small_runs, lambda r: r.peak_rss_mib, '.1f')}"
        f" MiB (the CPU runs'); the stand-in's own peak {server.peak_rss_mib() or 0:.0f} MiB"
    )
    growth = run.peak_rss_mib / small_rss
    section.figures.append(
        Figure(
            f"3 peak RSS, {big.records:,} vs {small.records:,} records",
            f"{run.peak_rss_mib:.1f} MiB",
            f"{small_rss:.1f} MiB",
            f"{growth:.3f}",
            f"<= {GOAL_MEMORY:g}",
            growth <= GOAL_MEMORY,
        )
    )
    return section


# -- 4. listing and 5. faults --------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One transient fault scenario of section 5."""

    key: str
    name: str
    rule: dict[str, Any]
    answered: bool
    """Leanpay answered (a 500): no wait is documented; else a drop, which costs one."""

    @property
    def label(self) -> str:
        """How its run is named."""
        return f"({self.key}) {self.name}"

    @property
    def stores(self) -> bool:
        """Whether the faulted batch was stored."""
        return bool(self.rule["action"].endswith("_after_store"))


FAULTS = (
    Fault(
        "a",
        "one 500 answered after storing",
        {"action": "status_after_store", "status": 500, "path": INVOICES_BATCH, "times": 1},
        answered=True,
    ),
    Fault(
        "b",
        "one 500 answered before storing",
        {"action": "status", "status": 500, "path": INVOICES_BATCH, "times": 1},
        answered=True,
    ),
    Fault(
        "c",
        "one drop after storing",
        {"action": "drop_after_store", "path": INVOICES_BATCH, "times": 1},
        answered=False,
    ),
    Fault(
        "d",
        "4 simultaneous drops after storing",
        {"action": "drop_after_store", "path": INVOICES_BATCH, "times": 4},
        answered=False,
    ),
)


def tenant_load_run(
    server: StandIn, source: Input, workdir: Path, label: str, fault: Fault | None = None
) -> Run:
    """Load `source` into a tenant of TENANT invoices at 50 ms, with one fault rule."""
    server.reset(LATENCY_MS, seed_invoices=TENANT, faults=[fault.rule] if fault is not None else [])
    run = run_target(
        server,
        source,
        workdir,
        label=label,
        timeout=1200,
        settings={"max_retry_wait": FAULT_MAX_RETRY_WAIT},
    )
    check_load(run, server, seeded=TENANT, fault=fault)
    return run


def listing_seconds(invoices: int, defaults: Defaults) -> float:
    """The ideal time to list a tenant: pages x L / C_list."""
    return pages(invoices) * (LATENCY_MS / 1000) / defaults.list_in_flight


def most_in_flight(entries: Sequence[dict[str, Any]]) -> int:
    """The most of these requests that were at the stand-in at once."""
    events = sorted(
        [(e["time"], 1) for e in entries] + [(e["answered"] or e["time"], -1) for e in entries]
    )
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def listing_figure(baseline: Run, defaults: Defaults) -> Figure:
    """Time to first POST of the baseline run, against pages x L / C_list."""
    gets = journal_entries(baseline, "GET", INVOICES_LIST)
    posts = journal_entries(baseline, "POST", INVOICES_BATCH)
    ideal = listing_seconds(TENANT, defaults)
    name = f"4 time to first POST, {TENANT:,}-invoice tenant"
    if not gets or not posts:
        baseline.problems.append("the journal shows no listing or no POST")
        return Figure(name, "n/a", f"ideal {ideal:.2f} s", "", f">= {GOAL_LISTING:g}", False)
    first_post = posts[0]["time"]
    measured = first_post - gets[0]["time"]
    listed = [e for e in gets if e["time"] < first_post]
    print(
        f"  4. listing {TENANT:,} invoices ({pages(TENANT)} pages of {PAGE_SIZE}), baseline run:"
        f" first GET -> first POST {measured:.2f} s (from the target's spawn "
        f"{first_post - baseline.spawned:.2f} s)\n"
        f"     {len(listed)} GETs before the first POST, at most {most_in_flight(listed)} at "
        f"once; ideal {pages(TENANT)} x {LATENCY_MS / 1000:g} s / C_list "
        f"{defaults.list_in_flight} = {ideal:.2f} s"
    )
    return Figure(
        name,
        f"{measured:.2f} s",
        f"ideal {ideal:.2f} s",
        f"{ideal / measured:.3f}",
        f">= {GOAL_LISTING:g}",
        ideal / measured >= GOAL_LISTING,
    )


@dataclass(frozen=True)
class FaultCost:
    """What one fault cost, against its bound."""

    extra: float
    relistings: int
    tenant: int
    """Invoices the (first) re-listing had to read."""
    bound: float


def fault_cost(run: Run, baseline: Run, fault: Fault, defaults: Defaults) -> FaultCost:
    """Extra seconds and re-listings from the journal; the bound for this fault."""
    starts = journal_entries(run, "GET", INVOICES_LIST, page="1")
    relistings = max(0, len(starts) - 1)
    stored = run.records  # without a re-listing: the bound for the whole tenant
    if relistings:
        began = starts[1]["time"]
        posts = journal_entries(run, "POST", INVOICES_BATCH)
        stored = sum(e["items"] or 0 for e in posts if e["time"] < began and _stored(e, fault))
    wait = 0.0 if fault.answered else defaults.no_answer_wait
    bound = wait + listing_seconds(TENANT + stored, defaults) + ANSWERED_SLACK
    return FaultCost(run.wall - baseline.wall, relistings, TENANT + stored, bound)


def faults_section(
    server: StandIn, source: Input, workdir: Path, defaults: Defaults, *, with_faults: bool
) -> Section:
    """The baseline (which gives the listing figure), then each fault."""
    section = Section(
        f"4. Listing{' and 5. transient faults' if with_faults else ''}: {source.records:,} "
        f"invoices into a tenant of {TENANT:,}, {LATENCY_MS:g} ms, page size {PAGE_SIZE}, "
        f"max_retry_wait {FAULT_MAX_RETRY_WAIT:g}"
    )
    baseline = section.add(tenant_load_run(server, source, workdir, "no fault (baseline)"))
    faulted = [
        (fault, section.add(tenant_load_run(server, source, workdir, fault.label, fault)))
        for fault in (FAULTS if with_faults else ())
    ]
    section.figures.append(listing_figure(baseline, defaults))
    if faulted:
        costs = {f.key: fault_cost(run, baseline, f, defaults) for f, run in faulted}
        print_fault_table(costs, defaults)
        section.figures.extend(fault_figures(costs))
    return section


def print_fault_table(costs: dict[str, FaultCost], defaults: Defaults) -> None:
    """Each fault: extra seconds, re-listings, the tenant re-read, the bound."""
    print(
        f"  5. extra s = wall clock - the baseline's. The documented wait before checking an "
        f"unanswered batch:\n     min(max_retry_wait {FAULT_MAX_RETRY_WAIT:g}, 2 x "
        f"request_timeout {defaults.request_timeout:g}) = {defaults.no_answer_wait:g} s; "
        f"one re-listing's ideal: pages of the tenant re-read x {LATENCY_MS / 1000:g} s / "
        f"C_list {defaults.list_in_flight}"
    )
    print(
        f"  {'fault':<40} {'extra s':>8} {'re-listings':>11} {'tenant re-read':>14} {'bound s':>8}"
    )
    for fault in FAULTS:
        cost = costs[fault.key]
        bound = ("" if fault.answered else "wait + ") + "re-listing + 2 s"
        print(
            f"  ({fault.key}) {fault.name:<36} {cost.extra:>8.2f} {cost.relistings:>11} "
            f"{cost.tenant:>14,} {cost.bound:>8.2f}  ({bound})"
        )


def fault_figures(costs: dict[str, FaultCost]) -> list[Figure]:
    """Extra seconds of (a)-(d) against their bounds; (d)'s re-listings against one."""
    figures = [
        Figure(
            f"5{fault.key} extra s, {fault.name}",
            f"{costs[fault.key].extra:.2f} s",
            f"bound {costs[fault.key].bound:.2f} s",
            "",
            "<= bound",
            None if fault.key == "d" else costs[fault.key].extra <= costs[fault.key].bound,
        )
        for fault in FAULTS
    ]
    relistings = costs["d"].relistings
    figures.append(
        Figure(
            "5d re-listings after 4 simultaneous drops",
            f"{relistings}",
            "ideal 1",
            "",
            "1, not 4",
            relistings == 1,
        )
    )
    return figures


# -- 6. rate limit -------------------------------------------------------------------


def rate_section(server: StandIn, source: Input, workdir: Path) -> Section:
    """Records/s against a token bucket of R requests/s, and the share answered 429."""
    section = Section(
        f"6. Rate limit: {source.records:,} invoices, the stand-in allows {RATE_LIMIT:g} "
        f"requests/s (default burst), {LATENCY_MS:g} ms"
    )
    server.reset(LATENCY_MS, rate_limit=RATE_LIMIT)
    label = f"target-leanpay, {RATE_LIMIT:g} requests/s"
    run = run_target(server, source, workdir, label=label, timeout=600)
    server.configure(rate_limit=None)  # counting the invoices must not meet a 429
    check_load(run, server)
    section.add(run)
    throttled = [e for e in run.journal if e["status"] == 429]
    share = len(throttled) / max(1, len(run.journal))
    ideal = ITEMS_PER_REQUEST * RATE_LIMIT
    on_wire = _span(run.journal)
    print(
        f"  {len(run.journal):,} API requests, {len(throttled):,} answered 429; "
        f"first request -> last answer {on_wire:.2f} s ({source.records / on_wire:,.0f} rec/s)"
    )
    section.figures += [
        Figure(
            f"6 records/s at {RATE_LIMIT:g} requests/s",
            f"{run.rate:,.0f}",
            f"ideal {ideal:,.0f}",
            f"{run.rate / ideal:.3f}",
            f">= {GOAL_RATE:g}",
            run.rate / ideal >= GOAL_RATE,
        ),
        Figure(
            "6 share of requests answered 429",
            f"{share:.1%}",
            f"{len(throttled)} of {len(run.journal)}",
            "",
            f"<= {GOAL_THROTTLED:.0%}",
            share <= GOAL_THROTTLED,
        ),
    ]
    return section


def _span(journal: Sequence[dict[str, Any]]) -> float:
    """Seconds from the first request's arrival to the last answer."""
    if not journal:
        return 1e-9
    last: float = max(e["answered"] or e["time"] for e in journal)
    first: float = min(e["time"] for e in journal)
    return max(last - first, 1e-9)


# -- the whole run -------------------------------------------------------------------


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def print_header(defaults: Defaults) -> None:
    """Machine, versions and the target defaults the ideals use."""
    print(
        f"target-leanpay benchmark: {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()}, "
        f"singer-sdk {version('singer-sdk')}, target-leanpay {version('target-leanpay')}\n"
        f"target defaults: max_in_flight C = {defaults.in_flight}; listing concurrency "
        f"C_list = {defaults.list_in_flight} ({defaults.list_source}); request_timeout "
        f"{defaults.request_timeout:g} s"
    )


def write_inputs(workdir: Path, sizes: dict[str, int]) -> dict[str, Input]:
    """One input file per size needed (STATE every 1,000)."""
    began = time.monotonic()
    inputs = {name: write_input(workdir / f"{name}.singer", n) for name, n in sizes.items()}
    print(
        f"input: {', '.join(f'{n:,}' for n in sizes.values())} invoice RECORDs (13 properties,"
        f" STATE every {STATE_EVERY:,}) written in {time.monotonic() - began:.1f} s"
    )
    return inputs


def run_sections(
    server: StandIn,
    workdir: Path,
    args: argparse.Namespace,
    inputs: dict[str, Input],
    defaults: Defaults,
) -> list[Section]:
    """Each selected section in turn, printing its table as it ends."""
    wanted = set(args.only)
    sections: list[Section] = []
    small_runs: list[Run] = []
    if "cpu" in wanted:
        sections.append(cpu_section(server, inputs["main"], workdir, args.repeat))
        small_runs = [r for r in sections[-1].runs if r.label.startswith("target-leanpay")]
    if "latency" in wanted:
        sections.append(latency_section(server, inputs["latency"], workdir, defaults, args.repeat))
    if "memory" in wanted:
        sections.append(memory_section(server, inputs["main"], inputs["big"], workdir, small_runs))
    if wanted & {"listing", "faults"}:
        sections.append(
            faults_section(
                server, inputs["tenant"], workdir, defaults, with_faults="faults" in wanted
            )
        )
    if "rate" in wanted:
        sections.append(rate_section(server, inputs["rate"], workdir))
    if "incremental" in wanted:
        sections.append(incremental_section(server, workdir))
    if "size" in wanted:
        sections.append(size_section(server, workdir, args.tenant_sizes))
    if "store" in wanted:
        sections.append(store_section(server, inputs["main"], workdir, args.repeat))
    return sections


def store_section(server: StandIn, source: Input, workdir: Path, repeat: int) -> Section:
    """9. The PostgreSQL store beside the folder store (store_bench.py)."""
    section = Section("9. Stores: PostgreSQL beside the folder")
    with postgres() as pg:
        bench = StoreBench(
            server, workdir, pg=pg, run_target=run_target, check_load=check_load, add=section.add
        )
        bench.cpu(source, min(repeat, 3))
        bench.second_machine()
    section.figures = [
        Figure(name, measured, against, "", goal, passed)
        for name, measured, against, goal, passed in bench.figures
    ]
    return section


def size_section(server: StandIn, workdir: Path, sizes: Sequence[int]) -> Section:
    """8. The same run into tenants of growing size (tenant_size.py)."""
    section = Section("8. Tenant size: 10 repeated + 100 new, CPU at latency 0")
    runs = TenantSize(server, workdir, run_target, section.add)
    runs.measure(sorted(sizes))
    section.figures = [
        Figure(name, measured, against, "", goal, passed)
        for name, measured, against, goal, passed in runs.figures
    ]
    return section


def incremental_section(server: StandIn, workdir: Path) -> Section:
    """7. Scheduled incremental runs into a 200,000-invoice tenant (incremental.py)."""
    section = Section("7. Incremental runs: a 200,000-invoice tenant, 25 per page, 50 ms")
    runs = Incremental(server, workdir, run_target, check_load, section.add)
    base_110 = runs.baseline(110, "baseline: 110 into empty, replay off")
    base_150 = runs.baseline(150, "baseline: 150 into empty, replay off")
    for order in ("newest", "oldest"):
        runs.scenarios(order, base_110, base_150)
    runs.by_id(base_110)
    section.figures = [
        Figure(name, measured, against, "", goal, passed)
        for name, measured, against, goal, passed in runs.figures
    ]
    return section


def input_sizes(args: argparse.Namespace) -> dict[str, int]:
    """The inputs the selected sections need."""
    wanted = set(args.only)
    sizes = {
        "main": args.records if wanted & {"cpu", "memory", "store"} else 0,
        "big": args.big if "memory" in wanted else 0,
        "latency": args.latency_records if "latency" in wanted else 0,
        "rate": args.rate_records if "rate" in wanted else 0,
        "tenant": args.tenant_load if wanted & {"listing", "faults"} else 0,
    }
    return {name: n for name, n in sizes.items() if n}


def report(sections: Sequence[Section], began: float) -> int:
    """The goal table, what may have skewed a figure, what went wrong; the exit status."""
    print_figures([f for s in sections for f in s.figures])
    runs = [r for s in sections for r in s.runs]
    busy = [r.label for r in runs if r.standin_load > STANDIN_BUSY]
    if busy:
        print(f"NOTE: the stand-in used > {STANDIN_BUSY:.0%} of a core in: {', '.join(busy)}")
    noisy = [r for r in runs if r.other_load > NOISY]
    if noisy:
        print(
            f"NOTE: other processes used > {NOISY:.0%} of a core during {len(noisy)} of "
            f"{len(runs)} runs (up to {max(r.other_load for r in noisy):.0%}: the 'others' "
            "column); their figures are pessimistic, run again on a quiet machine"
        )
    for run in runs:
        for note in run.notes:
            print(f"NOTE: {run.label}: {note}")
        for problem in run.problems:
            print(f"WRONG: {run.label}: {problem}")
    wrong = any(r.problems for r in runs)
    print(
        "\nSOME RUNS ARE WRONG: their figures mean nothing"
        if wrong
        else f"\nall {len(runs)} runs checked: every invoice stored exactly once, last STATE "
        "printed",
        f"({time.monotonic() - began:.0f} s in all)",
    )
    return 1 if wrong else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Generate input, run every selected section against one stand-in, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000, help="CPU runs' size")
    parser.add_argument("--big", type=int, default=1_000_000, help="memory run's size")
    parser.add_argument("--latency-records", type=int, default=80_000)
    parser.add_argument("--rate-records", type=int, default=40_000)
    parser.add_argument(
        "--tenant-load", type=int, default=20_000, help="invoices loaded into the big tenant"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of the CPU and latency sections (odd)"
    )
    parser.add_argument(
        "--tenant-sizes",
        type=int,
        nargs="+",
        default=[20_000, 200_000],
        help="tenants of section 8 (the largest also at 50 ms)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run"
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)  # cleaned up like Ctrl-C
    defaults = read_defaults()
    print_header(defaults)
    try:
        with tempfile.TemporaryDirectory(prefix="leanpay-bench-") as scratch:
            workdir = Path(scratch)
            inputs = write_inputs(workdir, input_sizes(args))
            with standin(workdir) as server:
                sections = run_sections(server, workdir, args, inputs, defaults)
    except KeyboardInterrupt:
        print("\ninterrupted: the stand-in and the target are stopped", file=sys.stderr)
        return 130
    return report(sections, began)


if __name__ == "__main__":
    sys.exit(main())
