"""`--about` as text and Markdown: every setting with its default, when it is required,
and its description (the SDK's text lists only names and types, and its Markdown calls
api_key "not required")."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from singer_sdk.about import AboutFormatter, AboutInfo

from target_leanpay.config.settings import REQUIRED_UNLESS_DRY_RUN

WIDTH = 88
REQUIRED_UNLESS = {"api_key": REQUIRED_UNLESS_DRY_RUN.rstrip(".")}
"""Settings required in some configurations, and when (the schema cannot say it)."""


def _type(spec: dict[str, Any]) -> str:
    types = spec.get("type")
    if types is None and "anyOf" in spec:
        return "object"
    names = [types] if isinstance(types, str) else [t for t in types or [] if t != "null"]
    kind = " or ".join(names) or "any"
    if "enum" in spec:
        kind += ": " + " | ".join(str(v) for v in spec["enum"] if v is not None)
    return kind


def render_text(info: AboutInfo) -> str:
    """The plain `--about`: header, capabilities, then each setting with what it means."""
    lines = [
        f"Name: {info.name}",
        f"Description: {info.description}",
        f"Version: {info.version}",
        f"SDK Version: {info.sdk_version}",
    ]
    if info.supported_python_versions:
        lines.append("Supported Python Versions: " + ", ".join(info.supported_python_versions))
    lines.append("Capabilities: " + ", ".join(str(c.value) for c in info.capabilities))
    lines.append("Settings (in the --config file, or as environment variables with --config ENV):")
    for name, spec in info.settings.get("properties", {}).items():
        default = json.dumps(spec["default"]) if "default" in spec else "none"
        facts = [_type(spec), f"default {default}"]
        if name in REQUIRED_UNLESS:
            facts.insert(1, REQUIRED_UNLESS[name].lower())
        facts.append(info.env_var_prefix + name.upper())
        lines.append(f"  {name} ({'; '.join(facts)})")
        description = " ".join(str(spec.get("description", "")).split())
        lines += textwrap.wrap(
            description, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6
        )
    return "\n".join(lines)


def render_markdown(info: AboutInfo) -> str:
    """The SDK's Markdown, with api_key's "Required" cell saying when it is."""
    text = AboutFormatter.get_formatter("markdown").format_about(info)
    for name, when in REQUIRED_UNLESS.items():
        row = f"| {name} | False |"
        if row not in text:  # the SDK changed its table: fail loudly rather than mislead
            raise RuntimeError(f"--about markdown: no row {row!r} to mark as required")
        text = text.replace(row, f"| {name} | {when} |")
    return text
