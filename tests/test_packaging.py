"""What pyproject.toml promises: any Python from 3.11 on installs it (no upper cap), and the
versions it names are the ones `make test` runs the suite on, as the README says."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_python_from_3_11_on_may_install_it() -> None:
    allowed = SpecifierSet(PROJECT["requires-python"])
    assert [v for v in ("3.10", "3.11", "3.13", "3.14", "3.15", "4.0") if v in allowed] == [
        "3.11",
        "3.13",
        "3.14",
        "3.15",
        "4.0",
    ]


def test_the_versions_named_are_the_ones_the_suite_runs_on() -> None:
    classified = [
        c.rsplit(" :: ", 1)[1]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    script = (ROOT / "scripts/test-pythons.sh").read_text()
    found = re.search(r"VERSIONS=\$\{PYTHON_VERSIONS:-([\d. ]+)\}", script)
    assert found is not None
    assert classified == found.group(1).split() == ["3.11", "3.12", "3.13"]
    readme = (ROOT / "README.md").read_text()
    assert "Python 3.11 or newer; the test suite runs on 3.11, 3.12 and 3.13." in readme


def test_what_pip_install_of_a_clone_leaves_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "build/lib/target_leanpay/target.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.returncode == 0, "build/ is not in .gitignore"
