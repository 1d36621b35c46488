"""The API key never leaves the Authorization header: not in stdout, stderr, the dead-letter
file or the dry-run file, whatever happens (success, refusals, retries, an API that echoes
the header back, invalid settings, --about, settings from the environment).

Each scenario scans every output for the key and for any 10-character piece of its
distinctive part, so that a key cut in half by a length limit also counts as a leak.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    Result,
    batch_posts,
    emitted,
    invoices_with_state,
    run_target,
    singer_input,
)

from leanpay_standin import StandIn

SECRET = "lp_live_SECRET_9f3c2a7e51b84d06"
OTHER_KEY = "lp_live_OTHER_000000000000000000"
MASK = "********"
PIECES = [SECRET[8:][i : i + 10] for i in range(len(SECRET) - 8 - 9)]
"""Every 10-character piece of "SECRET_9f3c2a7e51b84d06"."""
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| ")

ECHO_BODY = {
    "statusCode": 503,
    "message": "upstream failed",
    "request": {"headers": {"authorization": SECRET, "accept": "application/json"}},
}
"""A misconfigured gateway that echoes the request headers in its error body."""


@pytest.fixture
def leanpay() -> Iterator[StandIn]:
    """A stand-in that accepts the secret key (overrides conftest's fixture)."""
    with StandIn(api_key=SECRET) as server:
        yield server


def write_config(tmp_path: Path, **settings: Any) -> Path:
    config: dict[str, Any] = {"api_key": SECRET, "max_retries": 2, "max_retry_wait": 0.1}
    config.update(settings)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def leaks(text: str) -> list[str]:
    """The pieces of the secret found in `text`."""
    return [piece for piece in PIECES if piece in text]


def assert_no_secret(result: Result, *files: Path) -> None:
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert not leaks(text), f"{name} shows the key: {leaks(text)}"
    for path in files:
        if path.exists():
            text = path.read_text(encoding="utf-8")
            assert not leaks(text), f"{path.name} shows the key: {leaks(text)}"


def assert_key_was_sent(leanpay: StandIn) -> None:
    """The scenario really used the key: it travelled in the Authorization header only."""
    sent = leanpay.requests()
    assert sent
    assert all(r["headers"]["Authorization"] == SECRET for r in sent)


def run_cli(
    args: Sequence[str],
    messages: Sequence[dict[str, Any] | str] = (),
    env: dict[str, str] | None = None,
) -> Result:
    """The CLI with any arguments and extra environment variables."""
    done = subprocess.run(
        [sys.executable, "-m", "target_leanpay", *args],
        input=singer_input(messages),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error", **(env or {})},
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr, 0.0)


def status_fault(status: int, times: int, body: Any = ECHO_BODY, **extra: Any) -> dict[str, Any]:
    return {
        "path": "/invoices/batch",
        "action": "status",
        "status": status,
        "body": body,
        "times": times,
        **extra,
    }


# -- runs against the API -------------------------------------------------------------------


def test_successful_run_with_a_rejection(leanpay: StandIn, tmp_path: Path) -> None:
    dead = tmp_path / "rejected.jsonl"
    messages = invoices_with_state(150)
    messages[5]["record"]["amount"] = -1
    config = write_config(tmp_path, api_url=leanpay.url, dead_letter_path=str(dead))

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert emitted(result.states)[-1] == 150
    assert len(dead.read_text().splitlines()) == 1
    assert_key_was_sent(leanpay)
    assert_no_secret(result, dead)


def test_wrong_key(tmp_path: Path) -> None:
    with StandIn(api_key=OTHER_KEY) as other:
        config = write_config(tmp_path, api_url=other.url)

        result = run_target(config, invoices_with_state(10))

        assert result.returncode == 1
        assert "HTTP 401" in result.stderr
        assert [r["headers"]["Authorization"] for r in other.requests()] == [SECRET]
    assert_no_secret(result)


def test_401_whose_body_echoes_the_key(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(status_fault(401, times=1))
    config = write_config(tmp_path, api_url=leanpay.url)

    result = run_target(config, invoices_with_state(10))

    assert result.returncode == 1
    assert "HTTP 401" in result.stderr and MASK in result.stderr
    assert_key_was_sent(leanpay)
    assert_no_secret(result)


def test_429_retries_whose_bodies_echo_the_key(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(status_fault(429, times=2, headers={"Retry-After": "0"}))
    config = write_config(tmp_path, api_url=leanpay.url)

    result = run_target(config, invoices_with_state(10))

    assert result.returncode == 0, result.stderr
    assert [p["status"] for p in batch_posts(leanpay)] == [429, 429, 201]
    assert result.stderr.count("HTTP 429") == 2
    assert MASK in result.stderr
    assert_key_was_sent(leanpay)
    assert_no_secret(result)


def test_503_until_the_retries_run_out(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(status_fault(503, times=100, path="/invoices", method="GET"))
    config = write_config(tmp_path, api_url=leanpay.url, max_retries=1)

    result = run_target(config, invoices_with_state(10))

    assert result.returncode == 1
    assert [r["status"] for r in leanpay.requests()] == [503, 503]  # a page of the listing
    assert "gave up after 2 attempts" in result.stderr and MASK in result.stderr
    assert_no_secret(result)


def test_refusal_echoing_the_key_stops_the_run_without_showing_it(
    leanpay: StandIn, tmp_path: Path
) -> None:
    leanpay.add_faults(status_fault(400, times=1, body={**ECHO_BODY, "statusCode": 400}))
    config = write_config(tmp_path, api_url=leanpay.url)

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    assert "Rejected stream 'public-invoices'" in result.stderr and MASK in result.stderr
    assert_no_secret(result)


def test_refusal_echoing_the_key_is_dead_lettered_without_it(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    leanpay.add_faults(status_fault(400, times=1, body={**ECHO_BODY, "statusCode": 400}))
    config = write_config(tmp_path, api_url=leanpay.url, dead_letter_path=str(dead))

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 0, result.stderr
    [line] = [json.loads(text) for text in dead.read_text().splitlines()]
    assert line["http_status"] == 400
    assert "upstream failed" in line["api_message"]
    assert_no_secret(result, dead)


def test_key_echoed_where_the_message_is_cut(leanpay: StandIn, tmp_path: Path) -> None:
    # error bodies are quoted up to 300 characters: the key starts at character 276, so
    # the quote keeps "lp_live_SECRET_9f3c2a7e5" and cuts the rest; masking must not
    # depend on the whole key surviving the cut
    body = "x" * 260 + " Authorization: " + SECRET + " " + "y" * 40
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "status", "status": 418, "raw_body": body}
    )
    config = write_config(tmp_path, api_url=leanpay.url)

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    assert "HTTP 418" in result.stderr
    assert_no_secret(result)


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_key",
    [905172384651093, [SECRET], {"value": SECRET}],
    ids=["number", "list", "object"],
)
def test_an_invalid_api_key_setting_is_not_echoed(tmp_path: Path, bad_key: Any) -> None:
    config = write_config(tmp_path, api_key=bad_key, api_url="http://127.0.0.1:9/v1/public")

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Invalid setting: config['api_key'] is invalid" in result.stderr
    assert "905172384651093" not in result.stderr
    assert result.stdout == ""
    assert_no_secret(result)


def test_another_invalid_setting_does_not_print_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, max_retries="five", api_url="http://127.0.0.1:9/v1/public")

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    assert "config['max_retries']" in result.stderr
    assert_no_secret(result)


def test_key_with_a_trailing_newline_is_trimmed(leanpay: StandIn, tmp_path: Path) -> None:
    # a key read from a file keeps its line break: the target trims surrounding whitespace
    config = write_config(tmp_path, api_key=SECRET + "\n", api_url=leanpay.url)

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 0, result.stderr
    assert_key_was_sent(leanpay)
    assert_no_secret(result)


def test_key_with_an_inner_control_character_fails_cleanly(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # requests would refuse the header value and quote it in its error
    config = write_config(tmp_path, api_key=SECRET[:10] + "\n" + SECRET[10:], api_url=leanpay.url)

    result = run_target(config, invoices_with_state(1))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "api_key" in result.stderr
    assert all(LOG_LINE.match(line) for line in result.stderr.splitlines()), result.stderr
    assert_no_secret(result)
    assert leanpay.requests() == []


def test_dry_run_with_the_key_set(leanpay: StandIn, tmp_path: Path) -> None:
    out = tmp_path / "dry.jsonl"
    dead = tmp_path / "dry.rejected.jsonl"  # a dry run's rejections go beside its requests
    messages = invoices_with_state(150)
    messages[5]["record"]["amount"] = -1
    config = write_config(
        tmp_path,
        api_url=leanpay.url,
        dry_run=True,
        dry_run_path=str(out),
        dead_letter_path=str(tmp_path / "rejected.jsonl"),
    )

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert len(out.read_text().splitlines()) == 2
    assert len(dead.read_text().splitlines()) == 1
    assert leanpay.requests() == []
    assert_no_secret(result, out, dead)


@pytest.mark.parametrize("about_format", [None, "json", "markdown"])
def test_about(tmp_path: Path, about_format: str | None) -> None:
    config = write_config(tmp_path)
    args = ["--about", "--config", str(config)]
    if about_format:
        args += ["--format", about_format]

    result = run_cli(args)

    assert result.returncode == 0, result.stderr
    assert "api_key" in result.stdout
    assert_no_secret(result)


def test_key_from_the_environment(leanpay: StandIn, tmp_path: Path) -> None:
    # the secret in the environment, the other settings in a file (as a scheduler would)
    config = write_config(tmp_path, api_url=leanpay.url)
    settings = json.loads(config.read_text())
    del settings["api_key"]
    config.write_text(json.dumps(settings))
    env = {"TARGET_LEANPAY_API_KEY": SECRET}

    result = run_cli(
        ["--config", str(config), "--config", "ENV"], invoices_with_state(120, 60), env
    )

    assert result.returncode == 0, result.stderr
    assert emitted(result.states)[-1] == 120  # 60 too, unless request 2 was answered first
    assert len(leanpay.store("invoices")) == 120
    assert "Parsing 'api_key' config from env variable" in result.stderr
    assert_key_was_sent(leanpay)
    assert_no_secret(result)


def test_key_from_the_environment_with_an_echoing_failure(leanpay: StandIn, tmp_path: Path) -> None:
    leanpay.add_faults(status_fault(503, times=100, path="/invoices", method="GET"))
    env = {
        "TARGET_LEANPAY_API_KEY": SECRET,
        "TARGET_LEANPAY_API_URL": leanpay.url,
        "TARGET_LEANPAY_MAX_RETRIES": "0",
    }

    result = run_cli(["--config", "ENV"], invoices_with_state(10), env)

    assert result.returncode == 1
    assert "HTTP 503" in result.stderr and MASK in result.stderr
    assert_key_was_sent(leanpay)
    assert_no_secret(result)


def test_meltano_structured_logging_reports_the_error_without_the_key(
    leanpay: StandIn, tmp_path: Path
) -> None:
    # what `meltano run` writes to SINGER_SDK_LOG_CONFIG for a plugin with the
    # structured-logging capability (meltano/core/plugin/singer/base.py, _get_sdk_logging)
    log_config = tmp_path / "logging.json"
    log_config.write_text(
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
    leanpay.add_faults(status_fault(503, times=100, path="/invoices", method="GET"))
    config = write_config(tmp_path, api_url=leanpay.url, max_retries=1)

    result = run_cli(
        ["--config", str(config)],
        invoices_with_state(10),
        {"SINGER_SDK_LOG_CONFIG": str(log_config)},
    )

    assert result.returncode == 1
    records = [json.loads(line) for line in result.stderr.splitlines()]
    errors = [r["message"] for r in records if r["level"] == "error"]
    assert len(errors) == 1, result.stderr
    assert "HTTP 503" in errors[0] and MASK in errors[0]
    assert_no_secret(result)
