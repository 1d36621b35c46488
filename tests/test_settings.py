"""Settings parsing: defaults from the schema alone, and every check the schema cannot make."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from target_leanpay.config.config_input import read_config_file, read_environment
from target_leanpay.config.settings import DEFAULTS, SCHEMA, parse
from target_leanpay.leanpay.errors import ConfigError
from target_leanpay.records.resources import CREDIT_NOTES, INVOICES

KEY = "lp_live_0123456789"


def settings(**config: Any) -> Any:
    return parse({"api_key": KEY, **config})


def test_every_default_comes_from_the_schema() -> None:
    parsed = settings()
    assert parsed.api_url == SCHEMA["properties"]["api_url"]["default"]
    assert parsed.request_timeout == DEFAULTS["request_timeout"] == 60
    assert parsed.max_retries == DEFAULTS["max_retries"]
    assert parsed.max_retry_wait == DEFAULTS["max_retry_wait"]
    assert parsed.request_size == DEFAULTS["batch_size_rows"] == 100
    assert parsed.max_in_flight == DEFAULTS["max_in_flight"]
    assert parsed.mapping.amount_unit == DEFAULTS["amount_unit"]
    assert parsed.mapping.client_ids == {}
    assert parsed.dry_run_path == DEFAULTS["dry_run_path"]
    assert (parsed.dry_run, parsed.replay_safety, parsed.validate_records) == (False, True, False)
    assert parsed.dead_letter_path is None and parsed.max_rejections is None


def test_a_null_setting_means_its_default() -> None:
    assert settings(max_retries=None, amount_unit=None).max_retries == DEFAULTS["max_retries"]


def test_streams_load_invoices_unless_routed() -> None:
    parsed = settings(stream_resources={"erp-credits": "credit_notes"})
    assert parsed.resource_for("erp-credits") is CREDIT_NOTES
    assert parsed.resource_for("anything-else") is INVOICES


def test_an_unknown_resource_is_named() -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown resources {'s': 'payments'}")):
        settings(stream_resources={"s": "payments"})


def test_the_key_is_required_unless_dry_run() -> None:
    with pytest.raises(ConfigError, match="api_key is required"):
        parse({})
    assert parse({"dry_run": True}).api_key == ""


def test_a_key_file_newline_is_trimmed_and_inner_control_characters_refused() -> None:
    assert settings(api_key=f"{KEY}\n").api_key == KEY
    with pytest.raises(ConfigError, match="spaces or control characters") as refused:
        settings(api_key="lp_live\x07abcdef")
    assert "lp_live" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.leanpay.fr/v1/public", True),
        ("http://127.0.0.1:8000/v1/public", True),
        ("http://localhost/v1/public", True),
        ("http://[::1]:8000/v1/public", True),
        ("http://api.leanpay.fr/v1/public", False),
        ("ftp://api.leanpay.fr", False),
        ("https://", False),
    ],
)
def test_api_url_is_https_except_on_this_machine(url: str, ok: bool) -> None:
    if ok:
        assert settings(api_url=url).api_url == url
    else:
        with pytest.raises(ConfigError, match="must be https://"):
            settings(api_url=url)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://[::1", "Invalid IPv6 URL"),
        ("https://api.leanpay.fr:99999/v1/public", "Port out of range"),
    ],
)
def test_an_api_url_that_is_no_url_is_named(url: str, said: str) -> None:
    with pytest.raises(ConfigError, match=f"is not a valid URL \\({said}"):
        settings(api_url=url)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("request_timeout", 0, "request_timeout must be greater than 0"),
        ("max_retry_wait", -1, "max_retry_wait must be greater than 0"),
        ("max_in_flight", 0, "max_in_flight must be greater than 0"),
        ("batch_size_rows", 0, "batch_size_rows must be at least 1"),
        ("max_rejections", -1, "max_rejections must be 0 or more"),
        ("max_retries", -1, "max_retries must be 0 or more"),
        ("request_timeout", 10**12, "request_timeout must be at most 86,400"),
        ("max_retry_wait", 1e20, "max_retry_wait must be at most 86,400"),
        ("batch_wait_limit_seconds", 10**6, "batch_wait_limit_seconds must be at most 86,400"),
        ("max_in_flight", 10**9, "max_in_flight must be at most 100"),
        ("max_list_in_flight", 101, "max_list_in_flight must be at most 100"),
    ],
)
def test_numbers_out_of_range_are_refused(name: str, value: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**{name: value})


def test_batch_size_above_leanpays_limit_is_lowered() -> None:
    assert settings(batch_size_rows=500).request_size == 100


def test_client_ids_merge_the_file_and_the_setting_which_wins(tmp_path: Path) -> None:
    csv = tmp_path / "clients.csv"
    csv.write_text("\ufeffexternalId,id\nC-1, aaaa \nC-2,bbbb\n", encoding="utf-8")
    parsed = settings(client_ids_file=str(csv), client_ids={"C-2": "cccc"})
    assert parsed.mapping.client_ids == {"C-1": "aaaa", "C-2": "cccc"}


def test_a_client_ids_file_without_its_header_or_missing_is_named(tmp_path: Path) -> None:
    csv = tmp_path / "clients.csv"
    csv.write_text("code,uuid\nC-1,aaaa\n")
    with pytest.raises(ConfigError, match="needs a header row 'externalId,id'"):
        settings(client_ids_file=str(csv))
    with pytest.raises(ConfigError, match="cannot be read: No such file or directory"):
        settings(client_ids_file=str(tmp_path / "absent.csv"))


def test_a_dead_letter_path_that_cannot_be_written_fails_at_start(tmp_path: Path) -> None:
    assert settings(dead_letter_path=str(tmp_path / "new" / "dead.jsonl")).dead_letter_path
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        settings(dead_letter_path=str(tmp_path))
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot create its folder"):
        settings(dead_letter_path=str(tmp_path / "file" / "dead.jsonl"))


def test_settings_from_the_environment_are_converted_or_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "REQUEST_TIMEOUT": "2.5",
        "MAX_RETRY_WAIT": "soon",
        "MAX_RETRIES": "3",
        "DRY_RUN": "Yes",
        "REPLAY_SAFETY": "off",
        "CLIENT_IDS": '{"C-1": "x"}',
        "API_KEY": KEY,
    }.items():
        monkeypatch.setenv(f"TARGET_LEANPAY_{name}", value)

    found = read_environment("TARGET_LEANPAY_")

    assert found.values == {
        "request_timeout": Decimal("2.5"),
        "max_retries": 3,
        "dry_run": True,
        "replay_safety": False,
        "client_ids": {"C-1": "x"},
        "api_key": KEY,
    }
    assert found.problems == [
        "Environment variable TARGET_LEANPAY_MAX_RETRY_WAIT: 'soon' is not a number"
    ]


def test_a_config_file_may_write_a_number_setting_as_a_string(tmp_path: Path) -> None:
    """As Meltano writes request_timeout / max_retry_wait (kind string in the definition)."""
    config = tmp_path / "config.json"
    written = {"api_key": KEY, "request_timeout": "7.5", "max_retry_wait": "soon"}
    config.write_text(json.dumps({**written, "max_retries": "3"}))

    values = read_config_file(str(config))

    assert values["request_timeout"] == Decimal("7.5")
    assert (values["max_retry_wait"], values["max_retries"]) == ("soon", "3")  # left as written
    with pytest.raises(ConfigError) as refused:
        parse(values)
    assert refused.value.problems == [
        "config['max_retries']: '3' is not of type 'integer', 'null'",
        "config['max_retry_wait']: 'soon' is not of type 'number', 'null'",
    ]
    assert parse({**values, "max_retry_wait": 1, "max_retries": 3}).request_timeout == 7.5


def test_every_problem_is_listed_at_once_and_a_misspelling_is_named() -> None:
    with pytest.raises(ConfigError) as refused:
        parse({"amount_units": "major", "apikey": KEY, "max_retries": "five", "dry_run": False})
    assert refused.value.problems == [
        "'amount_units' is not a target-leanpay setting; did you mean amount_unit?",
        "'apikey' is not a target-leanpay setting; did you mean api_key?",
        "config['max_retries']: 'five' is not of type 'integer', 'null'",
        "api_key is required unless dry_run is on (set dry_run: true to send nothing)",
    ]
    assert KEY not in str(refused.value)


def test_the_sdk_settings_of_declared_capabilities_are_known() -> None:
    parse({"api_key": KEY, "stream_maps": {}, "stream_map_config": {}, "faker_config": {}})
    parse({"api_key": KEY, "flattening_enabled": True, "flattening_max_depth": 2})
    with pytest.raises(ConfigError, match="'load_method' is not a target-leanpay setting"):
        parse({"api_key": KEY, "load_method": "append-only"})


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://user:s3cr3t-pass@example.com/v1/public", "s3cr3t-pass"),
        ("https://lp_live_0123456789@api.leanpay.fr/v1/public", "lp_live_0123456789"),
        ("http://user:s3cr3t-pass@127.0.0.1:8000/v1/public", "s3cr3t-pass"),
        ("user:s3cr3t-pass@example.com/v1", "s3cr3t-pass"),
    ],
)
def test_credentials_in_api_url_are_refused_and_masked(url: str, secret: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("holds credentials")) as refused:
        settings(api_url=url)
    assert secret not in str(refused.value)
    assert "********@" in str(refused.value)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("lp_live_0123\u20ac456789", "U+20AC"),
        ("lp_live_01234 56789", "spaces or control characters"),
        ("lp_live_\u201c0123456789\u201d", "U+201C"),
    ],
)
def test_a_key_no_http_header_can_carry_is_refused_without_quoting_it(
    key: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)) as refused:
        settings(api_key=key)
    assert "0123" not in str(refused.value)


def test_declared_input_formats_reach_the_mapping_and_default_to_iso_and_a_point() -> None:
    assert (settings().mapping.date_formats, settings().mapping.decimal_separator) == ((), ".")
    parsed = settings(date_formats=["%d/%m/%Y", "%d.%m.%Y"], decimal_separator=",")
    assert parsed.mapping.date_formats == ("%d/%m/%Y", "%d.%m.%Y")
    assert parsed.mapping.decimal_separator == ","


def test_every_bad_date_format_and_separator_is_named_at_start() -> None:
    with pytest.raises(ConfigError) as refused:
        settings(date_formats=["%d/%m/%Y", "%d/%m", "%m/%Y", 3], decimal_separator=" ")
    assert refused.value.problems == [
        "config['decimal_separator']: ' ' is not one of ['.', ',']",
        "config['date_formats'][3]: 3 is not of type 'string'",
    ]
    with pytest.raises(ConfigError) as refused:
        settings(date_formats=["%d/%m/%Y", "%d/%m", "%m/%Y"])
    assert refused.value.problems == [
        "date_formats[1]: '%d/%m' names no year (%Y or %y)",
        "date_formats[2]: '%m/%Y' does not name a whole day: 2024-01-02 written with it "
        "reads back as 2024-01-01",
    ]


def test_date_formats_from_the_environment_are_a_json_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TARGET_LEANPAY_DATE_FORMATS", '["%d/%m/%Y"]')
    monkeypatch.setenv("TARGET_LEANPAY_DECIMAL_SEPARATOR", ",")
    found = read_environment("TARGET_LEANPAY_")
    assert found.values == {"date_formats": ["%d/%m/%Y"], "decimal_separator": ","}
    assert settings(**found.values).mapping.date_formats == ("%d/%m/%Y",)
