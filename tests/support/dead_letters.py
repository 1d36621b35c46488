"""The dead-letter file as a test reads it: its lines, parsed, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RUN_FILE = "dead.jsonl"
"""The file name the tests' configs give `dead_letter_path` in a test's tmp_path."""


def dead_letters(path: Path) -> list[dict[str, Any]]:
    """Every line of the dead-letter file `path` (or of `path/dead.jsonl` when `path` is a
    test's folder), none if no file was written."""
    if path.is_dir():
        path = path / RUN_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
