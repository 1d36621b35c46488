"""End to end: a real singer-sdk tap in batch mode piped into the real CLI.

`tap-jsonl` (the tap of meltano.yml, SDK-based) with a `batch_config` writes gzipped
JSONL files and sends BATCH messages and STATE. Its own singer-sdk is independent of
ours, so it lives in its own virtualenv: the one `meltano install` made (`make test`),
`$TAP_JSONL`, or `.venv-tap-jsonl` in the checkout, created here if missing; the test is
skipped, saying why, where it cannot be installed.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import venv
from pathlib import Path
from typing import Any

import pytest
from conftest import batch_posts, invoice, payload, run_target, target_config

from leanpay_standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
TAP_VERSION = "tap-jsonl==0.3.1"  # as meltano.yml pins it
TAP_STREAM = "erp_invoices"


def tap_jsonl() -> str:
    """The tap-jsonl executable; installs it into `.venv-tap-jsonl` if none is found."""
    candidates = [
        os.environ.get("TAP_JSONL", ""),
        str(ROOT / ".meltano/extractors/tap-jsonl/venv/bin/tap-jsonl"),
        str(ROOT / ".venv-tap-jsonl/bin/tap-jsonl"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    home = ROOT / ".venv-tap-jsonl"
    try:
        venv.create(home, with_pip=True)
        subprocess.run(
            [str(home / "bin/python"), "-m", "pip", "install", "-q", TAP_VERSION],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"{TAP_VERSION} cannot be installed here ({exc}); set TAP_JSONL")
    return str(home / "bin/tap-jsonl")


@pytest.fixture(scope="module")
def tap() -> str:
    return tap_jsonl()


def tap_output(tap: str, tmp_path: Path, records: list[dict[str, Any]]) -> list[str]:
    """The tap's stdout lines for `records` in batch mode (gzipped JSONL, 60 a file)."""
    source = tmp_path / "invoices.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = {
        "path": str(source),
        "stream_name": TAP_STREAM,
        "primary_keys": ["externalId"],
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": (tmp_path / "batches").as_uri(), "prefix": "batch-"},
            "batch_size": 60,
        },
    }
    (tmp_path / "batches").mkdir()
    (tmp_path / "tap.json").write_text(json.dumps(config))
    done = subprocess.run(
        [tap, "--config", str(tmp_path / "tap.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    return done.stdout.splitlines()


def test_a_tap_in_batch_mode_loads_through_mapping_dead_letters_and_state(
    tap: str, leanpay: StandIn, tmp_path: Path
) -> None:
    records = [invoice(i)["record"] for i in range(250)]
    for record in records:
        del record["_sdc_extracted_at"]
    records[70]["amount"] = -1
    lines = tap_output(tap, tmp_path, records)
    messages = [json.loads(line) for line in lines]
    batches = [m for m in messages if m["type"] == "BATCH"]
    tap_states = [m["value"] for m in messages if m["type"] == "STATE"]
    # what the tap really sent: 5 gzipped files of 60, 60, 60, 60, 10 raw records
    assert [m["encoding"] for m in batches] == [{"format": "jsonl", "compression": "gzip"}] * 5
    files = [Path(m["manifest"][0].removeprefix("file://")) for m in batches]
    assert [len(gzip.decompress(f.read_bytes()).splitlines()) for f in files] == [60] * 4 + [10]
    assert not any(m["type"] == "RECORD" for m in messages)
    dead = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, [line for line in lines if line.strip()])

    assert result.returncode == 0, result.stderr
    good = [i for i in range(250) if i != 70]
    assert [(r["method"], r["path"]) for r in leanpay.requests()] == [
        ("GET", "/invoices"),
        ("POST", "/invoices/batch"),
        ("POST", "/invoices/batch"),
        ("POST", "/invoices/batch"),
    ]
    assert [p["body"] for p in batch_posts(leanpay)] == [
        {"invoices": [payload(i) for i in good[:100]]},
        {"invoices": [payload(i) for i in good[100:200]]},
        {"invoices": [payload(i) for i in good[200:]]},
    ]
    # STATE lines: the tap's own, in its order, ending with its last one
    assert result.states, result.stderr
    assert result.states[-1] == tap_states[-1]
    positions = [tap_states.index(s) for s in result.states]
    assert positions == sorted(set(positions))
    # the rejected record is named by its file and line: file 2 (records 60..119), line 11
    batch_line = 1 + lines.index(next(line for line in lines if str(files[1]) in line))
    [line] = [json.loads(text) for text in dead.read_text().splitlines()]
    assert line["record_id"] == (
        f"externalId 'INV-00070' (input line {batch_line}, file {files[1]} line 11)"
    )
    # as the tap wrote it: with its _sdc_ columns (never sent: see the payloads above)
    assert line["record"] == {
        **records[70],
        "_sdc_filename": str(tmp_path / "invoices.jsonl"),
        "_sdc_stream": TAP_STREAM,
        "_sdc_last_modified": line["record"]["_sdc_last_modified"],
    }
    assert line["reasons"] == [{"field": "amount", "reason": "must be >= 0, got -1"}]
    assert "Traceback" not in result.stderr
