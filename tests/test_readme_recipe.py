"""The README's standalone quick start, run as written: its config block and its shell
recipe, twice, with a tap that resumes from `--state`. A recipe that appends STATE lines
(`>> state.json`) leaves a file no tap can read as its state, and the second run fails."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml
from conftest import API_KEY, run_target

from leanpay_standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Quick start: a tap piped into the target"

TAP = """\
#!{python}
# A tap as the README's recipe calls it: tap-x --config tap.json [--state state.json]
import json, os, sys

args = sys.argv[1:]
last = 0
if "--state" in args:
    with open(args[args.index("--state") + 1]) as state:
        last = json.load(state)["bookmarks"]["invoices"]["last"]
with open("tap-starts.txt", "a") as starts:
    starts.write(f"{{last}}\\n")
schema = {{"type": "object", "properties": {{name: {{"type": "string"}} for name in
          ["externalId", "reference", "clientExternalId", "amount", "issueDate",
           "dueDate"]}}}}
print(json.dumps({{"type": "SCHEMA", "stream": "invoices", "schema": schema,
                  "key_properties": ["externalId"]}}))
for n in range(last + 1, last + int(os.environ["TAP_COUNT"]) + 1):
    record = {{"externalId": f"INV-{{n}}", "reference": f"F-{{n}}", "clientExternalId": "C-001",
              "amount": "12.34", "issueDate": "2024-03-01", "dueDate": "2024-04-01"}}
    print(json.dumps({{"type": "RECORD", "stream": "invoices", "record": record}}))
    print(json.dumps({{"type": "STATE", "value": {{"bookmarks": {{"invoices": {{"last": n}}}}}}}}))
"""


def readme_blocks() -> tuple[dict[str, object], str]:
    """The quick start's config (the first json block) and recipe (the first sh block)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(SECTION) :]
    config = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    recipe = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert config is not None and recipe is not None, "the quick start lost its blocks"
    return json.loads(config.group(1)), recipe.group(1)


def test_the_readme_resume_recipe_resumes(tmp_path: Path) -> None:
    config, recipe = readme_blocks()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tap = bin_dir / "tap-x"
    tap.write_text(TAP.format(python=sys.executable))
    tap.chmod(0o755)
    (tmp_path / "tap.json").write_text("{}")
    (tmp_path / "clients.csv").write_text(
        "externalId,id\nC-001,6513270e-269e-4d37-b2a7-4de452e6b438\n"
    )
    (tmp_path / "recipe.sh").write_text(recipe)
    path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

    with StandIn(api_key=API_KEY) as leanpay:
        config.update(api_key=API_KEY, api_url=leanpay.url)
        (tmp_path / "target.json").write_text(json.dumps(config))
        states = []
        for count in (5, 3):
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "recipe.sh"],
                cwd=tmp_path,
                env={**os.environ, "PATH": path, "TAP_COUNT": str(count)},
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert run.returncode == 0, run.stderr[-2000:]
            states.append((tmp_path / "state.json").read_text())
        stored = Counter(item["externalId"] for item in leanpay.store("invoices"))
        amounts = {item["amount"] for item in leanpay.store("invoices")}

    # each run leaves one JSON object, the last STATE, which the next run's tap reads
    assert [json.loads(state) for state in states] == [
        {"bookmarks": {"invoices": {"last": 5}}},
        {"bookmarks": {"invoices": {"last": 8}}},
    ]
    assert (tmp_path / "tap-starts.txt").read_text().split() == ["0", "5"]
    assert stored == {f"INV-{n}": 1 for n in range(1, 9)}
    assert amounts == {1234}  # amount_unit major, as the README's config says
    assert not (tmp_path / "rejected.jsonl").exists()


FRENCH_SECTION = "### A French export"


def french_blocks() -> dict[str, str]:
    """The French export section's blocks: the CSV, tap-csv's own config (the first yaml
    block), the tap's record (the first json block), the target's config (the second yaml)
    and what Leanpay receives (the second json block)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(FRENCH_SECTION)
    section = readme[start : readme.index("\n### ", start + 1)]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)
    assert [kind for kind, _ in blocks] == ["csv", "yaml", "json", "yaml", "json"], blocks
    names = ["csv", "tap", "record", "config", "received"]
    return dict(zip(names, [text for _, text in blocks], strict=True))


def test_the_readme_french_export_loads_as_written(tmp_path: Path) -> None:
    blocks = french_blocks()
    record = json.loads(blocks["record"])
    # tap-csv's own config (MeltanoLabs' variant: one `files` entry per stream) reads the
    # CSV as shown, into the stream the target's stream maps name, keyed as they say
    [tap] = yaml.safe_load(blocks["tap"])  # an entry of meltano.yml's extractors
    assert (tap["name"], tap["variant"]) == ("tap-csv", "meltanolabs")
    [source] = tap["config"]["files"]
    # the record is the CSV row as tap-csv reads it: every column a string
    rows = csv.DictReader(io.StringIO(blocks["csv"]), delimiter=source["delimiter"])
    assert list(rows) == [record]
    config = yaml.safe_load(blocks["config"])
    stream = next(iter(config["stream_maps"]))
    assert source["entity"] == stream
    assert source["keys"] == ["numero"]
    assert config["stream_maps"][stream]["externalId"] == source["keys"][0]
    messages = [
        {
            "type": "SCHEMA",
            "stream": stream,
            "schema": {
                "type": "object",
                "properties": {name: {"type": ["string", "null"]} for name in record},
            },
            "key_properties": ["numero"],
        },
        {"type": "RECORD", "stream": stream, "record": record},
        {"type": "STATE", "value": {"bookmarks": {stream: {"line": 1}}}},
    ]

    with StandIn(api_key=API_KEY) as leanpay:
        config.update(api_key=API_KEY, api_url=leanpay.url)
        (tmp_path / "target.json").write_text(json.dumps(config))
        result = run_target(tmp_path / "target.json", messages)
        posts = [(r["method"], r["path"], r["body"]) for r in leanpay.requests()]

    assert result.returncode == 0, result.stderr[-2000:]
    assert result.states == [{"bookmarks": {stream: {"line": 1}}}]
    received = json.loads(blocks["received"])
    assert posts[-1] == ("POST", "/invoices/batch", {"invoices": [received]})
    assert [p[0] for p in posts] == ["GET", "POST"]  # replay safety's listing, one batch
    assert list(posts[-1][2]["invoices"][0]) == list(received)  # Leanpay's field order
    assert list(received.items()) == [
        ("clientId", config["client_ids"]["C-017"]),
        ("reference", "FA-2024-0412"),
        ("amount", 123450),
        ("netAmount", 102875),
        ("issueDate", "2024-04-05"),
        ("dueDate", "2024-05-05"),
        ("externalId", "FA-2024-0412"),
    ]
