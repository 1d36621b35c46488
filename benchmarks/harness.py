"""What the benchmark scripts share: Singer input, the stand-in as its own process, and
one CLI run measured from outside.

* `write_input` writes invoice RECORDs as a tap would, with a STATE every 1000;
* `StandIn` / `standin` run `python -m leanpay_standin` as a separate process on
  127.0.0.1 (so it does not share the target's GIL or CPU accounting) and drive it
  through its control API (`/_control/...`): reset, settings, seeding, faults, journal;
* `run_cli` runs a CLI with stdin from a file and takes its CPU and peak RSS from
  `os.wait4` (the kernel's rusage of the child and of every descendant it reaped), its
  wall clock from outside, and checks what any correct run must print.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import resource
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
"""Leanpay's most items per batch request: the target's default batch."""
PAGE_SIZE = 25
"""Invoices per page of `GET /invoices` (the stand-in's default; Leanpay documents none)."""
INVOICES_LIST = "/invoices"
INVOICES_BATCH = "/invoices/batch"

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \|")


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
    """SCHEMA, then invoice RECORDs `INV-0000001`, ... as a tap writes them, a STATE every
    1000 and at the end. (The stand-in's seeded invoices are `seed-000001`, ...: no clash.)

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


def pages(invoices: int) -> int:
    """Pages of `GET /invoices` for a tenant of that many invoices (at least one)."""
    return max(1, math.ceil(invoices / PAGE_SIZE))


# -- the stand-in --------------------------------------------------------------------


class StandIn:
    """The stand-in as a separate process, on 127.0.0.1, any free port.

    Duplicates are refused (409 for the whole batch), so "the store holds N invoices"
    means N distinct externalIds, and any double send shows in the journal as a 409;
    bodies stay out of its journal to save memory. Every run starts with `reset`, which
    also sets every setting the benchmark uses, so no run inherits the previous one's.
    """

    def __init__(self, workdir: Path) -> None:
        url_file = workdir / "standin-url.txt"
        self._log = (workdir / "standin.log").open("w")
        self.process = subprocess.Popen(
            [
                *(PYTHON, "-m", "leanpay_standin", "--port", "0", "--api-key", API_KEY),
                *("--url-file", str(url_file), "--no-log-bodies", "--quiet"),
                *("--duplicates", "refuse", "--page-size", str(PAGE_SIZE)),
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
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return json.loads(response.read())

    def _control(self, what: str, body: Any = None) -> Any:
        return self._call("GET" if body is None else "POST", f"{self.root}/_control/{what}", body)

    def reset(
        self,
        latency_ms: float = 0,
        *,
        rate_limit: float | None = None,
        seed_invoices: int = 0,
        faults: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Empty store, journal and faults (and the memory of a 1M run); then set the
        latency and rate limit, store `seed_invoices` earlier invoices, add the faults."""
        self._control("reset", {})
        self._control(
            "config",
            {
                "latency_ms": latency_ms,
                "rate_limit": rate_limit,
                "rate_burst": None,
                "page_size": PAGE_SIZE,
                "duplicates": "refuse",
                "order": "oldest",
            },
        )
        if seed_invoices:
            self._control("seed", {"count": seed_invoices})
        if faults:
            self._control("faults", {"faults": list(faults)})

    def configure(self, **settings: Any) -> None:
        """Change settings while running (`POST /_control/config`)."""
        self._control("config", settings)

    def cpu_seconds(self) -> float:
        """User + system CPU the stand-in has used so far (all its threads)."""
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def invoice_count(self) -> int:
        """`total` of the list endpoint's first page: cheap, unlike /_control/store.

        An API request like any other: read it after the run's journal, and with the
        rate limit off."""
        return int(self._call("GET", f"{self.url}{INVOICES_LIST}?page=1")["total"])

    def peak_rss_mib(self) -> float | None:
        """The stand-in's own high-water RSS (Linux VmHWM), to show what a 1M store costs."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else None

    def journal(self) -> list[dict[str, Any]]:
        """Every API request since the reset (see `leanpay_standin.journal`)."""
        result: list[dict[str, Any]] = self._control("requests")
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
    """Start the stand-in; always stop it (an exception or Ctrl-C included)."""
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
    spawned: float
    """`time.monotonic()` at spawn: the same clock as the stand-in journal's (Linux
    CLOCK_MONOTONIC is system-wide), so journal times can be read from the process start."""
    wall: float
    startup: float | None
    peak_rss_mib: float
    cpu: float
    states: int
    machine_busy: float
    standin_cpu: float
    journal: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        """Records in the input."""
        return self.input.records

    @property
    def rate(self) -> float:
        """Records per second, wall clock from spawn to exit, startup included."""
        return self.records / self.wall

    @property
    def rate_after_start(self) -> float | None:
        """Records per second once the first log line is out (imports done)."""
        if self.startup is None:
            return None
        return self.records / max(self.wall - self.startup, 1e-9)

    @property
    def standin_load(self) -> float:
        """The stand-in's CPU during the run, as a share of one core."""
        return self.standin_cpu / self.wall

    @property
    def other_load(self) -> float:
        """CPU of every other process on the machine during the run, in cores: noise."""
        return max(0.0, self.machine_busy - self.cpu - self.standin_cpu) / self.wall


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


def _wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, resource.struct_rusage]:
    """Reap the child with `os.wait4` (exact rusage); a watchdog kills it after `timeout`.

    On any exception (Ctrl-C included) the child is killed and reaped: nothing outlives
    the benchmark.
    """
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        watchdog.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage


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
        spawned_wall, spawned = time.time(), time.monotonic()
        process = subprocess.Popen(
            [*command, "--config", str(config_path)], stdin=stdin, stdout=out, stderr=err
        )
        code, usage = _wait(process, timeout)
        wall = time.monotonic() - spawned
        busy, standin_cpu = _busy_seconds() - busy_before, server.cpu_seconds() - standin_before
    log = err_path.read_text(encoding="utf-8", errors="replace")
    first_log = _first_log_time(log)
    lines = [line for line in out_path.read_text().splitlines() if line.strip()]
    run = Run(
        label=label,
        input=source,
        spawned=spawned,
        wall=wall,
        startup=None if first_log is None else max(0.0, first_log - spawned_wall),
        peak_rss_mib=usage.ru_maxrss / 1024,  # KiB on Linux
        cpu=usage.ru_utime + usage.ru_stime,
        states=len(lines),
        machine_busy=busy,
        standin_cpu=standin_cpu,
    )
    if code != 0:
        tail = " | ".join(log.strip().splitlines()[-3:])
        killed = f" (killed by the watchdog after {timeout:.0f} s)" if wall >= timeout else ""
        run.problems.append(f"exit code {code}{killed}: {tail}")
    try:  # a target writes each STATE's value as one JSON line, and nothing else
        states = [json.loads(line) for line in lines]
    except ValueError:
        states = []
        run.problems.append("stdout holds something other than STATE lines")
    if any(not isinstance(state, dict) for state in states):
        run.problems.append("stdout holds something other than STATE lines")
    last = states[-1] if states else None
    if last != source.last_state:
        run.problems.append(f"last STATE printed is {last}, not {source.last_state}")
    return run, log
