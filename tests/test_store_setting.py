"""The `store` setting: a folder (a state folder by default) or a postgresql:// URL whose
password is never shown; `index_dir`, which it replaced, is refused naming it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_target, target_config

from leanpay_standin import StandIn
from target_leanpay.config import store_location
from target_leanpay.config.settings import parse, secret_values
from target_leanpay.config.store_location import StoreLocation, masked_store_url
from target_leanpay.leanpay.errors import ConfigError

KEY = "lp_live_0123456789"
PASSWORD = "s3cr3t-pg-pass"


def settings(**config: Any) -> Any:
    return parse({"api_key": KEY, **config})


def test_the_default_store_is_the_users_state_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", "/srv/state")
    assert settings().store == StoreLocation(folder=Path("/srv/state/target-leanpay"))
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", "/home/ada")
    assert settings().store == StoreLocation(folder=Path("/home/ada/.local/state/target-leanpay"))
    assert settings(store="").store.folder == Path("/home/ada/.local/state/target-leanpay")


def test_a_folder_store_is_that_folder_and_is_shown_as_it_is(tmp_path: Path) -> None:
    store = settings(store=str(tmp_path / "store")).store
    assert store == StoreLocation(folder=tmp_path / "store")
    assert store.shown == str(tmp_path / "store")
    assert secret_values({"store": str(tmp_path / "store")}) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql://loader:{PASSWORD}@db.internal:5432/meltano",
            "postgresql://********@db.internal:5432/meltano",
        ),
        (
            f"postgres://db.internal/meltano?user=loader&password={PASSWORD}&sslmode=require",
            "postgres://db.internal/meltano?user=loader&password=********&sslmode=require",
        ),
    ],
)
def test_a_url_store_is_shown_without_its_password(url: str, shown: str) -> None:
    store = settings(store=url).store
    assert store == StoreLocation(url=url)
    assert store.shown == masked_store_url(url) == shown
    assert PASSWORD in secret_values({"store": url})


def test_index_dir_is_refused_with_one_sentence_naming_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        settings(index_dir=str(tmp_path))
    assert refused.value.problems == [
        "index_dir was replaced by store (a folder or a postgresql:// URL, where the target "
        "keeps what it must remember between runs): rename the setting to store"
    ]


def test_a_url_of_another_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a folder nor a postgresql:// URL"):
        settings(store="s3://bucket/target-leanpay")


def test_without_psycopg_a_url_store_says_in_one_line_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        store_location.importlib.util,
        "find_spec",
        lambda name, *args: None if name == "psycopg" else found(name, *args),
    )
    with pytest.raises(ConfigError) as refused:
        settings(store=f"postgresql://loader:{PASSWORD}@db.internal/meltano")
    [problem] = refused.value.problems
    assert problem == (
        "store 'postgresql://********@db.internal/meltano' is a PostgreSQL URL, which needs "
        "psycopg: install target-leanpay with its postgres extra (pip install "
        "'<target-leanpay>[postgres]'; in Meltano, pip_url: <target-leanpay>[postgres])"
    )


def test_a_config_still_saying_index_dir_stops_the_run_before_anything_is_sent(
    leanpay: StandIn, tmp_path: Path
) -> None:
    config = target_config(leanpay, tmp_path)
    values = json.loads(config.read_text())
    values["index_dir"] = values.pop("store")
    config.write_text(json.dumps(values))

    result = run_target(config, [])

    assert result.returncode == 1
    assert result.stdout == ""
    assert "rename the setting to store" in result.stderr
    assert "Traceback" not in result.stderr
    assert leanpay.requests() == []
