"""Where settings come from: `--config` files and, with `--config ENV`, the environment.

singer-sdk reads `--config` files in its click callback, before the target can catch
anything: a missing file or a trailing comma ends in a traceback. Here each file problem
is one line naming the file, and each environment variable that cannot be read is one
line naming the variable, so that they can all be reported at once. No value is ever
quoted (a config's values include the API key).

A number setting written as a string (`"request_timeout": "7.5"`) is read as that number:
the Meltano plugin definition declares such settings of kind `string` (Meltano 4.4.1
crashes on its `decimal` kind set from a variable), so Meltano writes them so.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from singer_sdk.configuration._dict_config import parse_environment_config

from target_leanpay.config.settings import KNOWN, SCHEMA, closest
from target_leanpay.leanpay.errors import quote

ENV = "ENV"
"""The `--config` value that reads settings from TARGET_LEANPAY_* variables."""

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})


@dataclass
class ConfigSources:
    """The settings read from `--config` arguments (or the environment), and why some
    could not be read."""

    values: dict[str, Any] = field(default_factory=dict)
    parse_env: bool = False
    problems: list[str] = field(default_factory=list)


def read_config_args(args: Iterable[str]) -> ConfigSources:
    """Merge the config files in order (later files win); note `ENV`, and every problem."""
    sources = ConfigSources()
    for arg in args:
        if arg == ENV:
            sources.parse_env = True
            continue
        try:
            sources.values.update(read_config_file(arg))
        except ValueError as problem:
            sources.problems.append(str(problem))
    return sources


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_config_file(path: str) -> dict[str, Any]:
    """A config file's object; `ValueError` names the file and its problem in one line."""
    where = f"Config file {quote(repr(path), 200)}"
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{where} was not found") from None
    except IsADirectoryError:
        raise ValueError(f"{where} is a folder, not a file") from None
    except OSError as exc:
        raise ValueError(f"{where} cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{where} is not UTF-8 text") from None
    if not text.strip():
        raise ValueError(f"{where} is empty; it must hold a JSON object of settings")
    try:
        data = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:  # NaN / Infinity, or a number too long to read
        raise ValueError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{where} must hold a JSON object of settings ({{...}}), not {_json_kind(data)}"
        )
    return {name: _number_from_string(name, value) for name, value in data.items()}


def _number_from_string(name: str, value: Any) -> Any:
    """A number setting's string (`"7.5"`) as its Decimal; anything else as it is (a string
    that holds no number is then refused by `settings.parse`, naming the setting)."""
    spec = SCHEMA["properties"].get(name, {})
    if isinstance(value, str) and "number" in _types(spec):
        with contextlib.suppress(ValueError):
            return _convert(value, spec)
    return value


def _types(spec: Mapping[str, Any]) -> list[str]:
    types = spec.get("type", [])
    return [types] if isinstance(types, str) else list(types)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def read_environment(prefix: str) -> ConfigSources:
    """Read every setting's variable (`<prefix><NAME>`), converted to the setting's type.

    The raw strings come from the SDK's own reader, so that its .env file support and its
    "Parsing ... from env variable" log lines stay as they are; it is handed a schema in
    which every setting is a string, because its own conversions raise tracebacks
    (`int('five')`, a JSON object that is not JSON). singer-sdk is pinned to 0.54, whose
    private `parse_environment_config` this relies on (tests/test_e2e_first_hour.py).
    """
    as_strings = {"properties": {name: {"type": "string"} for name in SCHEMA["properties"]}}
    raw: Mapping[str, str] = parse_environment_config(as_strings, prefix)
    found = ConfigSources()
    for name, text in raw.items():
        variable = prefix + name.upper()
        try:
            found.values[name] = _convert(text, SCHEMA["properties"][name])
        except ValueError as problem:
            found.problems.append(f"Environment variable {variable}: {problem}")
    found.problems += _unknown_variables(prefix, os.environ)
    return found


def _convert(text: str, spec: Mapping[str, Any]) -> Any:
    """An environment string as the setting's JSON type; `ValueError` says why not."""
    types = _types(spec)
    shown = quote(repr(text), 60)
    if "integer" in types:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"{shown} is not an integer") from None
    if "number" in types:
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            raise ValueError(f"{shown} is not a number") from None
        if not number.is_finite():
            raise ValueError(f"{shown} is not a finite number")
        return number
    if "boolean" in types:
        word = text.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError(f"{shown} is not true or false")
    if "object" in types or "array" in types:
        try:
            return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        except ValueError as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise ValueError(f"is not valid JSON ({message})") from None
    return text


def _unknown_variables(prefix: str, environ: Mapping[str, str]) -> list[str]:
    """TARGET_LEANPAY_* variables that name no setting (a typo would be silently ignored).

    Left alone: Meltano's own (`TARGET_LEANPAY__DIALECT`, ...), the SDK's log level
    (`TARGET_LEANPAY_LOGLEVEL`), what the plugin definition installs
    (`TARGET_LEANPAY_PIP_URL`), and the parts of an object setting that Meltano writes
    one variable per key (`TARGET_LEANPAY_STREAM_MAPS_<STREAM>_<FIELD>`).
    """
    objects = [
        name.upper() + "_"
        for name, spec in SCHEMA["properties"].items()
        if "object" in str(spec.get("type"))
    ]
    problems = []
    for variable in sorted(environ):
        if not variable.startswith(prefix):
            continue
        suffix = variable[len(prefix) :]
        if (
            suffix.startswith("_")
            or suffix in {"LOGLEVEL", "PIP_URL"}
            or suffix.lower() in KNOWN
            or any(suffix.startswith(o) for o in objects)
        ):
            continue
        guess = closest(suffix)
        hint = f"; did you mean {prefix}{guess.upper()}?" if guess else ""
        problems.append(
            f"Environment variable {quote(variable, 80)} is not a target-leanpay setting{hint}"
        )
    return problems
