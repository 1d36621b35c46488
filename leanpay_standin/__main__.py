"""CLI: run the stand-in as its own process (demo, benchmark).

Prints the API base URL on one stdout line once it accepts connections (and writes it to
--url-file), so a parent process knows where to point the target; stops on SIGTERM/SIGINT.

The server needs werkzeug, which only the 'standin' extra installs; the command itself
is installed without it, so it imports the server inside `main` and, when werkzeug is
missing, says which extra to install (one line, exit 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from leanpay_standin.store import DUPLICATE_MODES, LIST_ORDERS

if TYPE_CHECKING:
    from leanpay_standin.server import StandIn

PROG = "leanpay-standin"
MISSING_WERKZEUG = (
    f"{PROG}: the stand-in needs the 'standin' extra: pip install 'target-leanpay[standin]'"
)


def count(text: str) -> int:
    """An argparse type: an integer >= 0 (its name is in argparse's error message)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Local stand-in for the Leanpay public API (binds 127.0.0.1 only). "
        "Settings can also be changed while running: POST /_control/config.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    parser.add_argument("--api-key", required=True, help="the raw key clients must send")
    parser.add_argument(
        "--duplicates",
        choices=DUPLICATE_MODES,
        default="accept",
        help="a batch repeating a stored externalId: accept (store again, the default), "
        "refuse (409 for the whole batch) or ignore (answer with the stored object)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="each API answer leaves this long after its request arrived (processing "
        "included; GETs, POSTs and refusals alike)",
    )
    parser.add_argument(
        "--page-size",
        type=int,
        default=25,
        help="invoices per page of GET /invoices (default 25; Leanpay documents none)",
    )
    parser.add_argument(
        "--order",
        choices=LIST_ORDERS,
        default="oldest",
        help="the order of GET /invoices (Leanpay documents none): oldest first (creation "
        "order, the default), newest first, or by Leanpay id (unrelated to time)",
    )
    parser.add_argument(
        "--seed-invoices",
        type=count,
        default=0,
        metavar="N",
        help="start with N invoices stored as if imported earlier: externalIds "
        "seed-000001 ... (as POST /_control/seed)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        metavar="PER_SECOND",
        help="token bucket over authenticated API requests: refused ones get 429 with "
        "Retry-After (whole seconds until a token); 0 or absent = no limit",
    )
    parser.add_argument(
        "--rate-burst",
        type=float,
        default=None,
        metavar="REQUESTS",
        help="the bucket's capacity (>= 1); default one second's worth, max(1, rate limit)",
    )
    parser.add_argument("--url-file", type=Path, help="also write the base URL to this file")
    parser.add_argument(
        "--no-log-bodies",
        action="store_true",
        help="do not keep request bodies in the journal (long benchmarks)",
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("--verbose", action="store_true", help="log API requests to stderr")
    loudness.add_argument("--quiet", action="store_true", help="no request log (default)")
    return parser


def _write_atomically(path: Path, text: str) -> None:
    """Readers polling the file never see it half-written."""
    fd, temporary = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    Path(temporary).replace(path)


def _server_class() -> type[StandIn] | None:
    """`StandIn`, or None when werkzeug cannot be imported (any other failure is a bug)."""
    try:
        from leanpay_standin.server import StandIn  # noqa: PLC0415 - needs werkzeug
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] != "werkzeug":
            raise
        return None
    return StandIn


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    args = _parser().parse_args(argv)
    server_class = _server_class()
    if server_class is None:
        sys.stderr.write(MISSING_WERKZEUG + "\n")
        return 2
    try:
        standin = server_class(
            api_key=args.api_key,
            duplicates=args.duplicates,
            latency_ms=args.latency_ms,
            page_size=args.page_size,
            order=args.order,
            port=args.port,
            verbose=args.verbose,
            log_bodies=not args.no_log_bodies,
            rate_limit=args.rate_limit,
            rate_burst=args.rate_burst,
        )
    except ValueError as error:
        sys.stderr.write(f"{PROG}: {error}\n")
        return 2
    standin.seed_invoices(args.seed_invoices)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    standin.start()
    try:
        if args.url_file is not None:
            _write_atomically(args.url_file, standin.url + "\n")
        sys.stdout.write(standin.url + "\n")
        sys.stdout.flush()
        while not stop.wait(timeout=0.5):
            pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
