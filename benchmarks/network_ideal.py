"""The network ideal: what `requests` alone reaches against the stand-in, nothing else.

100 x C / L assumes that a client costs nothing between an answer and its next request.
On a real machine the HTTP library and the server's own handling take some of that time
too. This client sends the very bodies a run would send (from a dry run of the same
input, byte for byte) from C threads through one `requests.Session`, each thread
sending its next body the moment its answer is read: no reading, no mapping, no
bookkeeping. What the target loses against it is the target's own cost.

It runs as a process of its own (`python benchmarks/network_ideal.py URL REQUESTS C`,
printing the wall seconds), so the benchmark's process stays small: a child inherits
its parent's peak RSS, and the target's figures would carry the bodies held here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from harness import API_KEY, PYTHON, TARGET_CMD, Input


def dry_run(source: Input, workdir: Path) -> tuple[Path, int]:
    """The requests a run of `source` would send (a dry run's file), and how many."""
    out = workdir / "network-ideal-requests.jsonl"
    config = workdir / "network-ideal-config.json"
    config.write_text(json.dumps({"dry_run": True, "dry_run_path": str(out)}))
    with source.path.open("rb") as stdin:
        subprocess.run(
            [*TARGET_CMD, "--config", str(config)], stdin=stdin, capture_output=True, check=True
        )
    with out.open("rb") as lines:
        return out, sum(1 for _ in lines)


def records_per_second(url: str, requests_file: Path, threads: int, records: int) -> float:
    """Run `send_all` in a process of its own; the records per second it reached."""
    answer = subprocess.run(
        [PYTHON, __file__, url, str(requests_file), str(threads)],
        capture_output=True,
        check=True,
        text=True,
    )
    return records / float(answer.stdout)


def send_all(url: str, bodies: list[tuple[str, bytes]], threads: int) -> float:
    """POST every body once, `threads` at a time; the wall seconds it took."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=threads))
    headers = {"Authorization": API_KEY, "Content-Type": "application/json"}
    lock = threading.Lock()
    todo = iter(bodies)
    failures: list[str] = []

    def send() -> None:
        while True:
            with lock:
                item = next(todo, None)
            if item is None:
                return
            answer = session.post(url + item[0], data=item[1], headers=headers, timeout=60)
            if not 200 <= answer.status_code < 300:
                failures.append(f"HTTP {answer.status_code}: {answer.text[:200]}")

    workers = [threading.Thread(target=send) for _ in range(threads)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.monotonic() - began
    session.close()
    if failures:
        raise RuntimeError(f"the network-ideal client was refused: {failures[0]}")
    return wall


def main() -> None:
    """`network_ideal.py URL REQUESTS C`: print the wall seconds `send_all` took."""
    url, requests_file, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    lines = requests_file.read_text().splitlines()
    bodies = [(r["path"], json.dumps(r["body"]).encode()) for r in map(json.loads, lines)]
    print(f"{send_all(url, bodies, threads):.6f}")


if __name__ == "__main__":
    main()
