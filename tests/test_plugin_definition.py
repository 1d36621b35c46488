"""target-leanpay.yml (the Meltano Hub-style plugin definition) and meltano.yml's loader
block say exactly what `target-leanpay --about --format=json` says: every setting, in the
same order, with the matching kind, label, default and description."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from singer_sdk.helpers.capabilities import FLATTENING_CONFIG, STREAM_MAPS_CONFIG

ROOT = Path(__file__).resolve().parent.parent

KINDS = {
    "string": "string",
    "integer": "integer",
    # not Meltano's `decimal`: Meltano 4.4.1 cannot write a decimal set by a variable to
    # the target's config (tests/test_readme_meltano.py); the target reads "7.5" as 7.5
    "number": "string",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}
HUB_LOADER_KEYS = {
    # schemas/plugin_definitions/loaders.schema.json of meltano/hub
    "capabilities", "name", "pip_url", "variant", "description", "executable", "repo",
    "namespace", "logo_url", "label", "settings", "docs", "settings_group_validation",
    "commands", "dialect", "target_schema", "hidden", "requires", "maintenance_status",
    "domain_url", "keywords", "definition", "next_steps", "settings_preamble", "usage",
    "prereq",
}  # fmt: skip
HUB_SETTING_KEYS = {
    # schemas/common/base_setting.schema.json of meltano/hub
    "name", "aliases", "label", "value", "placeholder", "kind", "description", "tooltip",
    "documentation", "protected", "env", "value_processor", "value_post_processor",
    "oauth", "options", "docs", "sensitive",
}  # fmt: skip


@pytest.fixture(scope="module")
def about() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "target_leanpay", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    result: dict[str, Any] = yaml.safe_load((ROOT / "target-leanpay.yml").read_text())
    return result


@pytest.fixture(scope="module")
def loader() -> dict[str, Any]:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text())
    [found] = [p for p in project["plugins"]["loaders"] if p["name"] == "target-leanpay"]
    result: dict[str, Any] = found
    return result


def words(text: str) -> str:
    return " ".join(text.split())


def expected_setting(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The Meltano setting a property of the --about schema calls for."""
    types = spec.get("type", "object")  # no type: stream_maps, an anyOf of objects
    types = [types] if isinstance(types, str) else types
    kind = KINDS[next(t for t in types if t != "null")]
    setting: dict[str, Any] = {
        "name": name,
        "kind": "options" if "enum" in spec else kind,
        "label": spec["title"],
        "description": words(spec["description"]),
    }
    if "default" in spec:
        setting["value"] = spec["default"]
    if spec.get("secret"):
        setting["sensitive"] = True
    if "enum" in spec:
        setting["options"] = [v for v in spec["enum"] if v is not None]
    return setting


def declared(setting: dict[str, Any]) -> dict[str, Any]:
    """A setting of a YAML file, in the shape of `expected_setting`."""
    result = {key: setting[key] for key in ("name", "kind", "label") if key in setting}
    result["description"] = words(setting["description"])
    for key in ("value", "sensitive"):
        if key in setting:
            result[key] = setting[key]
    if "options" in setting:
        result["options"] = [option["value"] for option in setting["options"]]
    return result


def test_every_setting_agrees_with_about(about: dict[str, Any], definition: dict[str, Any]) -> None:
    expected = [expected_setting(n, s) for n, s in about["settings"]["properties"].items()]
    assert [declared(s) for s in definition["settings"]] == expected


def test_the_plugin_itself_agrees_with_about(
    about: dict[str, Any], definition: dict[str, Any]
) -> None:
    assert definition["name"] == about["name"] == "target-leanpay"
    assert definition["executable"] == "target-leanpay"
    assert definition["namespace"] == "target_leanpay"
    # no package-index name: `target-leanpay` there is not this project's (yet)
    assert definition["pip_url"] == "${TARGET_LEANPAY_PIP_URL}"
    assert definition["capabilities"] == about["capabilities"]


def test_the_definition_has_only_what_meltano_hub_reads(definition: dict[str, Any]) -> None:
    assert set(definition) <= HUB_LOADER_KEYS
    for setting in definition["settings"]:
        assert set(setting) <= HUB_SETTING_KEYS, setting["name"]
    sensitive = [s for s in definition["settings"] if s.get("sensitive")]
    assert [s["name"] for s in sensitive] == ["api_key", "store"]  # a store URL's password
    assert {s["kind"] for s in sensitive} == {"string"}  # not the deprecated password


def test_meltano_yml_declares_the_same_loader(
    definition: dict[str, Any], loader: dict[str, Any]
) -> None:
    assert loader["settings"] == definition["settings"]
    for key in ("namespace", "executable", "capabilities"):
        assert loader[key] == definition[key]
    assert loader["pip_url"] == "-e .[postgres]"  # the clone, not the package index
    names = {s["name"] for s in definition["settings"]}
    assert set(loader["config"]) <= names


def test_the_readme_settings_table_has_every_own_setting_as_generated() -> None:
    """Each row `target-leanpay --about --format=markdown` prints for a setting of
    target-leanpay's own (not the SDK's stream-maps / flattening ones, which the README
    sums up in one row) is in the README's Settings table, word for word."""
    done = subprocess.run(
        [sys.executable, "-m", "target_leanpay", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    sdk = set(STREAM_MAPS_CONFIG["properties"]) | set(FLATTENING_CONFIG["properties"])
    rows = [
        line
        for line in done.stdout.splitlines()
        if line.startswith("| ") and line.split(" | ")[0][2:].split(".")[0] not in sdk
    ]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Settings") : readme.index("## Mapping guide")]
    assert len(rows) > 20
    assert [row for row in rows if row not in table.splitlines()] == []
