"""The PostgreSQL store against a real server (tests/support/postgres.py): its schema,
versions, tenants kept apart, promises, the advisory lock and what a user sees when
PostgreSQL is down or refuses."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import wait_for
from support.postgres import PASSWORD, PostgresServer

from target_leanpay.config.store_location import StoreError
from target_leanpay.leanpay.errors import Stopped
from target_leanpay.store import changes, pg_lock
from target_leanpay.store.pg_store import CACHE_VERSION, PgStore, schema_of
from target_leanpay.store.store import SEVERAL, CacheDamaged, Promises, Row, TenantKey, Watermark

HOST = "api.leanpay.fr"
TENANT = TenantKey(HOST, "tenant-a")


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
def store(postgres: PostgresServer, database: str) -> Iterator[PgStore]:
    opened = PgStore(postgres.url(database), host=HOST)
    yield opened
    opened.close()


def tables(postgres: PostgresServer, database: str, schema: str) -> set[str]:
    rows = postgres.sql(
        database,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        schema,
    )
    return {row[0] for row in rows}


def row(n: int, external_id: str | None = None, contents: bytes | None = None) -> Row:
    return Row(f"lp-{n}", external_id or f"INV-{n}", 1_700_000_000_000_000 + n, None, contents)


def keep(promises: Promises, *pairs: tuple[str, str], tenant: str | None = "tenant-a") -> None:
    """Receipts of credit notes, as delivery records an acknowledged batch."""
    promises.record("s", "credit_notes", list(pairs), tenant, {pairs[0][0]: {"amount": 1}})


def test_the_schema_is_made_on_first_use_in_its_own_postgresql_schema(
    postgres: PostgresServer, database: str
) -> None:
    PgStore(postgres.url(database), host=HOST).close()
    assert tables(postgres, database, "target_leanpay") == {
        "versions", "invoices", "watermarks", "receipts", "sending", "facts",
    }  # fmt: skip
    assert tables(postgres, database, "public") == set()

    PgStore(postgres.url(database, options="-csearch_path%3Dleanpay_prod"), host=HOST).close()

    assert "receipts" in tables(postgres, database, "leanpay_prod")
    assert schema_of("postgresql://h/d?options=-c%20search_path%3Dx,public") == "x"


def test_a_tenants_cache_holds_what_was_added_and_its_watermark(store: PgStore) -> None:
    cache = store.cache(TENANT, writable=True)
    fields = changes.encode({"amount": 1200})
    cache.begin_full_listing()
    cache.add([row(1, contents=fields), row(2), row(3, external_id="INV-2")])
    cache.verified(total=3, order="newest")

    assert cache.count() == 3
    assert cache.has([row(1), row(9)]) == {"lp-1"}
    found = cache.find(["INV-1", "INV-2", "INV-404"])
    assert found["INV-1"] == (("lp-1", fields))
    assert found["INV-2"].leanpay_id == SEVERAL
    assert "INV-404" not in found
    assert cache.watermark() == Watermark(True, 1_700_000_000_000_003, 3, "newest")

    cache.damaged("a test")
    assert not cache.watermark().complete


def test_one_tenants_rows_are_never_read_for_another(
    store: PgStore, postgres: PostgresServer, database: str
) -> None:
    store.cache(TENANT, writable=True).add([row(1)])
    store.cache(TENANT, writable=True).verified(total=1, order=None)
    for other in (TenantKey(HOST, "tenant-b"), TenantKey("api.leanpay.es", "tenant-a")):
        cache = store.cache(other, writable=True)
        assert (cache.count(), cache.find(["INV-1"]), cache.has([row(1)])) == (0, {}, set())
        assert not cache.watermark().complete
    keep(store.promises(writable=True), ("CN-1", "cn-1"))
    elsewhere = PgStore(postgres.url(database), host="api.leanpay.es")
    assert list(elsewhere.promises(writable=True).earlier("credit_notes")) == []
    elsewhere.close()
    assert list(store.promises(writable=True).earlier("credit_notes", "tenant-b")) == []
    assert store.fact(TenantKey(HOST, "tenant-b"), "date_zone") is None


def test_a_garbled_value_makes_the_cache_damaged_not_a_traceback(
    store: PgStore, postgres: PostgresServer, database: str
) -> None:
    store.cache(TENANT, writable=True).add([row(1, contents=changes.encode({"amount": 1}))])
    postgres.sql(database, "UPDATE target_leanpay.invoices SET contents = '\\x00ff'")
    with pytest.raises(CacheDamaged):
        store.cache(TENANT, writable=True).find(["INV-1"])


def test_a_plan_works_on_a_copy_and_writes_nothing(store: PgStore) -> None:
    store.cache(TENANT, writable=True).add([row(1)])
    plan = store.cache(TENANT, writable=False)
    plan.add([row(2)])
    plan.verified(total=2, order="newest")
    assert plan.count() == 2
    real = store.cache(TENANT, writable=True)
    assert (real.count(), real.watermark().complete) == (1, False)


def test_receipts_newest_first_per_external_id_and_marks_without_a_receipt_are_doubts(
    postgres: PostgresServer, database: str
) -> None:
    first = PgStore(postgres.url(database), host=HOST)
    promises = first.promises(writable=True)
    keep(promises, ("CN-1", "old"))
    keep(promises, ("CN-2", "cn-2"), tenant=None)
    keep(promises, ("CN-1", "new"))
    keep(promises, ("CN-5", "other"), tenant="tenant-b")
    promises.mark_sending("credit_notes", ["CN-3", "CN-4", "CN-1"])
    promises.refused("credit_notes", ["CN-4"])
    first.keep_fact(TENANT, "date_zone", "Europe/Paris")
    assert promises.uncertain("credit_notes") == set()  # this run's own marks
    first.close()

    reopened = PgStore(postgres.url(database), host=HOST)
    later = reopened.promises(writable=True)

    assert list(later.earlier("credit_notes", "tenant-a")) == [
        ("CN-1", "old", changes.encode({"amount": 1})),
        ("CN-2", "cn-2", changes.encode({"amount": 1})),
        ("CN-1", "new", changes.encode({"amount": 1})),
    ]  # oldest first; none of another tenant
    assert [i for _, i, _ in later.earlier("credit_notes")] == ["old", "cn-2", "new", "other"]
    assert later.uncertain("credit_notes") == {"CN-3"}
    assert reopened.fact(TENANT, "date_zone") == "Europe/Paris"
    assert postgres.sql(database, "SELECT external_id FROM target_leanpay.sending") == [("CN-3",)]
    reopened.close()


def test_a_new_cache_version_rebuilds_the_cache_and_keeps_every_promise(
    postgres: PostgresServer, database: str, store: PgStore
) -> None:
    store.cache(TENANT, writable=True).add([row(1)])
    keep(store.promises(writable=True), ("CN-1", "cn-1"))
    store.promises(writable=True).mark_sending("credit_notes", ["CN-2"])
    postgres.sql(
        database, "UPDATE target_leanpay.versions SET version = %s WHERE part = 'cache'",
        CACHE_VERSION - 1,
    )  # fmt: skip

    again = PgStore(postgres.url(database), host=HOST)

    assert again.cache(TENANT, writable=True).count() == 0
    promises = again.promises(writable=True)
    assert [i for _, i, _ in promises.earlier("credit_notes")] == ["cn-1"]
    assert promises.uncertain("credit_notes") == {"CN-2"}
    again.close()


def test_promises_of_a_newer_version_stop_the_run_and_are_left_as_they_are(
    postgres: PostgresServer, database: str, store: PgStore
) -> None:
    keep(store.promises(writable=True), ("CN-1", "cn-1"))
    postgres.sql(
        database, "UPDATE target_leanpay.versions SET version = 99 WHERE part = 'promises'"
    )

    with pytest.raises(StoreError) as refused:
        PgStore(postgres.url(database), host=HOST)

    assert str(refused.value) == (
        f"The store postgresql://********@127.0.0.1:{postgres.port}/{database} (schema "
        "target_leanpay) holds promises of version 99, written by a newer target-leanpay "
        "(this one knows version 1): upgrade target-leanpay"
    )
    assert postgres.sql(database, "SELECT count(*) FROM target_leanpay.receipts") == [(1,)]


def test_lost_promises_stop_the_run_and_a_lost_cache_is_made_again(
    postgres: PostgresServer, database: str
) -> None:
    PgStore(postgres.url(database), host=HOST).close()
    postgres.sql(database, "DROP TABLE target_leanpay.watermarks")
    PgStore(postgres.url(database), host=HOST).close()
    assert "watermarks" in tables(postgres, database, "target_leanpay")
    postgres.sql(database, "DROP TABLE target_leanpay.sending")

    with pytest.raises(StoreError, match=r"lost tables of its promises \(sending\)"):
        PgStore(postgres.url(database), host=HOST)


def test_a_schema_of_someone_elses_tables_is_refused(
    postgres: PostgresServer, database: str
) -> None:
    postgres.sql(database, "CREATE SCHEMA target_leanpay")
    postgres.sql(database, "CREATE TABLE target_leanpay.invoices (id int)")

    with pytest.raises(StoreError, match=r"holds tables target-leanpay did not make \(invoices\)"):
        PgStore(postgres.url(database), host=HOST)


def test_postgresql_down_or_refusing_is_one_line_naming_the_store_without_its_password(
    postgres: PostgresServer, database: str
) -> None:
    with socket_that_refuses() as port:
        url = f"postgresql://loader:{PASSWORD}@127.0.0.1:{port}/meltano"
        with pytest.raises(StoreError) as down:
            PgStore(url, host=HOST)
    message = str(down.value)
    assert message.startswith(
        f"The store postgresql://********@127.0.0.1:{port}/meltano (schema target_leanpay) "
        "cannot be reached: "
    )
    assert "\n" not in message and PASSWORD not in message

    with pytest.raises(StoreError) as refused:
        PgStore(postgres.url(database, password="not-the-password"), host=HOST)
    assert "password authentication failed" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


def test_a_url_libpq_cannot_read_is_one_line() -> None:
    with pytest.raises(StoreError) as bad:
        PgStore(f"postgresql://loader:{PASSWORD}@db.internal/meltano?no_such_option=1", host=HOST)
    assert str(bad.value).startswith(
        "The store postgresql://********@db.internal/meltano?no_such_option=1 is not a "
        "PostgreSQL URL libpq can read: "
    )
    assert PASSWORD not in str(bad.value)


class socket_that_refuses:  # noqa: N801 - used as a statement
    """A port on 127.0.0.1 nothing listens on (bound, never listening)."""

    def __enter__(self) -> int:
        import socket  # noqa: PLC0415

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        port: int = self._socket.getsockname()[1]
        return port

    def __exit__(self, *_: object) -> None:
        self._socket.close()


def test_the_session_asks_the_server_to_drop_a_dead_machine_within_two_minutes(
    store: PgStore,
) -> None:
    settings = {
        name: store._connection.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
        for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
    }
    assert settings == {
        "tcp_keepalives_idle": "60",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "6",
    }
    assert store._connection.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_a_second_run_on_the_tenant_waits_saying_so_once_until_the_first_ends(
    postgres: PostgresServer, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres.url(database)
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        second = PgStore(url, host=HOST)
        lock = second.lock(HOST, stopping=threading.Event())
        waited: list[bool] = []
        caplog.set_level(logging.INFO, logger="target-leanpay.replay")
        taking = threading.Thread(target=lambda: waited.append(lock.hold_tenant(TENANT)))
        taking.start()
        wait_for(lambda: "waiting for it" in caplog.text)
        assert not waited  # still waiting while the first holds it

        holder.kill()  # kill -9: PostgreSQL drops the dead process's session and locks
        holder.wait()
        taking.join(timeout=30)

    assert waited == [True]
    assert caplog.text.count("Another target-leanpay run is loading this Leanpay tenant") == 1
    lock.release()
    second.close()


HOLD_AND_WAIT = """
import sys, threading
from target_leanpay.store.pg_store import PgStore
from target_leanpay.store.store import TenantKey
store = PgStore(sys.argv[1], host="api.leanpay.fr")
store.lock("api.leanpay.fr", stopping=threading.Event()).hold_tenant(
    TenantKey("api.leanpay.fr", "tenant-a"))
print("held", flush=True)
sys.stdin.read()
"""


def test_a_stop_ends_the_wait(postgres: PostgresServer, database: str) -> None:
    first, second = (
        PgStore(postgres.url(database), host=HOST),
        PgStore(postgres.url(database), host=HOST),
    )
    first.lock(HOST, stopping=threading.Event()).hold_new_tenant()
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(Stopped):
        second.lock(HOST, stopping=stopping).hold_tenant(TENANT)
    first.close()
    second.close()


def test_a_lost_connection_while_holding_the_lock_stops_the_run(
    postgres: PostgresServer, database: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(pg_lock, "HEARTBEAT_SECONDS", 0.05)
    store = PgStore(postgres.url(database), host=HOST)
    stopping = threading.Event()
    store.lock(HOST, stopping=stopping).hold_tenant(TENANT)
    [(pid,)] = store._connection.execute("SELECT pg_backend_pid()").fetchall()

    postgres.sql(database, "SELECT pg_terminate_backend(%s)", pid)

    assert stopping.wait(30)
    assert "stopped answering while this run held the tenant's lock" in caplog.text
    assert PASSWORD not in caplog.text
    with pytest.raises(psycopg.Error):
        store._connection.execute("SELECT 1")
    store.close()


def test_the_readmes_statement_releases_an_uncertain_item(
    postgres: PostgresServer, database: str
) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Releasing an uncertain item") :]
    found = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert found is not None
    dead_run = PgStore(postgres.url(database), host=HOST)
    dead_run.promises(writable=True).mark_sending("credit_notes", ["CN-2024-0042", "CN-7"])
    dead_run.close()

    postgres.sql(database, found.group(1))

    resumed = PgStore(postgres.url(database), host=HOST)
    assert resumed.promises(writable=True).uncertain("credit_notes") == {"CN-7"}
    resumed.close()


def test_an_earlier_versions_receipts_file_is_read_into_the_store_once_then_exported(
    postgres: PostgresServer, database: str, tmp_path: Path
) -> None:
    old = '"stream":"cn","run_started":"2026-01-01T00:00:00+00:00"'
    legacy = tmp_path / "receipts.jsonl"
    legacy.write_text(
        '{"resource":"credit_notes","externalId":"CN-1","id":"cn-1",' + old + "}\n"
        '{"resource":"credit_notes","externalId":"CN-2","id":"cn-2",' + old + ',"sent":{"a":1}}\n'
    )
    Path(f"{legacy}.sending").write_text(
        '{"resource":"credit_notes","externalIds":["CN-2","CN-3"],"run_started":"x"}\n'
    )
    first = PgStore(postgres.url(database), host=HOST, export=str(legacy))
    adopted = first.promises(writable=True)
    assert list(adopted.earlier("credit_notes")) == [
        ("CN-1", "cn-1", None),
        ("CN-2", "cn-2", changes.encode({"a": 1})),
    ]
    assert adopted.uncertain("credit_notes") == {"CN-3"}  # CN-2 has its receipt
    keep(adopted, ("CN-4", "cn-4"))
    adopted.close()
    first.close()
    assert [json.loads(x)["externalId"] for x in legacy.read_text().splitlines()] == [
        "CN-1", "CN-2", "CN-4",
    ]  # fmt: skip

    legacy.write_text("")  # from now on an export: never read again
    again = PgStore(postgres.url(database), host=HOST, export=str(legacy))
    promises = again.promises(writable=True)
    assert [e for e, _, _ in promises.earlier("credit_notes")] == ["CN-1", "CN-2", "CN-4"]
    assert promises.uncertain("credit_notes") == {"CN-3"}
    promises.close()
    again.close()


def test_another_tenants_receipt_of_one_external_id_never_clears_a_dying_runs_mark(
    postgres: PostgresServer, database: str
) -> None:
    staging = PgStore(postgres.url(database), host=HOST)
    keep(staging.promises(writable=True), ("CN-9", "cn-9-staging"), tenant="tenant-b")
    staging.close()
    production = PgStore(postgres.url(database), host=HOST)
    production.promises(writable=True).mark_sending("credit_notes", ["CN-9"])  # killed -9
    production.close()

    resumed = PgStore(postgres.url(database), host=HOST)
    assert resumed.promises(writable=True).uncertain("credit_notes") == {"CN-9"}
    resumed.close()
