"""`make demo`'s script keeps everything it writes under the project: run with a HOME of
its own, nothing appears there (no store in ~/.local/state, one index per random port),
and the store it keeps is under output/, which `make clean` removes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support.meltano import MELTANO, on_meltanos_python

ROOT = Path(__file__).resolve().parent.parent

# Meltano's Python only, like the other tests of the project's own Meltano folder: they
# run one after the other in that suite, so no lock is needed between them.
pytestmark = on_meltanos_python


def test_the_demo_writes_nothing_outside_the_project(tmp_path: Path) -> None:
    assert MELTANO is not None
    home = tmp_path / "home"
    home.mkdir()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TARGET_LEANPAY_", "XDG_"))
    }
    env.update(
        HOME=str(home),
        MELTANO=MELTANO,
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",  # as `make demo` does
    )

    demo = subprocess.run(
        ["bash", "scripts/demo.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-3000:]
    assert "== What the stand-in received" in demo.stdout
    written = sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))
    assert written == [], [w for w in written if w.count("/") < 3]
    store = sorted(p.name for p in (ROOT / "output" / "state" / "target-leanpay").iterdir())
    assert any(name.endswith(".sqlite") for name in store), store  # the stand-in tenant's
    # and `make clean` removes it
    assert re.search(r"^clean:\n\trm -rf .*\boutput\b", (ROOT / "Makefile").read_text(), re.M)
