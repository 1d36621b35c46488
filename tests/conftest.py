"""Shared fixtures: the stand-in on 127.0.0.1, the real CLI (and, re-exported, the Singer
message builders of tests/support/singer.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

import pytest
from support.postgres import PostgresServer, running_server
from support.singer import (
    API_KEY,
    CLIENT_ID,
    STREAM,
    emitted,
    invoice,
    invoices_with_state,
    payload,
    schema,
    singer_input,
    state,
)

from leanpay_standin import StandIn

# The message builders live in tests/support/singer.py; the tests import them from here too.
__all__ = [
    "API_KEY",
    "CLIENT_ID",
    "STREAM",
    "emitted",
    "invoice",
    "invoices_with_state",
    "payload",
    "schema",
    "singer_input",
    "state",
]


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """XDG_STATE_HOME of the session, inherited by every target run: a run given no `store`
    keeps its tenant index there, never in the user's ~/.local/state (where such runs had
    left hundreds of index files)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
        yield


@pytest.fixture
def leanpay() -> Iterator[StandIn]:
    """A fresh stand-in per test, duplicates accepted (the dangerous live behaviour)."""
    with StandIn(api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (tests/support/postgres.py)."""
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A `postgresql://` store URL to a database of this test's own."""
    return postgres.url(postgres.new_database())


@pytest.fixture
def store_setting(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The `store` setting: the test's folder (what `target_config` sets by default), or,
    parametrized indirectly with "postgres", a database of its own on the suite's server."""
    if getattr(request, "param", "folder") == "folder":
        return str(tmp_path / "index")
    url: str = request.getfixturevalue("postgres_url")
    return url


@dataclass
class Result:
    """What one CLI run produced."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def states(self) -> list[dict[str, Any]]:
        """Every stdout line parsed: stdout must hold STATE lines and nothing else."""
        return [json.loads(line) for line in self.stdout.splitlines()]


def assert_checkpoints(result: Result, last: int, every: int) -> None:
    """STATE lines rise through the tap's STATEs and end exactly at `last`.

    Whether an intermediate STATE appears depends on a race the target may legitimately
    lose: an acknowledgement arriving before the reader reaches the next STATE message
    (then the older STATE is written first). The newest STATE covered when the run
    ends does not depend on it.
    """
    got = emitted(result.states)
    assert got, "no STATE written"
    assert got[-1] == last, got
    assert got == sorted(set(got)), got
    assert all(n % every == 0 or n == last for n in got), got


def target_config(leanpay: StandIn | None, tmp_path: Path, **settings: Any) -> Path:
    """Write a config file pointing at the stand-in; return its path. The tenant index
    lives in `tmp_path/index` (never in the user's ~/.local/state) unless a test says."""
    config: dict[str, Any] = {"max_retry_wait": 2, "store": str(tmp_path / "index")}
    if leanpay is not None:
        config.update(api_key=API_KEY, api_url=leanpay.url)
    config.update(settings)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def target_command(config_path: Path) -> list[str]:
    """The real CLI, as a user runs it."""
    return [sys.executable, "-m", "target_leanpay", "--config", str(config_path)]


def run_target(
    config_path: Path,
    messages: Sequence[dict[str, Any] | str],
    *,
    timeout: float = 90,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Pipe `messages` into the target CLI and wait for it (`env`, `cwd`: another
    machine's, see tests/test_e2e_store.py)."""
    started = time.monotonic()
    done = subprocess.run(
        target_command(config_path),
        input=singer_input(messages),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**(os.environ if env is None else env), "PYTHONWARNINGS": "error"},
        cwd=cwd,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def start_target(
    config_path: Path,
    *,
    own_group: bool = False,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """Start the target CLI with a pipe on stdin, for tests that signal or kill it.

    `own_group`: as a terminal's foreground job, whose process group a signal (Ctrl-C,
    systemd stopping a unit) reaches as a whole.
    """
    return subprocess.Popen(
        target_command(config_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=own_group,
        env=env,
        cwd=cwd,
    )


def wait_for(condition: Any, timeout: float = 60, interval: float = 0.02) -> None:
    """Poll `condition()` until it is truthy. The timeout only bounds a failure: a machine
    running three suites beside other work was seen to need more than 20 s for a start."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(interval)


def in_progress(leanpay: StandIn) -> int:
    """API requests the stand-in has not finished processing (or dropped on purpose)."""
    return sum(1 for e in leanpay.requests() if e["status"] is None)


def batch_posts(leanpay: StandIn, path: str = "/invoices/batch") -> list[dict[str, Any]]:
    """Every batch POST that reached the stand-in, in arrival order."""
    return [r for r in leanpay.requests() if r["method"] == "POST" and r["path"] == path]


@pytest.fixture(autouse=True)
def no_target_left_running() -> Iterator[None]:
    """A failed test must not leave its target process behind."""
    yield
    while Running.started:
        Running.started[-1].kill()


class Running:
    """The target CLI in a subprocess, STATE lines collected from stdout as they come."""

    started: ClassVar[list[Running]] = []

    def __init__(
        self,
        config: Path,
        *,
        own_group: bool = False,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.process = start_target(config, own_group=own_group, env=env, cwd=cwd)
        Running.started.append(self)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, lines), daemon=True)
            for stream, lines in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line)

    def feed(self, text: str) -> None:
        """Write to the target's stdin, as the tap does."""
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def close_input(self) -> None:
        """The tap finished."""
        assert self.process.stdin is not None
        self.process.stdin.close()

    @property
    def states(self) -> list[dict[str, Any]]:
        """Every complete stdout line, parsed: stdout carries STATE and nothing else."""
        return [json.loads(line) for line in list(self.stdout) if line.endswith("\n")]

    def wait_for_stderr(self, text: str, timeout: float = 60) -> None:
        """Wait until the target has logged `text` (an event it exposes, not a guess)."""
        wait_for(lambda: text in "".join(self.stderr), timeout=timeout)

    def kill(self) -> int:
        """SIGKILL: no handler, no flush, no goodbye. Returns the exit status."""
        if self in Running.started:
            Running.started.remove(self)
        self.process.kill()
        code = self.process.wait(timeout=10)
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        return code
