"""Issue 12, "A user's first hour": each defect, through the real CLI.

Every scenario asserts what a user sees (the exact stderr lines, the exit code) and what
happened (what reached the stand-in, which files exist): a misspelled setting, a broken
config file, credentials in api_url, a key no header can carry, an early signal, a closed
stdout, a record no UTF-8 JSON can carry, a dry run's wording, rejections, --about.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    API_KEY,
    CLIENT_ID,
    STREAM,
    Result,
    batch_posts,
    emitted,
    invoice,
    invoices_with_state,
    run_target,
    schema,
    singer_input,
    start_target,
    state,
    target_config,
    wait_for,
)

from leanpay_standin import StandIn

LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (\w+) +\| [\w.-]+ +\| ")
SECRET = "lp_live_SECRET_9f3c2a7e51b84d06"


def lines(stderr: str, level: str) -> list[str]:
    """The messages of one level, without the timestamp and logger columns."""
    found = []
    for line in stderr.splitlines():
        match = LOG_PREFIX.match(line)
        if match and match.group(1) == level:
            found.append(line[match.end() :])
    return found


def run_cli(
    args: Sequence[str],
    messages: Sequence[dict[str, Any] | str] = (),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """The CLI with any arguments and extra environment variables."""
    done = subprocess.run(
        [sys.executable, "-m", "target_leanpay", *args],
        input=singer_input(messages),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error", **(env or {})},
        cwd=cwd,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr, 0.0)


def write_json(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config))
    return path


# -- 1. a misspelled setting ---------------------------------------------------------


def test_a_misspelled_setting_is_refused_and_nothing_is_sent_or_written(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "out" / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, amount_units="major", dead_letter_path=str(dead))

    result = run_target(config, [schema(), invoice(1, amount="1500"), state(1)])

    assert result.returncode == 1
    assert lines(result.stderr, "ERROR") == [
        "Invalid setting: 'amount_units' is not a target-leanpay setting; did you mean amount_unit?"
    ]
    assert leanpay.requests() == []
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()
    assert "Traceback" not in result.stderr


def test_a_misspelled_setting_in_a_dry_run_writes_no_file(tmp_path: Path) -> None:
    out = tmp_path / "dry" / "requests.jsonl"
    config = target_config(None, tmp_path, dry_run=True, dry_run_path=str(out), apikey="k")

    result = run_target(config, invoices_with_state(3))

    assert result.returncode == 1
    assert lines(result.stderr, "ERROR") == [
        "Invalid setting: 'apikey' is not a target-leanpay setting; did you mean api_key?"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "dry").exists()


def test_every_problem_of_the_config_is_listed_at_once(leanpay: StandIn, tmp_path: Path) -> None:
    config = target_config(
        leanpay,
        tmp_path,
        apikey=SECRET,
        batch_size=50,
        max_retries="five",
        amount_unit="cents",
        api_url="http://api.leanpay.fr/v1/public",
        api_key=None,
    )

    result = run_target(config, invoices_with_state(3))

    assert result.returncode == 1
    assert lines(result.stderr, "ERROR") == [
        "Invalid setting: 'apikey' is not a target-leanpay setting; did you mean api_key?",
        "Invalid setting: 'batch_size' is not a target-leanpay setting; "
        "did you mean batch_size_rows?",
        "Invalid setting: config['max_retries']: 'five' is not of type 'integer', 'null'",
        "Invalid setting: config['amount_unit']: 'cents' is not one of ['minor', 'major']",
        "Invalid setting: api_key is required unless dry_run is on "
        "(set dry_run: true to send nothing)",
        "Invalid setting: api_url 'http://api.leanpay.fr/v1/public' must be https:// "
        "(plain http:// only for localhost / 127.0.0.1)",
    ]
    assert SECRET not in result.stderr
    assert leanpay.requests() == []


MELTANO_CONFIG = {
    # The keys `meltano run tap-jsonl target-leanpay` wrote to the loader's config file
    # with this repository's meltano.yml (every declared setting that has a value, plus
    # the `config:` block's stream_maps); Meltano adds none of its own.
    "api_url": "https://api.leanpay.fr/v1/public",
    "request_timeout": 60,
    "max_retries": 5,
    "max_retry_wait": 60,
    "batch_size_rows": 100,
    "max_in_flight": 4,
    "amount_unit": "major",
    "client_ids_file": "samples/clients.csv",
    "dead_letter_path": "output/dead-letter.jsonl",
    "dry_run": False,
    "dry_run_path": "leanpay-dry-run.jsonl",
    "replay_safety": True,
    "require_external_id": False,
    "validate_records": False,
    "stream_maps": {"erp_invoices": {"__else__": "__NULL__"}},
}


def test_the_config_meltano_writes_and_the_sdks_own_settings_are_accepted(
    leanpay: StandIn, tmp_path: Path
) -> None:
    clients = tmp_path / "clients.csv"
    clients.write_text(f"externalId,id\nC-1,{CLIENT_ID}\n")
    config = target_config(
        leanpay,
        tmp_path,
        **{
            **MELTANO_CONFIG,
            "api_url": leanpay.url,
            "client_ids_file": str(clients),
            "dead_letter_path": str(tmp_path / "rejected.jsonl"),
            "stream_map_config": {},
            "faker_config": {},
            "flattening_enabled": False,
            "flattening_max_depth": 1,
            "flattening_max_key_length": 60,
            "flattening_separator": "__",
        },
    )

    result = run_target(config, [schema(), invoice(1, amount="15.00"), state(1)])

    assert result.returncode == 0, result.stderr
    assert [p["body"]["invoices"][0]["amount"] for p in batch_posts(leanpay)] == [1500]


# -- 2. config-file problems ---------------------------------------------------------


CONFIG_FILE_PROBLEMS = {
    "missing": (None, "was not found"),
    "trailing comma": (
        b'{"api_key": "' + SECRET.encode() + b'",\n "amount_unit": "major",\n}\n',
        "is not valid JSON: ",
    ),
    "not an object": (b'["api_key"]', "must hold a JSON object of settings ({...}), not an array"),
    "not UTF-8": (b'{"api_key": "\xff\xfe"}', "is not UTF-8 text"),
    "empty": (b"", "is empty; it must hold a JSON object of settings"),
    "a folder": ("folder", "is a folder, not a file"),
}


@pytest.mark.parametrize("case", list(CONFIG_FILE_PROBLEMS))
def test_a_config_file_problem_is_one_line_naming_the_file(
    leanpay: StandIn, tmp_path: Path, case: str
) -> None:
    content, problem = CONFIG_FILE_PROBLEMS[case]
    path = tmp_path / "target.json"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)

    result = run_cli(["--config", str(path)], invoices_with_state(1))

    assert result.returncode == 1
    [error] = lines(result.stderr, "ERROR")
    assert error.startswith(f"Config file {str(path)!r} {problem}"), error
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 2  # the version line, the problem
    assert SECRET not in result.stderr
    assert result.stdout == ""
    assert leanpay.requests() == []


def test_a_trailing_comma_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "target.json"
    path.write_text('{\n  "api_key": "k",\n  "dry_run": true,\n}\n')

    result = run_cli(["--config", str(path)])

    [error] = lines(result.stderr, "ERROR")
    # Python 3.13 points at the comma ("Illegal trailing comma"), 3.11 and 3.12 at the brace
    assert error.endswith(("(line 3, column 18)", "(line 4, column 1)")), error


def test_every_unreadable_config_file_is_named(tmp_path: Path) -> None:
    good = write_json(tmp_path / "good.json", {"dry_run": True})

    result = run_cli(["--config", str(good), "--config", "a.json", "--config", "b.json"])

    assert result.returncode == 1
    assert lines(result.stderr, "ERROR") == [
        "Config file 'a.json' was not found",
        "Config file 'b.json' was not found",
    ]


def test_the_env_form_names_each_variable_it_cannot_read(leanpay: StandIn, tmp_path: Path) -> None:
    env = {
        "TARGET_LEANPAY_API_KEY": SECRET,
        "TARGET_LEANPAY_API_URL": leanpay.url,
        "TARGET_LEANPAY_MAX_RETRIES": "five",
        "TARGET_LEANPAY_CLIENT_IDS": "{C-1: x}",
        "TARGET_LEANPAY_DRY_RUN": "ture",
        "TARGET_LEANPAY_AMOUNT_UNITS": "major",
        # what Meltano itself sets for a loader: never a problem
        "TARGET_LEANPAY__DIALECT": "target_leanpay",
        "TARGET_LEANPAY_STREAM_MAPS_ERP_INVOICES_AMOUNT": "total",
        "TARGET_LEANPAY_LOGLEVEL": "INFO",
    }

    result = run_cli(["--config", "ENV"], invoices_with_state(1), env, cwd=tmp_path)

    assert result.returncode == 1
    assert lines(result.stderr, "ERROR") == [
        "Invalid setting: Environment variable TARGET_LEANPAY_MAX_RETRIES: "
        "'five' is not an integer",
        "Invalid setting: Environment variable TARGET_LEANPAY_CLIENT_IDS: is not valid JSON "
        "(Expecting property name enclosed in double quotes)",
        "Invalid setting: Environment variable TARGET_LEANPAY_DRY_RUN: 'ture' is not true or false",
        "Invalid setting: Environment variable TARGET_LEANPAY_AMOUNT_UNITS is not a "
        "target-leanpay setting; did you mean TARGET_LEANPAY_AMOUNT_UNIT?",
    ]
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr
    assert leanpay.requests() == []


# -- 3 / 9. secrets in the config ----------------------------------------------------


def meltano_log_config(tmp_path: Path) -> dict[str, str]:
    """What `meltano run` sets for a plugin with the structured-logging capability."""
    path = tmp_path / "logging.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": True,
                "formatters": {
                    "singer_formatter": {"()": "singer_sdk.logging.StructuredFormatter"}
                },
                "handlers": {
                    "console": {
                        "class": "logging.StreamHandler",
                        "formatter": "singer_formatter",
                        "stream": "ext://sys.stderr",
                    }
                },
                "root": {"handlers": ["console"], "level": "INFO"},
            }
        )
    )
    return {"SINGER_SDK_LOG_CONFIG": str(path)}


@pytest.mark.parametrize("json_logs", [False, True], ids=["console", "meltano-json"])
@pytest.mark.parametrize("local", [True, False], ids=["local", "remote"])
def test_credentials_in_api_url_are_refused_and_masked(
    leanpay: StandIn, tmp_path: Path, json_logs: bool, local: bool
) -> None:
    host = leanpay.url.split("://", 1)[1] if local else "example.com/v1/public"
    url = f"http://leanpay:{SECRET}@{host}"
    config = write_json(tmp_path / "target.json", {"api_key": API_KEY, "api_url": url})

    result = run_cli(
        ["--config", str(config)],
        invoices_with_state(3),
        meltano_log_config(tmp_path) if json_logs else None,
    )

    assert result.returncode == 1
    assert SECRET not in result.stderr and SECRET[8:20] not in result.stderr
    shown = f"http://********@{host}"
    expected = (
        f"Invalid setting: api_url {shown!r} holds credentials (the part before '@'); "
        "Leanpay reads the key only from api_key: remove them from the URL"
    )
    if json_logs:
        errors = [
            r["message"]
            for r in map(json.loads, result.stderr.splitlines())
            if r["level"] == "error"
        ]
    else:
        errors = lines(result.stderr, "ERROR")
    assert errors == [expected]
    assert leanpay.requests() == []  # the credentials never replaced the key


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (SECRET[:12] + "\u20ac" + SECRET[12:], "holds a character an HTTP header cannot carry"),
        (SECRET[:12] + " " + SECRET[12:], "contains spaces or control characters"),
    ],
    ids=["non-latin-1", "space"],
)
def test_a_key_no_http_header_can_carry_is_a_settings_error(
    leanpay: StandIn, tmp_path: Path, key: str, problem: str
) -> None:
    config = target_config(leanpay, tmp_path, api_key=key)

    result = run_target(config, invoices_with_state(3))

    assert result.returncode == 1
    [error] = lines(result.stderr, "ERROR")
    assert error.startswith(f"Invalid setting: api_key {problem}")
    assert SECRET[12:] not in result.stderr and SECRET[:12] not in result.stderr
    assert "Traceback" not in result.stderr
    assert leanpay.requests() == []


# -- 9. an early signal, a closed stdout, a lone surrogate ----------------------------


def catches(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (Linux: /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)


THIRD_PARTY_LIBRARY = re.compile(r"(site|dist)-packages/\S+\.so\b")


def importing_libraries(pid: int) -> bool:
    """Whether process `pid` has begun loading compiled third-party modules (the imports
    of singer-sdk, jsonschema, msgspec: the heavy part of the start-up)."""
    try:
        return THIRD_PARTY_LIBRARY.search(Path(f"/proc/{pid}/maps").read_text()) is not None
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_imports_exits_128_plus_signal_quietly(
    leanpay: StandIn, tmp_path: Path, signum: int
) -> None:
    process = start_target(target_config(leanpay, tmp_path))
    wait_for(lambda: importing_libraries(process.pid), interval=0.0005)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 128 + signum, stderr
    assert stderr == ""
    assert stdout == ""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_starting_exits_128_plus_signal_without_a_traceback(
    leanpay: StandIn, tmp_path: Path, signum: int, delay: float
) -> None:
    process = start_target(target_config(leanpay, tmp_path))
    # SIGTERM is caught only once target-leanpay's own code runs (Python catches SIGINT
    # from the start): from then on, any moment of the start-up ends the same way.
    wait_for(lambda: catches(process.pid, signal.SIGTERM), interval=0.0005)
    time.sleep(delay)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert lines(stderr, "ERROR") == []
    assert stdout == ""


def test_a_closed_stdout_is_one_line_and_a_nonzero_exit(leanpay: StandIn, tmp_path: Path) -> None:
    # `target-leanpay ... | head -c 10` once head has exited: the STATE write fails
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "target_leanpay",
                "--config",
                str(target_config(leanpay, tmp_path)),
            ],
            input=singer_input(invoices_with_state(10)),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)

    assert done.returncode == 1
    assert lines(done.stderr, "ERROR") == [
        "stdout was closed by the program reading it, so STATE can no longer be written; "
        "the run stops. Records Leanpay acknowledged stay loaded; run the tap again from "
        "its last saved STATE (replay safety skips what is already loaded)."
    ]
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert len(leanpay.store("invoices")) == 10


SURROGATE = "x\ud800y"


def test_a_lone_surrogate_is_one_rejected_record_set_aside(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, dead_letter_path=str(dead))
    tap_state = {"bookmarks": {STREAM: {"emitted": 3, "cursor": SURROGATE}}}
    messages = [
        schema(),
        invoice(1),
        invoice(2, reference=SURROGATE),
        invoice(3),
        {"type": "STATE", "value": tap_state},
    ]
    assert '"x\\ud800y"' in singer_input(messages)  # what a tap using Python's json writes

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert [i["externalId"] for i in leanpay.store("invoices")] == ["INV-00001", "INV-00003"]
    text = dead.read_bytes().decode("utf-8")  # valid UTF-8
    [line] = [json.loads(row) for row in text.splitlines()]
    assert line["record"]["reference"] == SURROGATE
    assert line["reasons"] == [
        {
            "field": "reference",
            "reason": "holds a lone UTF-16 surrogate, which is not text and cannot be sent "
            "('x\\ud800y')",
        }
    ]
    assert result.states == [tap_state]  # written back exactly, with the escape
    assert lines(result.stderr, "ERROR") == []


def test_a_lone_surrogate_without_a_dead_letter_file_is_a_record_rejection(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path)

    result = run_target(config, [schema(), invoice(1, externalId=SURROGATE), state(1)])

    assert result.returncode == 1
    [error] = lines(result.stderr, "ERROR")
    assert error.startswith(
        "Rejected stream 'public-invoices', record externalId 'x\\ud800y' (input line 2): "
        "externalId: holds a lone UTF-16 surrogate"
    ), error
    assert "not valid JSON" not in result.stderr
    assert batch_posts(leanpay) == []


# -- 5. a dry run says what it did ------------------------------------------------------


def test_a_dry_runs_log_says_what_it_did(tmp_path: Path) -> None:
    out = tmp_path / "dry.jsonl"
    dead = tmp_path / "rejected.jsonl"
    messages = invoices_with_state(150, every=50)
    messages.insert(2, invoice(900, amount=-1))  # rejected
    messages.insert(-1, invoice(5))  # a repeat, after the first request was written
    config = target_config(
        None, tmp_path, dry_run=True, dry_run_path=str(out), dead_letter_path=str(dead)
    )

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    logged = [m for level in ("INFO", "WARNING") for m in lines(result.stderr, level)]
    assert (
        "Dry run: replay safety assumes an empty tenant for invoices (nothing is read "
        "from Leanpay)" in logged
    )
    # whether the repeat is noted depends on a race (it waits for its twin's answer, or
    # finds the twin already written); when it is, the note speaks of the dry run
    notes = [m for m in logged if "INV-00005" in m]
    assert notes in (
        [],
        [
            "stream 'public-invoices': records repeating the externalId of an earlier record "
            "would not be sent again (first: externalId 'INV-00005' (input line 155))"
        ],
    )
    [summary] = [m for m in logged if m.startswith("Summary (dry run)")]
    assert summary.startswith(
        "Summary (dry run): stream 'public-invoices' -> invoices: 152 records read, "
        "150 would be sent in 2 requests, 1 not sent (already in Leanpay, or repeating an "
        "earlier record's externalId), 1 rejected, "
    ), summary
    assert (
        f"Dry run: 2 requests written to {out}; nothing was sent to Leanpay and no STATE "
        "is written" in logged
    )
    for claim in ("acknowledged", "listed", "list request", "already present", "already holds"):
        assert claim not in result.stderr
    assert result.stderr.count("STATE") == 1  # "no STATE is written", nothing else
    assert result.stdout == ""


def test_a_dry_run_stopped_by_a_rejection_does_not_speak_of_state(tmp_path: Path) -> None:
    out = tmp_path / "dry.jsonl"
    messages = invoices_with_state(3)
    messages.insert(2, invoice(9, amount=-1))
    config = target_config(None, tmp_path, dry_run=True, dry_run_path=str(out))

    result = run_target(config, messages)

    assert result.returncode == 1
    assert lines(result.stderr, "ERROR") == [
        "Rejected stream 'public-invoices', record externalId 'INV-00009' (input line 3): "
        "amount: must be >= 0, got -1. A real run would not send it either. Fix the record, "
        "or set dead_letter_path to set such records aside and load the rest."
    ]
    assert "STATE" not in result.stderr


# -- 6. rejections are visible -----------------------------------------------------------


def test_each_rejection_is_a_warning_up_to_a_cap_and_the_summary_names_the_file(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    messages: list[dict[str, Any]] = [schema()]
    messages += [invoice(i, amount=-1, dueDate="2024-02-30") for i in range(25)]
    messages += [invoice(100), state(26)]
    config = target_config(leanpay, tmp_path, dead_letter_path=str(dead))

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    warnings = lines(result.stderr, "WARNING")
    assert warnings == [
        *(
            f"Rejected stream 'public-invoices', record externalId 'INV-{i:05d}' "
            f"(input line {i + 2}): amount: must be >= 0, got -1 (and 1 more problem); "
            f"set aside in {dead}"
            for i in range(20)
        ),
        f"… 5 more rejected records, all in {dead}",
        f"Summary: 25 rejected records set aside in the dead-letter file {dead}",
    ]
    assert len(dead.read_text().splitlines()) == 25
    assert emitted(result.states) == [26]


# -- 7. api_key: required unless dry_run is on -------------------------------------------


@pytest.mark.parametrize("about_format", ["text", "json", "markdown"])
def test_about_says_api_key_is_required_unless_dry_run_is_on(about_format: str) -> None:
    args = ["--about"] + ([] if about_format == "text" else ["--format", about_format])

    result = run_cli(args)

    assert result.returncode == 0, result.stderr
    if about_format == "json":
        settings = json.loads(result.stdout)["settings"]["properties"]
        assert settings["api_key"]["description"].endswith("Required unless dry_run is on.")
    elif about_format == "markdown":
        assert (
            "| api_key | Required unless dry_run is on | None | Leanpay API key, sent as-is in "
            "the Authorization header. Required unless dry_run is on. |" in result.stdout
        )
    else:
        assert (
            "  api_key (string; required unless dry_run is on; default none; "
            "TARGET_LEANPAY_API_KEY)" in result.stdout.splitlines()
        )


def test_a_real_run_without_api_key_says_when_it_is_required(tmp_path: Path) -> None:
    config = target_config(None, tmp_path, api_url="http://127.0.0.1:9/v1/public")

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    assert lines(result.stderr, "ERROR") == [
        "Invalid setting: api_key is required unless dry_run is on "
        "(set dry_run: true to send nothing)"
    ]


# -- 8. smaller ones ---------------------------------------------------------------------


def test_a_connection_failure_names_the_host(tmp_path: Path) -> None:
    config = target_config(
        None, tmp_path, api_key=SECRET, api_url="http://127.0.0.1:9/v1/public", max_retries=0
    )

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    [error] = lines(result.stderr, "ERROR")
    assert error.startswith("GET /invoices"), error
    assert "could not connect to 127.0.0.1:9 ([Errno 111] Connection refused)" in error, error
    assert SECRET not in result.stderr


def test_counts_of_one_are_singular(leanpay: StandIn, tmp_path: Path) -> None:
    result = run_target(target_config(leanpay, tmp_path), invoices_with_state(1))

    assert result.returncode == 0, result.stderr
    [summary] = [m for m in lines(result.stderr, "INFO") if m.startswith("Summary")]
    assert summary.startswith(
        "Summary: stream 'public-invoices' -> invoices: 1 record read, 1 acknowledged, "
        "0 already present, 0 rejected, 1 request, 0 retries, "
    ), summary


def test_help_says_what_the_target_does() -> None:
    result = run_cli(["--help"])

    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Execute the Singer target." not in text
    assert (
        "Load receivables into Leanpay from a Singer tap's output on stdin: invoices by "
        "default, or credit notes, paybacks, links, misc operations and addresses "
        "(stream_resources)." in text
    )


def test_plain_about_lists_each_setting_with_its_default_and_description() -> None:
    result = run_cli(["--about"])

    assert result.returncode == 0
    text = result.stdout.splitlines()
    start = text.index(
        '  api_url (string; default "https://api.leanpay.fr/v1/public"; TARGET_LEANPAY_API_URL)'
    )
    assert text[start + 1 : start + 3] == [
        "      Base URL of the Leanpay public API. Plain http:// is accepted only for localhost /",
        "      127.0.0.1 (a local stand-in).",
    ]
    assert "  request_timeout (number; default 60; TARGET_LEANPAY_REQUEST_TIMEOUT)" in text
    assert (
        '  amount_unit (string: minor | major; default "minor"; TARGET_LEANPAY_AMOUNT_UNIT)' in text
    )
