"""Section 8 of `throughput.py`: what a scheduled run costs as the tenant grows.

The same run, 10 repeated + 100 new invoices, into tenants of 20,000 and 200,000
invoices (and 1,000,000 with `--tenant-sizes`), each after one run that loaded 1,000
(it lists the whole tenant and fills the store: setup, not a figure). Latency 0: the
figure is the target's CPU (user + system of its process tree), the median of 3 such
runs per size (each loads the next 100 new invoices). Goal: the 200,000 tenant's CPU
<= 1.25 x the 20,000 one's (a run costs what is new, not what the tenant holds).

For the largest size it also runs the same 110 records at 50 ms, against the same
records into an empty tenant with replay safety off: seconds over that baseline (goal
<= 1.0 s) and peak RSS (goal <= 100 MB). Each run is checked by the stand-in (it
refuses a duplicate externalId with 409, and must hold the tenant plus the input once).

Run alone: `python benchmarks/throughput.py --only size` (`--tenant-sizes 20000 200000
1000000` for the million: its setup lists 40,000 pages).
"""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import API_KEY, TARGET_CMD, Run, StandIn
from incremental import write_range

LOADED = 1_000
RUNS = 3
LATENCY_MS = 50.0
GOAL_RATIO = 1.25
GOAL_OVER_S = 1.0
GOAL_RSS_MIB = 100.0
Figure = tuple[str, str, str, str, bool | None]


class TenantSize:
    """The runs above on one stand-in; `figures` collects (name, measured, against, goal,
    passed)."""

    def __init__(
        self,
        server: StandIn,
        workdir: Path,
        run_target: Callable[..., Run],
        add: Callable[[Run], Run],
    ) -> None:
        self.server = server
        self.workdir = workdir
        self._run_target = run_target
        self._add = add
        self.figures: list[Figure] = []

    def run(self, label: str, first: int, last: int, **settings: object) -> Run:
        source = write_range(self.workdir / f"size-{first}.singer", first, last)
        run = self._run_target(
            self.server, source, self.workdir, label=label, timeout=1800, settings=settings
        )
        return self._add(run)

    def check(self, run: Run, expected: int) -> None:
        """Exactly once: the tenant holds `expected` invoices, and no POST was a 409."""
        total = self.server.invoice_count()
        if total != expected:
            run.problems.append(f"the stand-in holds {total:,} invoices, not {expected:,}")
        refused = [e for e in self.server.journal() if e["status"] == 409]
        if refused:
            run.problems.append(f"{len(refused)} POSTs refused as duplicates: a double send")

    def measure(self, sizes: Sequence[int]) -> None:
        cpu: dict[int, float] = {}
        for size in sizes:
            cpu[size] = self._cpu_of(size)
        small, big = min(sizes), max(sizes)
        for size in sizes:
            if size == small:
                continue
            ratio = cpu[size] / cpu[small]
            self.figures.append(
                (
                    f"CPU-s, 110 into {size:,} vs {small:,}",
                    f"{cpu[size]:.2f}",
                    f"{cpu[small]:.2f}",
                    f"{ratio:.2f}x <= {GOAL_RATIO}x",
                    ratio <= GOAL_RATIO,
                )
            )
        self._latency_of(big)

    def _setup(self, size: int, latency: float = 0) -> dict[str, object]:
        self.server.reset(0, seed_invoices=size)
        self.server.configure(order="newest")
        settings: dict[str, object] = {"store": str(self.workdir / f"store-{size}")}
        setup = self.run(f"{size:,}: setup, 1,000 (lists all)", 1, LOADED, **settings)
        self.check(setup, size + LOADED)
        _receipts_as_if_loaded_here(Path(str(settings["store"])), size)
        self.server.configure(latency_ms=latency)
        return settings

    def _cpu_of(self, size: int) -> float:
        """Median CPU of RUNS runs of 10 repeated + 100 new into a tenant of `size`."""
        settings = self._setup(size)
        seconds = []
        last = LOADED
        for number in range(1, RUNS + 1):
            run = self.run(
                f"{size:,}: 10 repeated + 100 new #{number}", last - 9, last + 100, **settings
            )
            last += 100
            self.check(run, size + last)
            seconds.append(run.cpu)
        return statistics.median(seconds)

    def _latency_of(self, size: int) -> None:
        """At 50 ms: seconds over the same records into an empty tenant, and peak RSS."""
        self.server.reset(LATENCY_MS)
        base = self.run(
            "baseline: 110 into empty, replay off",
            900_001,
            900_110,
            replay_safety=False,
            store=str(self.workdir / "store-base"),  # a machine that starts empty
        )
        self.check(base, 110)
        settings = self._setup(size, LATENCY_MS)
        run = self.run(
            f"{size:,}: 10 repeated + 100 new at 50 ms", LOADED - 9, LOADED + 100, **settings
        )
        self.check(run, size + LOADED + 100)
        over = run.wall - base.wall
        self.figures.append(
            (
                f"s over empty, 110 into {size:,}",
                f"{over:+.2f} s",
                f"{base.wall:.2f} s",
                f"<= {GOAL_OVER_S} s",
                over <= GOAL_OVER_S,
            )
        )
        peak = self._peak_rss_mb(settings, LOADED + 91, LOADED + 200)
        self.check(run, size + LOADED + 200)
        self.figures.append(
            (
                f"peak RSS, 110 into {size:,}",
                f"{peak:.0f} MB",
                "",
                f"<= {GOAL_RSS_MIB:.0f} MB",
                peak <= GOAL_RSS_MIB,
            )
        )

    def _peak_rss_mb(self, settings: dict[str, object], first: int, last: int) -> float:
        """The next 110 under GNU time: the harness's own `ru_maxrss` counts the RSS of
        this (large) benchmark process at spawn, which Linux keeps across `exec`."""
        source = write_range(self.workdir / "rss.singer", first, last)
        config = self.workdir / "rss.json"
        config.write_text(json.dumps({"api_key": API_KEY, "api_url": self.server.url, **settings}))
        with source.path.open("rb") as stdin:
            done = subprocess.run(
                ["/usr/bin/time", "-f", "%M", *TARGET_CMD, "--config", str(config)],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=True,
                timeout=600,
            )
        return int(done.stderr.splitlines()[-1]) / 1000  # KiB -> MB


def _receipts_as_if_loaded_here(store: Path, size: int) -> None:
    """A receipt of every seeded invoice, as the store holds for a tenant this target
    filled (the common case): a run must not cost more with every receipt ever written."""
    (receipts,) = store.glob("*.receipts.jsonl")
    with receipts.open("ab") as out:
        for number in range(1, size + 1):
            line = {
                "resource": "invoices",
                "externalId": f"seed-{number:06d}",
                "id": f"seeded-{number}",
                "stream": "invoices",
                "run_started": "2026-01-01T00:00:00+00:00",
                "sent": {"reference": f"seed-{number:06d}", "amount": 1000},
            }
            out.write(json.dumps(line).encode() + b"\n")
