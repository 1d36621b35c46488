"""Where target-leanpay's CPU goes, per thread: `python benchmarks/profile_target.py`.

Starts the stand-in (latency 0) as `throughput.py` does, runs the real CLI in a child
process under cProfile and prints the top functions of the reading thread (read, map,
buffer) and of the sending threads (encode, HTTP), by own and by cumulative time.

Two choices matter for reading the numbers right:

* every thread gets its own profiler (`threading.Thread.run` is wrapped): plain
  `python -m cProfile` sees only the main thread, and the sending threads compete with
  it for the GIL;
* the clock is `time.thread_time` (CPU of that thread), not cProfile's default wall
  clock, which charges time spent *waiting for the GIL* to whatever function was running
  when the thread was preempted (it made the SDK's `process_lines` look like 35 %).

cProfile's per-call overhead inflates small, often-called functions; use the figures to
rank hot spots, and confirm a gain with `throughput.py`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from throughput import API_KEY, PYTHON, ROOT, standin, write_input

SENDER_PREFIX = "leanpay-send"


def profile_child(out_dir: Path, cli_args: list[str]) -> int:
    """In the child: run the CLI with one CPU-clock profiler per thread, save them."""
    profilers: list[tuple[str, cProfile.Profile]] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            profilers.append((thread.name, profiler))
        profiler.enable()
        try:
            original_run(thread)
        finally:
            profiler.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign,assignment]
    imported = time.perf_counter()
    from target_leanpay.target import TargetLeanpay  # noqa: PLC0415 - timed on purpose

    import_seconds = time.perf_counter() - imported
    sys.argv = ["target-leanpay", *cli_args]
    main = cProfile.Profile(time.thread_time)
    code: Any = 0
    main.enable()
    try:
        TargetLeanpay.cli()
    except SystemExit as leaving:
        code = leaving.code
    finally:
        main.disable()
    for thread in threading.enumerate():  # senders exit once the pool is shut down
        if thread is not threading.main_thread():
            thread.join(timeout=10)
    main.dump_stats(out_dir / "main.prof")
    senders = [p for name, p in profilers if name.startswith(SENDER_PREFIX)]
    if senders:
        merged = pstats.Stats(senders[0])
        for profiler in senders[1:]:
            merged.add(profiler)
        merged.dump_stats(str(out_dir / "senders.prof"))
    (out_dir / "meta.json").write_text(
        json.dumps({"import_seconds": import_seconds, "sender_threads": len(senders)})
    )
    return int(code or 0)


def report(path: Path, title: str, top: int) -> None:
    """Top functions by own time, then by cumulative time."""
    stats = pstats.Stats(str(path), stream=sys.stdout)
    total = getattr(stats, "total_tt", 0.0)
    print(f"\n===== {title}: {total:.2f} s CPU in all =====")
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    """Parent: input, stand-in, the profiled child, the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=25, help="functions per table")
    parser.add_argument("--out", type=Path, help="keep the .prof files here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child is not None:
        return profile_child(args.child, rest)

    with tempfile.TemporaryDirectory(prefix="leanpay-profile-") as scratch:
        workdir = Path(scratch)
        out_dir = args.out or workdir
        out_dir.mkdir(parents=True, exist_ok=True)
        input_path = workdir / "input.singer"
        write_input(input_path, args.records)
        with standin(workdir) as server:
            server.reset(0)
            config = workdir / "config.json"
            config.write_text(json.dumps({"api_key": API_KEY, "api_url": server.url}))
            started = time.perf_counter()
            with input_path.open("rb") as stdin:
                child = subprocess.run(
                    [PYTHON, __file__, "--child", str(out_dir), "--config", str(config)],
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    cwd=ROOT,
                    timeout=300,
                    check=False,
                )
            wall = time.perf_counter() - started
            stored = server.invoice_count()
        if child.returncode != 0:
            print(child.stderr.decode(errors="replace")[-2000:])
            return 1
        meta = json.loads((out_dir / "meta.json").read_text())
        print(
            f"{args.records:,} records in {wall:.1f} s under the profiler "
            f"({stored:,} stored); importing target_leanpay took "
            f"{meta['import_seconds']:.2f} s; {meta['sender_threads']} sending threads"
        )
        report(out_dir / "main.prof", "reading thread (read, map, buffer)", args.top)
        if (out_dir / "senders.prof").exists():
            report(out_dir / "senders.prof", "sending threads, merged", args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
