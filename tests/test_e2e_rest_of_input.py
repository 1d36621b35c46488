"""A failed run reads the rest of its input before exiting 1 (`rest_of_input`): the tap
piped into it finishes instead of dying of a broken pipe, so the target's line is the
only failure a user sees (tests/test_readme_meltano.py shows the same under `meltano run`).
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    Running,
    batch_posts,
    invoice,
    schema,
    singer_input,
    target_command,
    target_config,
    wait_for,
)

from leanpay_standin import StandIn

RECORDS = 20_000  # ~4 MB: far more than a pipe holds once the target has stopped reading
TAP = f"""
import json, sys
lines = [{json.dumps(json.dumps(schema()))}]
lines += [json.dumps(r) for r in {json.dumps([invoice(i) for i in range(3)])}]
out = sys.stdout
for line in lines:
    out.write(line + "\\n")
for i in range(3, {RECORDS}):
    out.write(lines[1].replace("INV-00000", f"INV-{{i:05d}}") + "\\n")
out.flush()
print("tap: all records written", file=sys.stderr)
"""


def tap_into_target(config: Path) -> tuple[subprocess.CompletedProcess[str], int, str]:
    """`tap | target-leanpay`: the target's result, the tap's exit code and stderr."""
    with subprocess.Popen(
        [sys.executable, "-c", TAP], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as tap:
        assert tap.stdout is not None and tap.stderr is not None
        try:
            target = subprocess.run(
                target_command(config),
                stdin=tap.stdout,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            tap.stdout.close()
        tap_stderr = tap.stderr.read()
        tap_code = tap.wait(timeout=60)
    return target, tap_code, tap_stderr


@pytest.mark.parametrize("failure", ["a refused setting", "a refused key"])
def test_a_failed_run_lets_its_tap_finish(leanpay: StandIn, tmp_path: Path, failure: str) -> None:
    if failure == "a refused setting":
        config = target_config(leanpay, tmp_path, max_in_flight=0)
        reason = "Invalid setting: max_in_flight must be greater than 0 (got 0)"
    else:
        config = target_config(leanpay, tmp_path, api_key="lp_wrong_key_000000")
        reason = "check the api_key setting"

    target, tap_code, tap_stderr = tap_into_target(config)

    assert target.returncode == 1
    assert reason in target.stderr
    assert "Traceback" not in target.stderr
    assert target.stdout == ""  # no STATE
    assert (tap_code, tap_stderr) == (0, "tap: all records written\n")  # no BrokenPipeError
    assert batch_posts(leanpay) == []


@pytest.mark.parametrize("failure", ["a refused setting", "a refused key"])
def test_a_signal_ends_the_reading_of_a_failed_run(
    leanpay: StandIn, tmp_path: Path, failure: str
) -> None:
    """The tap never ends its output here: the target reads on until a signal ends it."""
    if failure == "a refused setting":
        config = target_config(leanpay, tmp_path, max_in_flight=0)
        reason, code = "max_in_flight must be greater than 0", 128 + signal.SIGTERM
    else:
        config = target_config(leanpay, tmp_path, api_key="lp_wrong_key_000000")
        reason, code = "check the api_key setting", 1  # the run had failed before the signal
    target = Running(config)
    target.feed(singer_input([schema(), *(invoice(i) for i in range(150))]))  # a full chunk
    if failure == "a refused key":  # the listing's 401 stops the run at the next chunk
        wait_for(lambda: [r["status"] for r in leanpay.requests()] == [401])
        target.feed(singer_input([invoice(i) for i in range(150, 300)]))
    target.wait_for_stderr(reason)
    # it goes on reading (a target that exited would break this pipe: BrokenPipeError)
    target.feed(singer_input([invoice(i) for i in range(300, 300 + RECORDS)]))

    target.process.send_signal(signal.SIGTERM)

    assert target.process.wait(timeout=30) == code
    assert batch_posts(leanpay) == []


def test_a_terminal_is_not_read(tmp_path: Path) -> None:
    """Typed by hand: nothing would end the input, so the refused run exits at once."""
    config = target_config(None, tmp_path, dry_run=True, max_in_flight=0)
    controller, terminal = pty.openpty()
    try:
        refused = subprocess.run(
            target_command(config),
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert refused.returncode == 1
    assert "max_in_flight must be greater than 0" in refused.stderr
