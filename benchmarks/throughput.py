"""Throughput and memory benchmark of target-leanpay: `make bench` (a script, not a test).

One run writes Singer input into a temporary directory, starts the Leanpay stand-in as
its own process on 127.0.0.1, runs the real CLIs against it, checks that every record
arrived, prints a table and stops everything it started (under 2 minutes on 2 cores).
The three ratios:

1. **Speed-up over the stock SDK** = records/s of target-leanpay / records/s of
   `noop_target.py` (a stock singer-sdk target whose BatchSink does nothing: default
   reader, per-record jsonschema validation), over the same 100k invoices, stand-in
   latency 0. It says how much of the SDK's per-record overhead target-leanpay avoids
   while still mapping, POSTing and checkpointing every record. Goal >= 4.
2. **Latency efficiency** = records/s at 50 ms stand-in latency / the ideal
   100 items x max_in_flight (4) / 50 ms = 8,000 records/s. It says whether requests
   really overlap and whether reading keeps every slot busy. Goal >= 0.9.
3. **Memory growth** = peak RSS of target-leanpay for 1M records / for 100k (latency 0).
   It says whether memory is bounded by the records in flight, not by the input.
   Goal <= 1.2. The pair is also run with replay_safety off, to show what replay
   safety's memory of externalIds (a temporary SQLite file) adds.

target-leanpay runs with its default settings (max_in_flight 4, replay_safety on). Rates
are wall clock from spawn to exit, startup included (what a user waits for); the
"excl.start" column subtracts the time from spawn to the process's first log line
(interpreter and imports). Peak RSS and CPU are exact: `os.wait4` returns the kernel's
ru_maxrss and rusage of that one child, its HTTP process included (target-leanpay reaps
it before exiting, so the kernel counts it in). The 100k and the latency runs are
repeated (`--repeat`, median shown) because a 2-core machine is noisy; the "others"
column shows how much CPU unrelated processes took during each run, so a noisy run is
visible.

A run counts only if it exited 0, wrote only STATE lines to stdout, the last one being
the input's last STATE, and, for target-leanpay, the stand-in holds exactly the input's
records: it refuses duplicate externalIds, so its invoice count proves it, and its
journal shows every POST answered 2xx, acknowledging as many items. Exit status: 0 when
every run checked out (goals may still be MISS), 1 otherwise.

The CPU profile that explains these numbers: `python benchmarks/profile_target.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_SCRIPT = Path(PYTHON).parent / "target-leanpay"
TARGET_CMD = [str(_SCRIPT)] if _SCRIPT.exists() else [PYTHON, "-m", "target_leanpay"]
"""The installed console script, as users run it."""
NOOP_CMD = [PYTHON, str(ROOT / "benchmarks" / "noop_target.py")]
API_KEY = "bench-key-7d1e"
STREAM = "invoices"
STATE_EVERY = 1000
ITEMS_PER_REQUEST = 100
DEFAULT_IN_FLIGHT = 4
LATENCY_MS = 50.0

GOAL_SPEEDUP = 4.0
GOAL_LATENCY = 0.9
GOAL_MEMORY = 1.2
STANDIN_BUSY = 0.8
"""Stand-in CPU (share of one core) above which it, not the target, may limit a run."""
NOISY = 0.1
"""CPU of unrelated processes (share of one core) above which a run is flagged noisy."""

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \|")
SUMMARY = re.compile(r"Summary: .*?(\d+) records read, (\d+) acknowledged")
READER_DONE = re.compile(r"completed processing \d+ lines of input \(\d+ schemas, (\d+) records")


# -- input ---------------------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "SCHEMA",
    "stream": STREAM,
    "key_properties": ["externalId"],
    "schema": {
        "type": "object",
        "properties": {
            "externalId": {"type": ["string", "null"]},
            "clientId": {"type": ["string", "null"]},
            "reference": {"type": ["string", "null"]},
            "amount": {"type": ["integer", "null"]},
            "issueDate": {"type": ["string", "null"], "format": "date"},
            "dueDate": {"type": ["string", "null"], "format": "date"},
            "currency": {"type": ["string", "null"]},
            "status": {"type": ["string", "null"]},
            "salesperson": {"type": ["string", "null"]},
            "_sdc_extracted_at": {"type": ["string", "null"], "format": "date-time"},
            "_sdc_batched_at": {"type": ["string", "null"], "format": "date-time"},
            "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
            "_sdc_sequence": {"type": ["integer", "null"]},
        },
    },
}
RECORD_LINE = (
    '{{"type":"RECORD","stream":"invoices","record":{{"externalId":"INV-{i:07d}",'
    '"clientId":"{client}","reference":"F2024-{i:07d}","amount":{amount},'
    '"issueDate":"{issued}","dueDate":"{due}","currency":"EUR","status":"open",'
    '"salesperson":"{person}","_sdc_extracted_at":"2024-06-01T08:00:00.000000+00:00",'
    '"_sdc_batched_at":"2024-06-01T08:00:05.000000+00:00","_sdc_deleted_at":null,'
    '"_sdc_sequence":{seq}}},"time_extracted":"2024-06-01T08:00:00.000000+00:00"}}\n'
)
CLIENTS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"leanpay-bench-client-{n}")) for n in range(97)]
PEOPLE = ["alice", "bob", "chloé", "dmitri", "eun-ji"]
_DAY0 = dt.date(2024, 1, 1)
DATES = [
    ((_DAY0 + dt.timedelta(d)).isoformat(), (_DAY0 + dt.timedelta(d + 30)).isoformat())
    for d in range(366)
]


@dataclass(frozen=True)
class Input:
    """A generated input file and what a correct run must end with."""

    path: Path
    records: int
    states: int
    last_state: dict[str, Any]


def write_input(path: Path, records: int) -> Input:
    """SCHEMA, then invoice RECORDs as a tap writes them, a STATE every 1000 and at the end.

    Lines come from a template rather than json.dumps: 1M lines take ~2 s instead of ~8.
    """
    last: dict[str, Any] = {}
    states = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(SCHEMA) + "\n")
        for i in range(1, records + 1):
            issued, due = DATES[i % len(DATES)]
            out.write(
                RECORD_LINE.format(
                    i=i,
                    client=CLIENTS[i % len(CLIENTS)],
                    amount=1000 + (i * 7919) % 500_000,
                    issued=issued,
                    due=due,
                    person=PEOPLE[i % len(PEOPLE)],
                    seq=1_717_228_800_000_000 + i,
                )
            )
            if i % STATE_EVERY == 0 or i == records:
                last = {"bookmarks": {STREAM: {"replication_key_value": f"INV-{i:07d}"}}}
                out.write(json.dumps({"type": "STATE", "value": last}) + "\n")
                states += 1
    with path.open(encoding="utf-8") as lines:  # the template must stay valid JSON
        for _ in range(3):
            json.loads(next(lines))
    return Input(path, records, states, last)


# -- the stand-in --------------------------------------------------------------------


class StandIn:
    """The stand-in as a separate process (so it does not share the target's GIL).

    Duplicates are refused (409), so "the store holds N invoices" means N distinct
    externalIds, i.e. exactly the input; bodies stay out of its journal to save memory.
    """

    def __init__(self, workdir: Path) -> None:
        url_file = workdir / "standin-url.txt"
        self._log = (workdir / "standin.log").open("w")
        self.process = subprocess.Popen(
            [
                *(PYTHON, "-m", "leanpay_standin", "--port", "0", "--api-key", API_KEY),
                *("--url-file", str(url_file), "--no-log-bodies", "--quiet"),
                *("--duplicates", "refuse"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            cwd=ROOT,
        )
        deadline = time.monotonic() + 15
        while not url_file.exists() or not url_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the stand-in did not start; see {self._log.name}")
            time.sleep(0.05)
        self.url = url_file.read_text().strip()
        self.root = self.url.split("/v1/public")[0]
        self._ps = psutil.Process(self.process.pid)

    def _call(self, method: str, url: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", API_KEY)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())

    def reset(self, latency_ms: float) -> None:
        """Empty store and journal (memory of the 1M run), then set the latency."""
        self._call("POST", f"{self.root}/_control/reset", {})
        self._call("POST", f"{self.root}/_control/config", {"latency_ms": latency_ms})

    def cpu_seconds(self) -> float:
        """User + system CPU the stand-in has used so far (all its threads)."""
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def invoice_count(self) -> int:
        """`total` of the list endpoint's first page: cheap, unlike /_control/store."""
        return int(self._call("GET", f"{self.url}/invoices?page=1")["total"])

    def peak_rss_mib(self) -> float | None:
        """The stand-in's own high-water RSS (Linux VmHWM), to show what the 1M store costs."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else None

    def journal(self) -> list[dict[str, Any]]:
        """Every API request (bodies are not kept: --no-log-bodies)."""
        result: list[dict[str, Any]] = self._call("GET", f"{self.root}/_control/requests")
        return result

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def standin(workdir: Path) -> Iterator[StandIn]:
    """Start the stand-in; always stop it."""
    server = StandIn(workdir)
    try:
        yield server
    finally:
        server.stop()


# -- running a CLI -------------------------------------------------------------------


@dataclass
class Run:
    """One CLI run: timings from outside, its STATE lines, and what was checked."""

    label: str
    input: Input
    wall: float
    startup: float | None
    peak_rss_mib: float
    cpu: float
    states: int
    machine_busy: float
    standin_cpu: float | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        """Records in the input."""
        return self.input.records

    @property
    def rate(self) -> float:
        """Records per second, wall clock, startup included."""
        return self.records / self.wall

    @property
    def rate_after_start(self) -> float | None:
        """Records per second once the first log line is out (imports done)."""
        if self.startup is None:
            return None
        return self.records / max(self.wall - self.startup, 1e-9)

    @property
    def standin_load(self) -> float | None:
        """The stand-in's CPU during the run, as a share of one core."""
        return None if self.standin_cpu is None else self.standin_cpu / self.wall

    @property
    def other_load(self) -> float:
        """CPU of every other process on the machine during the run, in cores: noise."""
        return max(0.0, self.machine_busy - self.cpu - (self.standin_cpu or 0.0)) / self.wall


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + t.steal)


def _first_log_time(log: str) -> float | None:
    for line in log.splitlines():
        match = LOG_TIME.match(line)
        if match:
            stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()  # naive local time, like the logging module's
    return None


def run_cli(
    label: str,
    command: Sequence[str],
    config: dict[str, Any],
    source: Input,
    workdir: Path,
    *,
    timeout: float,
    server: StandIn,
) -> tuple[Run, str]:
    """Run one CLI with stdin from a file; exact peak RSS and CPU from `os.wait4`.

    Returns the run and its stderr; checks exit code and STATE output. The stand-in's
    and the whole machine's CPU are sampled around it, to tell noise from signal.
    """
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    with source.path.open("rb") as stdin, out_path.open("wb") as out, err_path.open("wb") as err:
        standin_before, busy_before = server.cpu_seconds(), _busy_seconds()
        spawned = time.time()
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--config", str(config_path)], stdin=stdin, stdout=out, stderr=err
        )
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        watchdog.cancel()
        busy, standin_cpu = _busy_seconds() - busy_before, server.cpu_seconds() - standin_before
    log = err_path.read_text(encoding="utf-8", errors="replace")
    first_log = _first_log_time(log)
    lines = [line for line in out_path.read_text().splitlines() if line.strip()]
    run = Run(
        label=label,
        input=source,
        wall=wall,
        startup=None if first_log is None else max(0.0, first_log - spawned),
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        cpu=usage.ru_utime + usage.ru_stime,
        states=len(lines),
        machine_busy=busy,
        standin_cpu=standin_cpu,
    )
    if process.returncode != 0:
        tail = " | ".join(log.strip().splitlines()[-3:])
        killed = " (killed by the watchdog)" if wall >= timeout else ""
        run.problems.append(f"exit code {process.returncode}{killed}: {tail}")
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        last = None
        run.problems.append("stdout holds something other than STATE")
    if last != source.last_state:
        run.problems.append(f"last STATE printed is {last}, not {source.last_state}")
    return run, log


def run_target(
    server: StandIn,
    source: Input,
    workdir: Path,
    *,
    latency_ms: float,
    timeout: float,
    replay_safety: bool = True,
) -> Run:
    """target-leanpay with its default settings, then check what the stand-in holds."""
    server.reset(latency_ms)
    config: dict[str, Any] = {"api_key": API_KEY, "api_url": server.url}
    label = f"target-leanpay, latency {latency_ms:g} ms"
    if not replay_safety:
        config["replay_safety"] = False
        label += ", no replay safety"
    run, log = run_cli(label, TARGET_CMD, config, source, workdir, timeout=timeout, server=server)
    check_stored(server, run, log)
    return run


def check_stored(server: StandIn, run: Run, log: str) -> None:
    """A fast but wrong run must not count: compare the stand-in's store and journal."""
    records = run.records
    total = server.invoice_count()
    if total != records:  # distinct externalIds: the stand-in refuses duplicates
        run.problems.append(f"the stand-in holds {total} invoices, not {records}")
    posts = [e for e in server.journal() if e["method"] == "POST"]
    answered = [e for e in posts if e["status"] and 200 <= e["status"] < 300]
    acknowledged = sum(e["items"] or 0 for e in answered)
    if acknowledged != records:
        run.problems.append(f"the stand-in acknowledged {acknowledged} items, not {records}")
    if len(answered) != len(posts):
        run.notes.append(f"{len(posts) - len(answered)} POSTs not answered 2xx")
    expected_posts = -(-records // ITEMS_PER_REQUEST)
    if len(posts) != expected_posts:
        run.notes.append(f"{len(posts)} POSTs for {records} records ({expected_posts} ideal)")
    summary = SUMMARY.search(log)
    if summary is None or int(summary.group(2)) != records:
        run.problems.append(f"the target's summary acknowledges {summary and summary.group(2)}")


def run_noop(server: StandIn, source: Input, workdir: Path, timeout: float) -> Run:
    """The stock SDK baseline; its reader's own count says it saw every record."""
    label = "stock SDK no-op target"
    run, log = run_cli(label, NOOP_CMD, {}, source, workdir, timeout=timeout, server=server)
    done = READER_DONE.search(log)
    if done is None or int(done.group(1)) != source.records:
        run.problems.append(f"the SDK reader reports {done and done.group(1)} records")
    return run


def median_run(runs: list[Run]) -> Run:
    """The run with the median rate (an odd --repeat gives a real run, not a mean)."""
    ordered = sorted(runs, key=lambda r: r.rate)
    return ordered[(len(ordered) - 1) // 2]


# -- report --------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_runs(rows: list[list[Run]]) -> None:
    """One line per scenario (the median run when repeated)."""
    header = (
        f"{'run':<44} {'records':>9} {'wall s':>6} {'start':>5} {'rec/s':>7} "
        f"{'excl.start':>10} {'peak RSS':>9} {'CPU s':>6} {'stand-in':>8} {'others':>6} "
        f"{'STATE':>9}  check"
    )
    print(header)
    print("-" * len(header))
    for runs in rows:
        run = median_run(runs)
        print(
            f"{run.label:<44} {run.records:>9,} {run.wall:>6.2f} {_fmt(run.startup, '.2f'):>5} "
            f"{run.rate:>7,.0f} {_fmt(run.rate_after_start, ',.0f'):>10} "
            f"{run.peak_rss_mib:>6.1f}MiB {run.cpu:>6.2f} {_fmt(run.standin_load, '.0%'):>8} "
            f"{run.other_load:>6.0%} {f'{run.states}/{run.input.states}':>9}  "
            f"{'WRONG' if any(r.problems for r in runs) else 'ok'}"
        )
        if len(runs) > 1:
            rates = ", ".join(f"{r.rate:,.0f}" for r in runs)
            print(f"    median of {len(runs)} runs; rec/s of each: {rates}")
    print(
        "rec/s: records / wall clock from spawn to exit. excl.start: after the first log line."
        "\nCPU s: the run's user+sys. stand-in, others: CPU of the stand-in and of all other"
        "\nprocesses on the machine during the run, as a share of one core (others = noise)."
        "\nSTATE: lines printed / STATE messages in the input (only the newest safe one is"
        " printed)."
    )


def print_goals(target: Run, noop: Run, big: Run, slow: Run, flat: tuple[Run, Run]) -> None:
    """The three ratios against their goals."""
    ideal = ITEMS_PER_REQUEST * DEFAULT_IN_FLIGHT / (LATENCY_MS / 1000)
    speedup = target.rate / noop.rate
    efficiency = slow.rate / ideal
    growth = big.peak_rss_mib / target.peak_rss_mib
    rows = [
        (
            f"1 speed-up over stock SDK ({target.rate:,.0f} / {noop.rate:,.0f} rec/s)",
            f"{speedup:.2f}x",
            f">= {GOAL_SPEEDUP:g}",
            speedup >= GOAL_SPEEDUP,
        ),
        (
            f"2 latency efficiency ({slow.rate:,.0f} / ideal {ideal:,.0f} rec/s)",
            f"{efficiency:.3f}",
            f">= {GOAL_LATENCY:g}",
            efficiency >= GOAL_LATENCY,
        ),
        (
            f"3 memory growth ({big.peak_rss_mib:.1f} / {target.peak_rss_mib:.1f} MiB)",
            f"{growth:.3f}",
            f"<= {GOAL_MEMORY:g}",
            growth <= GOAL_MEMORY,
        ),
    ]
    print(f"\n{'goal':<56} {'measured':>8} {'goal':>7}  result")
    for name, measured, goal, passed in rows:
        print(f"{name:<56} {measured:>8} {goal:>7}  {'PASS' if passed else 'MISS'}")
    after = (target.rate_after_start, noop.rate_after_start, slow.rate_after_start)
    if None not in after:
        a, b, c = (x or 0.0 for x in after)
        print(
            f"  startup excluded: speed-up {a / b:.2f}x, latency efficiency {c / ideal:.3f} "
            f"(startup {_fmt(slow.startup, '.2f')} s of {slow.wall:.2f} s)"
        )
    small, large = flat
    print(
        f"  replay_safety off: memory growth {large.peak_rss_mib / small.peak_rss_mib:.3f} "
        f"({large.peak_rss_mib:.1f} / {small.peak_rss_mib:.1f} MiB); "
        f"replay safety adds {(big.peak_rss_mib - large.peak_rss_mib) * 2**20 / big.records:.0f}"
        f" bytes of RSS per externalId at {big.records:,}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Generate input, run every scenario against one stand-in, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000, help="speed-up run size")
    parser.add_argument("--big", type=int, default=1_000_000, help="memory-growth run size")
    parser.add_argument("--latency-records", type=int, default=80_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of the 100k and the latency scenarios"
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    print(
        f"target-leanpay benchmark: {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable), Python {platform.python_version()}, "
        f"singer-sdk {version('singer-sdk')}, msgspec {version('msgspec')}"
    )
    with tempfile.TemporaryDirectory(prefix="leanpay-bench-") as scratch:
        workdir = Path(scratch)
        generated = time.monotonic()
        main_input = write_input(workdir / "main.singer", args.records)
        big_input = write_input(workdir / "big.singer", args.big)
        slow_input = write_input(workdir / "latency.singer", args.latency_records)
        print(
            f"input: {args.records:,} / {args.big:,} / {args.latency_records:,} invoice RECORDs"
            f" (13 properties, STATE every {STATE_EVERY:,}) written in "
            f"{time.monotonic() - generated:.1f} s\n"
        )
        with standin(workdir) as server:
            targets: list[Run] = []
            noops: list[Run] = []
            for _ in range(args.repeat):  # interleaved, so drift hits both alike
                targets.append(run_target(server, main_input, workdir, latency_ms=0, timeout=120))
                noops.append(run_noop(server, main_input, workdir, timeout=180))
            big = run_target(server, big_input, workdir, latency_ms=0, timeout=300)
            slows = [
                run_target(server, slow_input, workdir, latency_ms=LATENCY_MS, timeout=120)
                for _ in range(args.repeat)
            ]
            flat = (
                run_target(
                    server, main_input, workdir, latency_ms=0, timeout=120, replay_safety=False
                ),
                run_target(
                    server, big_input, workdir, latency_ms=0, timeout=300, replay_safety=False
                ),
            )
            server.reset(0)
            standin_peak = server.peak_rss_mib()
    print_runs([targets, noops, [big], slows, [flat[0]], [flat[1]]])
    print(f"stand-in peak RSS: {_fmt(standin_peak, '.0f')} MiB (it held {args.big:,} invoices)")
    print_goals(median_run(targets), median_run(noops), big, median_run(slows), flat)

    every = [*targets, *noops, big, *slows, *flat]
    busy = [r.label for r in every if (r.standin_load or 0) > STANDIN_BUSY]
    if busy:
        print(f"NOTE: the stand-in used > {STANDIN_BUSY:.0%} of a core in: {', '.join(busy)}")
    noisy = sorted({r.label for r in every if r.other_load > NOISY})
    if noisy:
        print(
            f"NOTE: other processes used > {NOISY:.0%} of a core during: {', '.join(noisy)}; "
            "these numbers are pessimistic, run again on a quiet machine"
        )
    for run in every:
        for note in run.notes:
            print(f"NOTE: {run.label}: {note}")
        for problem in run.problems:
            print(f"WRONG: {run.label}: {problem}")
    wrong = any(r.problems for r in every)
    print(
        "\nSOME RUNS ARE WRONG: their numbers mean nothing"
        if wrong
        else "\nall runs checked: every record stored exactly once, last STATE printed",
        f"({time.monotonic() - began:.0f} s in all)",
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
