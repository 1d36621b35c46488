"""The README's deployment recipe, run as written: two scheduled runs, each on a "machine"
of its own (a fresh copy of the Meltano project, its own home, state and cache folders),
one after the other, against the stand-in and one PostgreSQL that holds both Meltano's
state and the target's store. The second run reads a page or two of the tenant, not all
of them, and sends only what is new.

Meltano comes from .venv-meltano (MELTANO, set by `make test`) and installs the target
from this clone with its postgres extra, so this runs on Meltano's own Python only, like
tests/test_readme_meltano.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import yaml
from conftest import API_KEY, CLIENT_ID
from support.postgres import PASSWORD, PostgresServer
from test_readme_meltano import MELTANO, pytestmark  # noqa: F401 - the same conditions

from leanpay_standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
SECTION = "### A deployment recipe: scheduled runs on fresh machines"
SEEDED = 2000  # 80 pages of 25: a full listing would read them all
PLACEHOLDERS = {"$PWD/target-leanpay": str(ROOT), "tap-x": "tap-jsonl"}


def recipe() -> str:
    """The recipe's `load.sh` (the section's sh block), placeholders filled in."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(SECTION) :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the deployment recipe lost its shell block"
    commands = block.group(1)
    for placeholder, value in PLACEHOLDERS.items():
        assert placeholder in commands, placeholder
        commands = commands.replace(placeholder, value)
    return commands


def project_files(folder: Path) -> None:
    """The user's Meltano project as their repository holds it: meltano.yml with their
    tap (tap-jsonl here) and target-leanpay as its plugin definition declares it."""
    ours = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [tap] = [e for e in ours["plugins"]["extractors"] if e["name"] == "tap-jsonl"]
    tap["config"] = {"path": "erp.jsonl", "stream_name": "invoices", "primary_keys": ["externalId"]}
    loader = yaml.safe_load((ROOT / "target-leanpay.yml").read_text())
    target = {key: loader[key] for key in ("name", "namespace", "pip_url", "executable")}
    target.update(capabilities=loader["capabilities"], settings=loader["settings"])
    project = {
        "version": 1,
        "project_id": "leanpay-recipe",
        "send_anonymous_usage_stats": False,
        "default_environment": "prod",
        "environments": [{"name": "prod"}],
        "plugins": {"extractors": [tap], "loaders": [target]},
    }
    folder.mkdir(parents=True)
    (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))


def erp_rows(numbers: range) -> str:
    return "".join(
        json.dumps(
            {
                "externalId": f"ERP-{n:05d}",
                "clientId": CLIENT_ID,
                "reference": f"F-{n}",
                "amount": 1000 + n,
                "issueDate": "2024-03-01",
                "dueDate": "2024-04-01",
            }
        )
        + "\n"
        for n in numbers
    )


def machine(tmp_path: Path, name: str, template: Path, rows: range) -> Path:
    """A fresh machine: a copy of the project (no .meltano), the tap's file of the day."""
    home = tmp_path / name
    project = home / "project"
    shutil.copytree(template, project)
    (project / "erp.jsonl").write_text(erp_rows(rows))
    return project


def run_recipe(project: Path, pg_url: str, leanpay: StandIn) -> subprocess.CompletedProcess[str]:
    assert MELTANO is not None
    home = project.parent
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TARGET_LEANPAY_", "TAP_JSONL_", "MELTANO", "XDG_"))
    }
    env.update(
        PATH=f"{Path(MELTANO).parent}{os.pathsep}{env['PATH']}",
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        PG_URL=pg_url,
        TARGET_LEANPAY_API_KEY=API_KEY,
        TARGET_LEANPAY_API_URL=leanpay.url,
    )
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe()],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def pages_read(leanpay: StandIn, since: int) -> list[int]:
    return [
        int(r["query"]["page"])
        for r in leanpay.requests()[since:]
        if r["method"] == "GET" and r["path"] == "/invoices"
    ]


def posted(leanpay: StandIn, since: int) -> list[str]:
    return [
        item["externalId"]
        for r in leanpay.requests()[since:]
        if r["method"] == "POST" and r["path"] == "/invoices/batch"
        for item in (r["body"] or {}).get("invoices", [])
    ]


def test_two_scheduled_runs_on_fresh_machines_share_one_postgresql(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    database = postgres.new_database()
    pg_url = postgres.url(database)
    template = tmp_path / "repository"
    project_files(template)
    with StandIn(api_key=API_KEY, order="newest") as leanpay:
        leanpay.seed_invoices(SEEDED)

        first = run_recipe(machine(tmp_path, "machine-1", template, range(1, 201)), pg_url, leanpay)

        assert first.returncode == 0, first.stderr[-4000:]
        assert sorted(posted(leanpay, 0)) == [f"ERP-{n:05d}" for n in range(1, 201)]
        since = len(leanpay.requests())

        # the next hour, on another machine: 10 rows already loaded, 100 new
        second = run_recipe(
            machine(tmp_path, "machine-2", template, range(191, 301)), pg_url, leanpay
        )

        assert second.returncode == 0, second.stderr[-4000:]
        assert len(pages_read(leanpay, since)) <= 20, pages_read(leanpay, since)
        assert sorted(posted(leanpay, since)) == [f"ERP-{n:05d}" for n in range(201, 301)]
        counts = Counter(i["externalId"] for i in leanpay.store())
        assert {k: v for k, v in counts.items() if k.startswith("ERP-")} == {
            f"ERP-{n:05d}": 1 for n in range(1, 301)
        }
    # Meltano's state and the target's store are both in that one database
    schemas = {
        s for (s,) in postgres.sql(database, "SELECT table_schema FROM information_schema.tables")
    }
    assert {"public", "target_leanpay"} <= schemas
    assert postgres.sql(database, "SELECT count(*) FROM public.state") == [(1,)]
    for output in (first, second):
        assert PASSWORD not in output.stdout + output.stderr
