"""The README's Meltano quick start, run as written in a fresh `meltano init` project, then
what a Meltano user meets next: a config error under `meltano run`, and every setting set
by its TARGET_LEANPAY_* variable.

The commands are the README section's shell block, with its placeholders filled in (the
clone's path, the key, `tap-jsonl` for `tap-x`); the stand-in's URL comes from
TARGET_LEANPAY_API_URL. Meltano (the MELTANO variable, set by `make test`) installs the
target from this clone into a virtualenv of Meltano's own Python, so these tests run on
that Python only (tests/support/meltano.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import API_KEY, CLIENT_ID
from support.meltano import MELTANO, on_meltanos_python

from leanpay_standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Quick start: in your Meltano project"
PLACEHOLDERS = {"/path/to/target-leanpay": str(ROOT), "<key>": API_KEY, "tap-x": "tap-jsonl"}
OTHER_CLIENT = "0f5c7d38-5a1e-4f0e-9d57-3b1c2a9e8f21"


pytestmark = on_meltanos_python


def readme_commands() -> str:
    """The Meltano section's shell block, placeholders filled in."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(SECTION) :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Meltano quick start lost its shell block"
    commands = block.group(1)
    for placeholder, value in PLACEHOLDERS.items():
        assert placeholder in commands, placeholder
        commands = commands.replace(placeholder, value)
    return commands


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def row(n: int, amount: float = 12.34, **client: str) -> dict[str, Any]:
    """An ERP row already in Leanpay's field names, amounts in euros; the client given as
    `clientId` (a Leanpay UUID) or `clientExternalId` (an ERP code)."""
    return {
        "externalId": f"INV-{n}",
        "reference": f"F-{n}",
        **(client or {"clientId": CLIENT_ID}),
        "amount": amount,
        "issueDate": "2024-03-01",
        "dueDate": "2024-04-01",
    }


@dataclass
class Project:
    """A fresh Meltano project after the README's commands."""

    path: Path
    leanpay: StandIn
    env: dict[str, str]
    quick_start: subprocess.CompletedProcess[str]

    def meltano(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["meltano", *args],
            cwd=self.path,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    assert MELTANO is not None
    tmp = tmp_path_factory.mktemp("meltano")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TARGET_LEANPAY_", "TAP_JSONL_", "MELTANO"))
    }
    env.update(
        PATH=f"{Path(MELTANO).parent}{os.pathsep}{env['PATH']}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        TAP_JSONL_STREAM_NAME="invoices",
        TAP_JSONL_PRIMARY_KEYS='["externalId"]',
    )
    init = ["meltano", "init", "project", "--no_usage_stats"]
    subprocess.run(init, cwd=tmp, env=env, capture_output=True, check=True, timeout=120)
    path = tmp / "project"
    # the user's own tap (`tap-x` in the README): tap-jsonl, as this repository declares it
    [tap] = [
        {key: value for key, value in extractor.items() if key != "config"}
        for extractor in yaml.safe_load((ROOT / "meltano.yml").read_text())["plugins"]["extractors"]
        if extractor["name"] == "tap-jsonl"
    ]
    (tmp / "tap-jsonl.yml").write_text(yaml.safe_dump(tap))
    added = subprocess.run(
        ["meltano", "add", "tap-jsonl", "--from-ref", str(tmp / "tap-jsonl.yml")],
        cwd=path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert added.returncode == 0, added.stderr[-3000:]
    rows = [row(1), row(2, amount=559.48), row(3, amount=12.345), row(4, amount=7)]
    jsonl(path / "erp.jsonl", rows)
    with StandIn(api_key=API_KEY) as leanpay:
        env["TARGET_LEANPAY_API_URL"] = leanpay.url
        quick_start = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", readme_commands()],
            cwd=path,
            env={**env, "TAP_JSONL_PATH": "erp.jsonl"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        yield Project(path, leanpay, env, quick_start)


def test_the_readme_meltano_quick_start_loads_as_written(project: Project) -> None:
    run = project.quick_start
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Added loader 'target-leanpay'" in run.stdout + run.stderr
    assert "utility" not in run.stdout + run.stderr  # Meltano 3's `add loader` in Meltano 4
    assert "not found in the package registry" not in run.stderr
    definition = yaml.safe_load((project.path / "meltano.yml").read_text())
    [loader] = definition["plugins"]["loaders"]
    assert loader["pip_url"] == "${TARGET_LEANPAY_PIP_URL}"  # installs nothing by name
    assert "utilities" not in definition["plugins"]
    # the key went to .env (sensitive), the other settings to meltano.yml, as the README says
    assert f"TARGET_LEANPAY_API_KEY='{API_KEY}'" in (project.path / ".env").read_text()
    assert loader["config"] == {
        "amount_unit": "major",
        "dead_letter_path": "output/rejected.jsonl",
    }
    # amount_unit major: euros converted exactly; 12.345 rejected into dead_letter_path
    stored = project.leanpay.store("invoices")
    assert [
        (i["externalId"], i["clientId"], i["reference"], i["amount"], i["dueDate"][:10])
        for i in stored
    ] == [
        ("INV-1", CLIENT_ID, "F-1", 1234, "2024-04-01"),
        ("INV-2", CLIENT_ID, "F-2", 55948, "2024-04-01"),
        ("INV-4", CLIENT_ID, "F-4", 700, "2024-04-01"),
    ]
    [rejected] = [
        json.loads(line)
        for line in (project.path / "output/rejected.jsonl").read_text().splitlines()
    ]
    assert rejected["record"]["externalId"] == "INV-3"
    assert [r["field"] for r in rejected["reasons"]] == ["amount"]
    # `pip install` of the clone (non-editable) leaves build/ there: ignored by git
    untracked = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "build"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (ROOT / "build").is_dir()
    assert untracked.stdout == ""


def test_a_config_error_is_the_cause_meltano_run_reports(project: Project, tmp_path: Path) -> None:
    """The target refuses its config at once; the tap has 3000 rows (more than a pipe holds)
    to write after that. Meltano must end on the target's line, not on a broken pipe."""
    project.leanpay.reset()
    big = jsonl(tmp_path / "big.jsonl", [row(n) for n in range(3000)])
    run = project.meltano(
        "run",
        "tap-jsonl",
        "target-leanpay",
        TAP_JSONL_PATH=str(big),
        TARGET_LEANPAY_MAX_IN_FLIGHT="0",
    )
    assert run.returncode == 1
    assert "Invalid setting: max_in_flight must be greater than 0 (got 0)" in run.stderr
    assert "BrokenPipeError" not in run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    cause = next(i for i, line in enumerate(lines) if "Invalid setting" in line)
    failed = next(i for i, line in enumerate(lines) if "Loader failed" in line)
    assert cause < failed
    assert "Extractor failed" not in run.stderr  # the tap ran to its end
    assert project.leanpay.requests() == []


# Every setting of the definition, as its variable's text and as the target's config
# file then holds it (kind string: numbers stay text, read as numbers by the target).
def every_setting(tmp_path: Path, leanpay: StandIn) -> dict[str, tuple[str, Any]]:
    (tmp_path / "clients.csv").write_text(f"externalId,id\nC-1,{CLIENT_ID}\n")
    return {
        "api_key": (API_KEY, API_KEY),
        "api_url": (leanpay.url, leanpay.url),
        "request_timeout": ("7.5", "7.5"),
        "max_retries": ("3", 3),
        "max_retry_wait": ("2.5", "2.5"),
        "batch_size_rows": ("2", 2),
        "batch_wait_limit_seconds": ("45", "45"),
        "max_in_flight": ("2", 2),
        "max_list_in_flight": ("3", 3),
        "stream_resources": ('{"other": "credit_notes"}', {"other": "credit_notes"}),
        "amount_unit": ("major", "major"),
        "decimal_separator": (".", "."),
        "date_formats": ('["%d/%m/%Y"]', ["%d/%m/%Y"]),
        "client_ids": (f'{{"C-2": "{OTHER_CLIENT}"}}', {"C-2": OTHER_CLIENT}),
        "client_ids_file": (str(tmp_path / "clients.csv"), str(tmp_path / "clients.csv")),
        "dead_letter_path": (str(tmp_path / "dl.jsonl"), str(tmp_path / "dl.jsonl")),
        "max_rejections": ("5", 5),
        "dry_run": ("false", False),
        "dry_run_path": (str(tmp_path / "dry.jsonl"), str(tmp_path / "dry.jsonl")),
        "plan": ("false", False),
        "receipts_path": (str(tmp_path / "receipts.jsonl"), str(tmp_path / "receipts.jsonl")),
        "store": (str(tmp_path / "index"), str(tmp_path / "index")),
        "replay_safety": ("false", False),
        "require_external_id": ("true", True),
        "validate_records": ("true", True),
        "stream_maps": (
            '{"invoices": {"reference": "config[\'prefix\'] + externalId"}}',
            {"invoices": {"reference": "config['prefix'] + externalId"}},
        ),
        "stream_map_config": ('{"prefix": "R-"}', {"prefix": "R-"}),
        "faker_config": ('{"seed": 1}', {"seed": 1}),
        "flattening_enabled": ("false", False),
        "flattening_max_depth": ("1", 1),
        "flattening_max_key_length": ("60", 60),
        "flattening_separator": ("__", "__"),
    }


def test_every_setting_set_by_its_variable_reaches_the_target(
    project: Project, tmp_path: Path
) -> None:
    project.leanpay.reset()
    settings = every_setting(tmp_path, project.leanpay)
    definition = yaml.safe_load((ROOT / "target-leanpay.yml").read_text())
    assert list(settings) == [s["name"] for s in definition["settings"]]
    variables = {f"TARGET_LEANPAY_{name.upper()}": text for name, (text, _) in settings.items()}

    listed = project.meltano("config", "list", "target-leanpay", **variables)
    assert listed.returncode == 0, listed.stderr[-3000:]
    for variable in variables:
        assert f"(from the {variable} variable in the environment)" in listed.stdout, variable
    # the config file `meltano run` hands the target (where a decimal kind crashed)
    dumped = project.meltano("invoke", "--dump=config", "target-leanpay", **variables)
    assert dumped.returncode == 0, dumped.stderr[-3000:]
    assert json.loads(dumped.stdout) == {name: value for name, (_, value) in settings.items()}

    rows = [
        row(1, clientExternalId="C-1"),
        row(2, amount=5, clientExternalId="C-2"),
        row(3, amount=0.5, clientExternalId="C-1"),
    ]
    run = project.meltano(
        "run",
        "tap-jsonl",
        "target-leanpay",
        TAP_JSONL_PATH=str(jsonl(tmp_path / "three.jsonl", rows)),
        **variables,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    # max_in_flight 2: the two requests may be answered in either order
    journal = project.leanpay.requests()
    assert sorted((r["method"], r["items"]) for r in journal) == [
        ("POST", 1),  # batch_size_rows 2; replay_safety off: no listing
        ("POST", 2),
    ]
    stored = project.leanpay.store("invoices")
    assert sorted((i["reference"], i["clientId"], i["amount"]) for i in stored) == [
        ("R-INV-1", CLIENT_ID, 1234),  # stream_maps with stream_map_config; client_ids_file
        ("R-INV-2", OTHER_CLIENT, 500),  # client_ids; amount_unit major
        ("R-INV-3", CLIENT_ID, 50),
    ]
    receipts = (tmp_path / "receipts.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["externalId"] for line in receipts) == [
        "INV-1",
        "INV-2",
        "INV-3",
    ]
    assert not (tmp_path / "dl.jsonl").exists()


def test_meltano_add_without_the_pip_url_variable_fails_as_the_readme_says(
    tmp_path: Path,
) -> None:
    """The definition installs `${TARGET_LEANPAY_PIP_URL}`; unset, Meltano expands it to
    nothing and gives uv nothing to install (a definition cannot make Meltano name the
    variable). The README quotes that failure and names the variable right beside it."""
    assert MELTANO is not None
    env = {name: value for name, value in os.environ.items() if not name.startswith("TARGET_")}
    env.update(
        PATH=f"{Path(MELTANO).parent}{os.pathsep}{env['PATH']}",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
    )
    init = ["meltano", "init", "project", "--no_usage_stats"]
    subprocess.run(init, cwd=tmp_path, env=env, capture_output=True, check=True, timeout=120)

    added = subprocess.run(
        ["meltano", "add", "target-leanpay", "--from-ref", str(ROOT / "target-leanpay.yml")],
        cwd=tmp_path / "project",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert added.returncode != 0
    said = " ".join((added.stdout + added.stderr).replace("│", " ").split())
    failure = "error: the following required arguments were not provided: <PACKAGE|--requirements"
    assert failure in said, said[-2000:]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(SECTION) : readme.index("\n## ", readme.index(SECTION) + 1)]
    [paragraph] = [p for p in section.split("\n\n") if failure in " ".join(p.split())]
    assert "TARGET_LEANPAY_PIP_URL" in paragraph and "unset" in paragraph
    commands = readme_commands()
    assert commands.splitlines()[0].startswith("echo 'TARGET_LEANPAY_PIP_URL=")  # set first
