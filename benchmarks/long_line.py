"""How reading time grows with one line's length: a 15 MB and a 60 MB input line, each
piped into the target CLI (a dry run, so nothing but reading counts), timed in one run, less the
target's start-up (an empty line); the fastest of five interleaved runs of each.

Reading is linear when the 60 MB line takes about four times the 15 MB one; joining the
rest of a line to every 64 KiB read made it sixteen (2 s and 26 s). Run it on a quiet
machine: `python benchmarks/long_line.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEMA = {
    "type": "SCHEMA",
    "stream": "invoices",
    "schema": {"type": "object", "properties": {}},
    "key_properties": [],
}


def seconds_to_read(megabytes: int, folder: Path) -> float:
    """Wall seconds for the target to start, read a STATE line of `megabytes` MB, and end."""
    config = folder / "config.json"
    config.write_text(json.dumps({"dry_run": True, "dry_run_path": str(folder / "dry.jsonl")}))
    pad = "x" * (megabytes * 1_000_000)
    data = (
        json.dumps(SCHEMA) + "\n" + json.dumps({"type": "STATE", "value": {"pad": pad}}) + "\n"
    ).encode()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "target_leanpay", "--config", str(config)],
        input=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr.decode()[-2000:])
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = [[seconds_to_read(size, Path(tmp)) for size in (0, 15, 60)] for _ in range(5)]
    start_up, small, large = (min(times) for times in zip(*runs, strict=True))
    small, large = small - start_up, large - start_up
    print(
        f"fastest of 5: start-up {start_up:.2f} s; then a 15 MB line {small:.2f} s, a 60 MB line "
        f"{large:.2f} s: ratio {large / small:.1f} (linear: about 4)"
    )


if __name__ == "__main__":
    main()
