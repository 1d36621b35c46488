"""Where target-leanpay's CPU goes, per thread: `python benchmarks/profile_target.py`.

Starts the stand-in (latency 0) as `throughput.py` does (`harness.py`), runs the real CLI in a child
process under cProfile and prints the top functions of the reading thread (read, map,
buffer) and of the sending threads (encode, make the HTTP call, settle), by own and by
cumulative time.

Two choices matter for reading the numbers right:

* every thread gets its own profiler (`threading.Thread.run` is wrapped): plain
  `python -m cProfile` sees only the main thread, and the sending threads compete with
  it for the GIL;
* the clock is `time.thread_time` (CPU of that thread), not cProfile's default wall
  clock, which charges time spent *waiting for the GIL* to whatever function was running
  when the thread was preempted (it made the SDK's `process_lines` look like 35 %).

cProfile's per-call overhead inflates small, often-called functions (it makes mapping
look ~5x dearer than it is); use the figures to rank hot spots, and confirm a gain with
`throughput.py`. Two options measure without that distortion:

* `--no-profile`: no profiler, only each thread's CPU seconds (`time.thread_time` at
  its end) and the process's wall clock: the honest split between reading and sending;
* `--http-free`: `LeanpayClient.post_batch` encodes the body and acknowledges every item
  without sending it, answering as Leanpay does (an id, the tenant, `createdAt`, the
  dates echoed: the tenant index and the date zone do their work; replay safety still
  lists through the stand-in): what the target would cost if Leanpay and HTTP cost nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import API_KEY, PYTHON, ROOT, standin, write_input

SENDER_PREFIX = "leanpay-send"


def _acknowledge_without_http() -> None:
    """--http-free: POSTs cost only their JSON encoding; every item is acknowledged."""
    from target_leanpay.leanpay import client  # noqa: PLC0415 - only in the child

    ids = itertools.count(1)

    def post_batch(
        _self: client.LeanpayClient, resource: Any, items: Any, *, on_retry: Any = None
    ) -> list[client.Created]:
        client.encode_batch(resource, items)  # what the client does before sending
        created = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return [  # as Leanpay answers: an id, the tenant, createdAt, the dates echoed
            client.Created(
                id=f"http-free-{next(ids):08d}",
                externalId=item.get("externalId"),
                createdAt=created,
                tenantId="http-free-tenant",
                **{d: f"{item[d]}T00:00:00.000Z" for d in ("issueDate", "dueDate") if d in item},
            )
            for item in items
        ]

    client.LeanpayClient.post_batch = post_batch  # type: ignore[method-assign,assignment]


def profile_child(out_dir: Path, cli_args: list[str], *, profile: bool, http_free: bool) -> int:
    """In the child: run the CLI, one CPU-clock profiler per thread unless told not to."""
    began = time.perf_counter()
    profilers: list[tuple[str, cProfile.Profile]] = []
    thread_cpu: list[tuple[str, float]] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def measured_run(thread: threading.Thread) -> None:
        profiler = cProfile.Profile(time.thread_time)
        if profile:
            with lock:
                profilers.append((thread.name, profiler))
            profiler.enable()
        try:
            original_run(thread)
        finally:
            profiler.disable()
            with lock:
                thread_cpu.append((thread.name, time.thread_time()))

    threading.Thread.run = measured_run  # type: ignore[method-assign,assignment]
    imported = time.perf_counter()
    from target_leanpay.target import TargetLeanpay  # noqa: PLC0415 - timed on purpose

    import_seconds = time.perf_counter() - imported
    if http_free:
        _acknowledge_without_http()
    sys.argv = ["target-leanpay", *cli_args]
    main = cProfile.Profile(time.thread_time)
    code: Any = 0
    if profile:
        main.enable()
    try:
        TargetLeanpay.cli()
    except SystemExit as leaving:
        code = leaving.code
    finally:
        main.disable()
    main_cpu, wall = time.thread_time(), time.perf_counter() - began
    for thread in threading.enumerate():  # senders exit once the pool is shut down
        if thread is not threading.main_thread():
            thread.join(timeout=10)
    if profile:
        main.dump_stats(out_dir / "main.prof")
        senders = [p for name, p in profilers if name.startswith(SENDER_PREFIX)]
        if senders:
            merged = pstats.Stats(senders[0])
            for profiler in senders[1:]:
                merged.add(profiler)
            merged.dump_stats(str(out_dir / "senders.prof"))
    sending = [cpu for name, cpu in thread_cpu if name.startswith(SENDER_PREFIX)]
    meta = {
        "import_seconds": import_seconds,
        "sender_threads": len(sending),
        "main_cpu": main_cpu,
        "sending_cpu": sum(sending),
        "process_cpu": time.process_time(),
        "wall": wall,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta))
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
    parser.add_argument(
        "--no-profile", action="store_true", help="only CPU seconds per thread (no cProfile)"
    )
    parser.add_argument(
        "--http-free", action="store_true", help="acknowledge every POST without HTTP"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.child is not None:
        return profile_child(
            args.child, rest, profile=not args.no_profile, http_free=args.http_free
        )
    modes = [
        *(["--no-profile"] if args.no_profile else []),
        *(["--http-free"] if args.http_free else []),
    ]

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
                    [PYTHON, __file__, *modes, "--child", str(out_dir), "--config", str(config)],
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    cwd=ROOT,
                    timeout=300,
                    check=False,
                )
            wall = time.perf_counter() - started
            stored = server.invoice_count()
            standin_cpu = server.cpu_seconds()
        if child.returncode != 0:
            print(child.stderr.decode(errors="replace")[-2000:])
            return 1
        meta = json.loads((out_dir / "meta.json").read_text())
        how = "without HTTP" if args.http_free else f"{stored:,} stored"
        under = "without a profiler" if args.no_profile else "under the profiler"
        print(
            f"{args.records:,} records in {wall:.2f} s {under} ({how}); "
            f"{args.records / meta['wall']:,.0f} records/s in the child, imports included\n"
            f"CPU seconds: importing target_leanpay {meta['import_seconds']:.2f} (wall), "
            f"reading thread {meta['main_cpu']:.2f} (import included), "
            f"{meta['sender_threads']} sending threads {meta['sending_cpu']:.2f} in all, "
            f"whole process {meta['process_cpu']:.2f}; "
            f"the stand-in {standin_cpu:.2f} (since it started)"
        )
        if not args.no_profile:
            report(out_dir / "main.prof", "reading thread (read, map, buffer)", args.top)
            if (out_dir / "senders.prof").exists():
                report(out_dir / "senders.prof", "sending threads, merged", args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
