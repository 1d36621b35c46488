"""The `target-leanpay` command: signal handlers first, then everything else.

Importing singer-sdk and the target takes ~0.3 s. A SIGINT / SIGTERM in that time would
otherwise raise KeyboardInterrupt (or kill mid-import) with a traceback and an exit code
other than the documented 128 + signal. Nothing has been read or sent yet, so the
handler installed here exits at once, quietly; the target replaces it with its own as
soon as it is built.
"""

from __future__ import annotations

import os
import signal
from types import FrameType


def _exit_at_start(signum: int, _frame: FrameType | None) -> None:
    os._exit(128 + signum)


def main() -> None:
    """Install the start-up signal handlers, then run the target's CLI."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_at_start)
    from target_leanpay.target import TargetLeanpay  # noqa: PLC0415 - after the handlers

    TargetLeanpay.cli()
