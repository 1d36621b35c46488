"""Every private singer-sdk name target-leanpay relies on, each listed once with why, and
checked in the installed singer-sdk: it exists, with the kind and the parameters the target
uses. singer-sdk may rename or reshape these in any release (`~=0.54.9` in pyproject.toml):
an upgrade that does fails here, naming the name, instead of somewhere inside a run.

A name is listed when the target imports it, calls it, reads it or overrides it (an
override of a renamed hook is silently never called). A new one belongs in RELIED_ON.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import singer_sdk
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink

import target_leanpay


@dataclass(frozen=True)
class Private:
    """A private singer-sdk name: where it lives, what it is, what the target does with it."""

    owner: str
    """A module, or `module:Class`."""
    name: str
    kind: str
    """class, function, method, classmethod, classproperty or attribute (of an instance)."""
    parameters: str | None
    """Of a callable, as `(self, message_dict)`, with `*` before keyword-only ones."""
    why: str


RELIED_ON = [
    Private(
        "singer_sdk.helpers._classproperty",
        "classproperty",
        "class",
        None,
        "target.py declares `_env_var_config` a class property, as the SDK does",
    ),
    Private(
        "singer_sdk.configuration._dict_config",
        "parse_environment_config",
        "function",
        "(config_schema, prefix, dotenv_path)",
        "config_input.py reads TARGET_LEANPAY_* settings the SDK's way (types, lists)",
    ),
    Private(
        "singer_sdk.plugin_base:PluginBase",
        "_env_var_config",
        "classproperty",
        "(cls)",
        "overridden in target.py: settings from the environment are parsed once, by the target",
    ),
    Private(
        "singer_sdk.plugin_base:PluginBase",
        "_env_var_prefix",
        "classproperty",
        "(cls)",
        "target.py reads the TARGET_LEANPAY_ prefix the SDK derives from the name",
    ),
    Private(
        "singer_sdk.plugin_base:PluginBase",
        "_validate_config",
        "method",
        "(self, *, raise_errors)",
        "overridden in target.py: a bad config is one paragraph, not the SDK's list",
    ),
    Private(
        "singer_sdk.plugin_base:PluginBase",
        "_get_about_info",
        "classmethod",
        "(cls)",
        "target.py builds --about from it (capabilities, settings)",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_handle_termination",
        "method",
        "(self, signum, frame)",
        "overridden in target.py: SIGTERM/SIGINT write the covered STATE and exit 128+n",
    ),
    Private(
        "singer_sdk.plugin_base:BaseSingerReader",
        "_assert_line_requires",
        "method",
        "(self, message_dict, requires)",
        "target.py checks a STATE message has its `value`, as the SDK checks the others",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_process_record_message",
        "method",
        "(self, message_dict)",
        "overridden in target.py: records are routed to sinks without the SDK's drain checks",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_process_schema_message",
        "method",
        "(self, message_dict)",
        "overridden in target.py: a changed schema sends the retired sink's chunk at once",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_process_state_message",
        "method",
        "(self, message_dict)",
        "overridden in target.py: STATE goes to the checkpoints, never written ahead of data",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_process_batch_message",
        "method",
        "(self, message_dict)",
        "overridden in target.py: BATCH files are read record by record (batch_files.py)",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_process_activate_version_message",
        "method",
        "(self, message_dict)",
        "overridden in target.py: an ACTIVATE_VERSION before its SCHEMA is one paragraph",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_handle_max_record_age",
        "method",
        "(self)",
        "target.py calls it every STATS_EVERY records: the SDK's periodic drain, kept",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_sinks_active",
        "attribute",
        None,
        "target.py finds a stream's sink in it (dict: stream name -> sink)",
    ),
    Private(
        "singer_sdk.target_base:Target",
        "_sinks_to_clear",
        "attribute",
        None,
        "target.py sends the chunks of retired sinks from it (list of sinks)",
    ),
    Private(
        "singer_sdk.sinks.core:Sink",
        "_validator",
        "attribute",
        None,
        "sinks.py validates each record with it (None when validation is off)",
    ),
]


def resolve(owner: str) -> Any:
    module, _, cls = owner.partition(":")
    found = importlib.import_module(module)
    return getattr(found, cls) if cls else found


def parameters(function: Any) -> str:
    """`(self, *, raise_errors)`: names and where keyword-only ones begin."""
    shown: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.KEYWORD_ONLY and "*" not in shown:
            shown.append("*")
        shown.append(parameter.name)
    return f"({', '.join(shown)})"


def kind_of(owner: Any, name: str) -> tuple[str, Any]:
    """What the SDK defines under `name`, and the function behind it (if callable)."""
    raw = inspect.getattr_static(owner, name)
    if type(raw).__name__ == "classproperty":
        return "classproperty", raw.fget
    if isinstance(raw, classmethod):
        return "classmethod", raw.__func__
    if inspect.isclass(raw):
        return "class", None
    if inspect.isfunction(raw):
        return ("method" if inspect.isclass(owner) else "function"), raw
    return type(raw).__name__, None


class _Sink(BatchSink):
    def process_batch(self, context: dict[str, Any]) -> None:
        """Nothing to send: the sink exists to be inspected."""


class _Target(Target):
    name = "bare"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = _Sink


def instance_attributes() -> dict[str, Any]:
    """The private attributes an SDK target and sink set up for themselves."""
    target = _Target(config={}, validate_config=False)
    sink = target.add_sink("s", {"type": "object", "properties": {"id": {"type": "string"}}})
    assert target._sinks_active == {"s": sink}
    assert isinstance(target._sinks_to_clear, list)
    assert callable(sink._validator.validate)  # type: ignore[union-attr]
    return {
        "_sinks_active": target._sinks_active,
        "_sinks_to_clear": target._sinks_to_clear,
        "_validator": sink._validator,
    }


def test_each_name_is_listed_once() -> None:
    listed = [(p.owner, p.name) for p in RELIED_ON]
    assert len(listed) == len(set(listed))


NOT_THE_SDKS = {
    "_first": "twins.py: an unused parameter of the target's own",
    "_state": "run.py: an unused parameter of the target's own",
    "_connect": "tenant_index.py: the target's own SQLite connection",
    "_key": "pg_cache.py: the target's own (host, tenant) key",
    "_schema": "pg_store.py: the target's own PostgreSQL schema name",
}
"""Names of the target's own that a private name of the SDK happens to share."""


def private_names_in(source: str) -> set[str]:
    """Names (not strings, not comments) with one leading underscore."""
    return {
        token.string
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.NAME and re.fullmatch(r"_[^_]\w*", token.string)
    }


def sdk_private_names() -> set[str]:
    """Private modules, methods and attributes singer-sdk defines (`self._x`, `def _x`)."""
    found: set[str] = set()
    for path in Path(singer_sdk.__file__).parent.rglob("*.py"):
        if re.fullmatch(r"_[^_]\w*", path.stem):
            found.add(path.stem)
        text = path.read_text()
        found.update(re.findall(r"(?:self|cls)\.(_[^_]\w*)", text))
        found.update(re.findall(r"def (_[^_]\w*)", text))
    return found


def test_the_list_holds_every_private_sdk_name_the_target_uses() -> None:
    package = Path(target_leanpay.__file__).parent
    used: set[str] = set()
    for path in package.rglob("*.py"):
        used |= private_names_in(path.read_text())
    listed = {p.name for p in RELIED_ON} | {p.owner.rpartition(".")[2] for p in RELIED_ON}
    assert (used & sdk_private_names()) - listed - set(NOT_THE_SDKS) == set()


@pytest.mark.parametrize("private", RELIED_ON, ids=lambda p: f"{p.owner}.{p.name}")
def test_the_installed_singer_sdk_still_has_it(private: Private) -> None:
    owner = resolve(private.owner)
    if private.kind == "attribute":
        assert private.name in instance_attributes(), private.why
        return
    try:
        kind, function = kind_of(owner, private.name)
    except AttributeError:
        pytest.fail(f"singer-sdk has no {private.owner}.{private.name}: {private.why}")
    assert kind == private.kind, private.why
    if private.parameters is not None:
        assert parameters(function) == private.parameters, private.why
