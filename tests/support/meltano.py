"""Meltano for the tests: the MELTANO variable (set by `make test` to .venv-meltano's
meltano) and the one Python its tests run on.

Meltano installs target-leanpay into a virtualenv of Meltano's own Python and runs it
from there, whatever Python runs pytest: on the suite's other Pythons the same commands
would test the same installation again (and did, 3 times over, in a run of `make test`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

MELTANO = os.environ.get("MELTANO")


def _meltano_python() -> tuple[int, int] | None:
    """The Python version of Meltano's virtualenv (its pyvenv.cfg), if MELTANO is set."""
    if not MELTANO:
        return None
    config = Path(MELTANO).resolve().parent.parent / "pyvenv.cfg"
    found = re.search(r"^version(?:_info)?\s*=\s*(\d+)\.(\d+)", config.read_text(), re.M)
    assert found, f"no version in {config}"
    return int(found.group(1)), int(found.group(2))


MELTANO_PYTHON = _meltano_python()
INSTALLS_SECONDS = 600
"""The bound of one Meltano test (pyproject's 120 s is for the others): Meltano installs
packages, which beside the suites of other Pythons took more than 120 s where an idle
machine takes 20 s; its commands' own timeouts stop a hang."""
on_meltanos_python = [
    pytest.mark.timeout(INSTALLS_SECONDS),
    pytest.mark.skipif(not MELTANO, reason="MELTANO is set by `make test` (needs .venv-meltano)"),
    pytest.mark.skipif(
        MELTANO_PYTHON is not None and sys.version_info[:2] != MELTANO_PYTHON,
        reason=f"run on Meltano's own Python {MELTANO_PYTHON}, where Meltano installs the target",
    ),
]
"""The marks of a test module that runs Meltano (its `pytestmark`)."""
