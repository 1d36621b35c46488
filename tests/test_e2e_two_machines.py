"""The store's guarantees through the real CLI as two machines, on both stores: a
folder (a volume both "machines" mount) and PostgreSQL. Each machine has its own home,
state and cache folders and working directory; only the store is shared. Judged by what
the stand-in's journal shows was read and stored, the STATE lines and the exit codes."""

from __future__ import annotations

import json
import math
import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    API_KEY,
    CLIENT_ID,
    Result,
    Running,
    emitted,
    invoices_with_state,
    run_target,
    singer_input,
    target_config,
    wait_for,
)
from support.postgres import PASSWORD, PostgresServer

from leanpay_standin import StandIn

SEEDED = 2000  # 80 pages of 25
CREDITS = "erp-credits"
PAGES = math.ceil(SEEDED / 25)


class Machine:
    """A machine of its own: home, XDG folders, working directory; the store is shared."""

    def __init__(self, root: Path, store: str) -> None:
        self.root = root
        self.work = root / "work"
        self.work.mkdir(parents=True)
        self.store = store
        self.env = {
            name: value for name, value in os.environ.items() if not name.startswith("XDG_")
        }
        self.env.update(
            HOME=str(root / "home"),
            XDG_STATE_HOME=str(root / "state"),
            XDG_CACHE_HOME=str(root / "cache"),
        )

    def config(self, leanpay: StandIn, **settings: Any) -> Path:
        return target_config(leanpay, self.work, store=self.store, **settings)

    def run(self, config: Path, messages: list[dict[str, Any]]) -> Result:
        return run_target(config, messages, env=self.env, cwd=self.work)

    def start(self, config: Path) -> Running:
        return Running(config, env={**self.env, "PYTHONWARNINGS": "error"}, cwd=self.work)


@pytest.fixture(params=["folder", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared store: a folder both machines mount, or a PostgreSQL database."""
    if request.param == "folder":
        return str(tmp_path / "mounted-volume")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def tenant() -> Any:
    with StandIn(api_key=API_KEY, order="newest") as server:
        server.seed_invoices(SEEDED)
        yield server


def pages_read(leanpay: StandIn, since: int = 0) -> list[int]:
    return [
        int(r["query"]["page"])
        for r in leanpay.requests()[since:]
        if r["method"] == "GET" and r["path"] == "/invoices"
    ]


def posted(leanpay: StandIn, since: int = 0) -> list[str]:
    return [
        item["externalId"]
        for r in leanpay.requests()[since:]
        if r["method"] == "POST" and r["path"] == "/invoices/batch"
        for item in r["body"]["invoices"]
    ]


def stored_once(leanpay: StandIn, numbers: range) -> None:
    counts = Counter(i["externalId"] for i in leanpay.store())
    mine = {k: v for k, v in counts.items() if k and k.startswith("INV-")}
    assert mine == {f"INV-{i:05d}": 1 for i in numbers}


def first_load(machine: Machine, tenant: StandIn) -> Path:
    """INV-00000..00999 from one machine (every page: the store is new)."""
    config = machine.config(tenant)
    result = machine.run(config, invoices_with_state(1000, every=100))
    assert result.returncode == 0, result.stderr
    assert sorted(pages_read(tenant)) == list(range(1, PAGES + 1))
    return config


def test_a_run_on_another_machine_reads_only_the_pages_of_what_is_new(
    tenant: StandIn, tmp_path: Path, store: str
) -> None:
    first_load(Machine(tmp_path / "a", store), tenant)
    since = len(tenant.requests())
    other = Machine(tmp_path / "b", store)

    result = other.run(other.config(tenant), invoices_with_state(110, every=10, start=990))

    assert result.returncode == 0, result.stderr
    assert "every page" not in result.stderr
    assert len(pages_read(tenant, since)) <= 5
    assert sorted(posted(tenant, since)) == [f"INV-{i:05d}" for i in range(1000, 1100)]
    stored_once(tenant, range(1100))


def test_a_kill_9_on_one_machine_and_a_resume_on_another_load_every_invoice_once(
    tenant: StandIn, tmp_path: Path, store: str
) -> None:
    # One request at a time: its page bound is exact (several in flight, answered out of
    # order: test_e2e_incremental's test_a_kill_with_a_stored_batch_answered_after_...).
    first = Machine(tmp_path / "a", store)
    first_load(first, tenant)
    tenant.configure(latency_ms=150)
    target = first.start(first.config(tenant, max_in_flight=1))
    target.feed(singer_input(invoices_with_state(1000, every=100, start=1000)))
    wait_for(lambda: len(target.states) >= 2, timeout=60)
    target.kill()
    done = emitted(target.states)[-1] - 1000
    tenant.configure(latency_ms=0)
    resumed_from = len(tenant.requests())
    other = Machine(tmp_path / "b", store)

    result = other.run(
        other.config(tenant), invoices_with_state(1000 - done, every=100, start=1000 + done)
    )

    assert result.returncode == 0, result.stderr
    assert "every page" not in result.stderr
    assert len(pages_read(tenant, resumed_from)) <= 1 + 4  # one batch was in flight
    stored_once(tenant, range(2000))


def test_two_machines_at_once_on_one_tenant_the_second_waits_saying_so(
    tenant: StandIn, tmp_path: Path, store: str
) -> None:
    a, b = Machine(tmp_path / "a", store), Machine(tmp_path / "b", store)
    first_load(a, tenant)
    first = a.start(a.config(tenant))
    first.feed(singer_input(invoices_with_state(100, every=100, start=1000)))
    wait_for(lambda: len(first.states) == 1)  # it holds the tenant, its input still open
    second = b.start(b.config(tenant))
    second.feed(singer_input(invoices_with_state(200, every=100, start=1000)))
    second.close_input()
    second.wait_for_stderr("Another target-leanpay run is loading this Leanpay tenant")
    posted_while_waiting = len(posted(tenant))

    first.close_input()
    assert first.process.wait(timeout=30) == 0
    assert second.process.wait(timeout=30) == 0
    first.kill()
    second.kill()

    assert posted_while_waiting == 1100  # the second sent nothing while it waited
    stored_once(tenant, range(1200))
    # 1100 may be skipped: its records settled after the reader saw the next STATE
    assert emitted(second.states)[-1] == 1200
    assert set(emitted(second.states)) <= {1100, 1200}
    assert "".join(second.stderr).count("Another target-leanpay run is loading") == 1


# -- PostgreSQL down, refusing, foreign or lost: one line, exit 1, no STATE -------------


def assert_one_line_and_nothing_sent(result: Result, leanpay: StandIn, said: str) -> None:
    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line or said in line]
    assert any(said in line for line in errors), result.stderr
    assert "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr
    assert [r for r in leanpay.requests() if r["method"] == "POST"] == []


def test_postgresql_down_is_one_line_naming_the_store_without_its_password(
    leanpay: StandIn, tmp_path: Path
) -> None:
    with socket.socket() as nothing_listens:
        nothing_listens.bind(("127.0.0.1", 0))
        port = nothing_listens.getsockname()[1]
        url = f"postgresql://loader:{PASSWORD}@127.0.0.1:{port}/meltano"
        config = target_config(leanpay, tmp_path, store=url)

        result = run_target(config, invoices_with_state(10, every=10))

    assert_one_line_and_nothing_sent(
        result,
        leanpay,
        f"The store postgresql://********@127.0.0.1:{port}/meltano (schema target_leanpay) "
        "cannot be reached: ",
    )


def test_postgresql_refusing_the_password_is_one_line(
    leanpay: StandIn, tmp_path: Path, postgres: PostgresServer
) -> None:
    url = postgres.url(postgres.new_database(), password="not-the-password-9f")
    config = target_config(leanpay, tmp_path, store=url)

    result = run_target(config, invoices_with_state(10, every=10))

    assert_one_line_and_nothing_sent(result, leanpay, "password authentication failed")
    assert "not-the-password-9f" not in result.stderr


def test_a_foreign_schema_is_one_line(
    leanpay: StandIn, tmp_path: Path, postgres: PostgresServer
) -> None:
    database = postgres.new_database()
    postgres.sql(database, "CREATE SCHEMA target_leanpay")
    postgres.sql(database, "CREATE TABLE target_leanpay.receipts (what text)")
    config = target_config(leanpay, tmp_path, store=postgres.url(database))

    result = run_target(config, invoices_with_state(10, every=10))

    assert_one_line_and_nothing_sent(
        result, leanpay, "holds tables target-leanpay did not make (receipts)"
    )


def test_a_damaged_store_costs_one_full_listing_on_both_stores(
    tenant: StandIn, tmp_path: Path, store: str, postgres: PostgresServer
) -> None:
    machine = Machine(tmp_path / "a", store)
    config = first_load(machine, tenant)
    if store.startswith("postgresql://"):  # a cache table dropped by hand
        database = store.rsplit("/", 1)[1]
        postgres.sql(database, "DROP TABLE target_leanpay.invoices")
    else:
        for index in Path(store).glob("*.sqlite"):
            index.write_bytes(b"not a database" * 100)
    since = len(tenant.requests())

    result = machine.run(config, invoices_with_state(110, every=10, start=990))

    assert result.returncode == 0, result.stderr
    held = SEEDED + 1000  # the seeded invoices and the first load's
    assert sorted(pages_read(tenant, since)) == list(range(1, math.ceil(held / 25) + 1))
    stored_once(tenant, range(1100))


def test_a_connection_lost_mid_run_fails_it_with_state_behind_what_was_stored(
    tenant: StandIn, tmp_path: Path, postgres: PostgresServer, postgres_url: str
) -> None:
    machine = Machine(tmp_path / "a", postgres_url)
    config = first_load(machine, tenant)
    tenant.configure(latency_ms=150)
    target = machine.start(config)
    target.feed(singer_input(invoices_with_state(1000, every=100, start=1000)))
    wait_for(lambda: len(target.states) >= 1, timeout=60)
    database = postgres_url.rsplit("/", 1)[1]

    postgres.sql(
        database,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )

    target.close_input()
    assert target.process.wait(timeout=90) == 1
    target.kill()
    stderr = "".join(target.stderr)
    assert "the store postgresql://********@" in stderr.lower()  # named, no password
    assert PASSWORD not in stderr and "Traceback" not in stderr
    last = emitted(target.states)[-1]
    stored = {i["externalId"] for i in tenant.store()}
    assert {f"INV-{i:05d}" for i in range(1000, last)} <= stored  # STATE behind the data
    tenant.configure(latency_ms=0)

    resumed = machine.run(config, invoices_with_state(2000 - last, every=100, start=last))

    assert resumed.returncode == 0, resumed.stderr
    stored_once(tenant, range(2000))


def test_a_holder_cut_off_from_postgresql_while_it_writes_nothing_stops_with_one_line(
    leanpay: StandIn, tmp_path: Path, postgres: PostgresServer, postgres_url: str
) -> None:
    """The heartbeat: the second batch is held by Leanpay before storing, so the run has
    nothing to write when its backend is terminated; it notices, stops, and no STATE
    passes what the store recorded."""
    leanpay.add_faults(
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": "/invoices/batch", "action": "delay_before_store", "seconds": 60, "times": 1},
    )
    machine = Machine(tmp_path / "a", postgres_url)
    target = machine.start(machine.config(leanpay, max_in_flight=1))
    target.feed(singer_input(invoices_with_state(500, every=100)))
    wait_for(lambda: emitted(target.states) == [100])
    wait_for(lambda: len(posted(leanpay)) == 200)  # the held batch is on the wire
    database = postgres_url.rsplit("/", 1)[1]

    [(terminated,)] = postgres.sql(
        database,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )

    assert terminated == 1  # the run's one connection
    target.wait_for_stderr("stopped answering while this run held", timeout=60)
    target.close_input()  # the tap ends (a run that failed reads its input to the end)
    assert target.process.wait(timeout=60) == 1
    target.kill()
    stderr = "".join(target.stderr)
    said = [line for line in target.stderr if "stopped answering while this run held" in line]
    assert [line for line in target.stderr if "ERROR" in line] == said, stderr  # one line
    assert "The store postgresql://********@" in said[0]
    assert PASSWORD not in stderr and "Traceback" not in stderr
    recorded = {
        e for (e,) in postgres.sql(database, "SELECT external_id FROM target_leanpay.receipts")
    }
    assert emitted(target.states) == [100]
    assert {f"INV-{i:05d}" for i in range(100)} <= recorded  # STATE behind the store
    assert len(leanpay.store("invoices")) == 100  # the held batch was never stored


# -- promises: credit notes, which Leanpay cannot list ----------------------------------


def credit_note(n: int) -> dict[str, Any]:
    record = {
        "externalId": f"CN-{n}", "clientId": CLIENT_ID, "reference": f"A-{n}",
        "amount": 500 + n, "issueDate": "2024-03-05",
    }  # fmt: skip
    return {"type": "RECORD", "stream": CREDITS, "record": record}


def credit_notes(count: int) -> list[dict[str, Any]]:
    """SCHEMA, credit notes, a STATE after every 100."""
    fields = ("externalId", "clientId", "reference", "amount", "issueDate")
    messages: list[dict[str, Any]] = [
        {
            "type": "SCHEMA",
            "stream": CREDITS,
            "schema": {"type": "object", "properties": {name: {} for name in fields}},
            "key_properties": ["externalId"],
        }
    ]
    for n in range(count):
        messages.append(credit_note(n))
        if (n + 1) % 100 == 0:
            messages.append({"type": "STATE", "value": {"done": n + 1}})
    return messages


def promises_settings(machine: Machine) -> dict[str, Any]:
    """Credit notes, whose promises only the store keeps (no receipts_path)."""
    return {
        "stream_resources": {CREDITS: "credit_notes"},
        "dead_letter_path": str(machine.work / "rejected.jsonl"),
        "max_in_flight": 1,
    }


def test_credit_notes_on_the_wire_at_a_kill_9_are_never_sent_again_from_another_machine(
    leanpay: StandIn, tmp_path: Path, store: str
) -> None:
    leanpay.add_faults(  # the second batch is stored, its answer late: the kill lands there
        {"path": "/credit-notes/batch", "action": "delay_before_store", "seconds": 0, "times": 1},
        {"path": "/credit-notes/batch", "action": "delay_after_store", "seconds": 20, "times": 1},
    )
    a, b = Machine(tmp_path / "a", store), Machine(tmp_path / "b", store)
    messages = credit_notes(300)
    target = a.start(a.config(leanpay, **promises_settings(a)))
    target.feed(singer_input(messages))
    wait_for(lambda: len(leanpay.store("credit_notes")) == 200)
    wait_for(lambda: target.states == [{"done": 100}])  # the unanswered batch is not covered
    target.kill()

    resumed = b.run(b.config(leanpay, **promises_settings(b)), messages)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    stored = Counter(o["externalId"] for o in leanpay.store("credit_notes"))
    assert stored == {f"CN-{n}": 1 for n in range(300)}  # never twice
    letters = [json.loads(line) for line in (b.work / "rejected.jsonl").read_text().splitlines()]
    assert sorted(d["record"]["externalId"] for d in letters) == sorted(
        f"CN-{n}" for n in range(100, 200)
    )
    reasons = [d["reasons"][0]["reason"] for d in letters]
    assert all("was sending it to Leanpay when it died" in reason for reason in reasons)
    if store.startswith("postgresql://"):  # where to release one, without the password
        assert all("the sending table of the store postgresql://********@" in r for r in reasons)
    else:
        marks = Path(store) / f"127.0.0.1_{leanpay.port}.sending.jsonl"
        assert all(f"delete the line naming its externalId from {marks}" in r for r in reasons)
    assert resumed.states[-1] == {"done": 300}
    assert PASSWORD not in resumed.stderr


def test_a_credit_note_created_on_one_machine_is_known_on_another(
    leanpay: StandIn, tmp_path: Path, store: str
) -> None:
    a, b = Machine(tmp_path / "a", store), Machine(tmp_path / "b", store)
    first = a.run(a.config(leanpay, **promises_settings(a)), credit_notes(1))
    assert first.returncode == 0, first.stderr

    again = b.run(b.config(leanpay, **promises_settings(b)), credit_notes(1))

    assert again.returncode == 0, again.stderr
    assert len(leanpay.store("credit_notes")) == 1
    assert "1 already present" in again.stderr


def credit_note_posts(leanpay: StandIn) -> list[str]:
    """The externalIds of every credit note POSTed, in arrival order."""
    return [
        item["externalId"]
        for r in leanpay.requests()
        if r["method"] == "POST" and r["path"] == "/credit-notes/batch"
        for item in r["body"]["creditNotes"]
    ]


def test_two_machines_at_once_carrying_the_same_credit_notes_store_each_once(
    tenant: StandIn, tmp_path: Path, store: str
) -> None:
    """No invoice stream: the tenant is named by page 1 of the invoices, its lock held
    before the first credit note is sent, and the receipts read behind it."""
    a, b = Machine(tmp_path / "a", store), Machine(tmp_path / "b", store)
    messages = credit_notes(200)
    first = a.start(a.config(tenant, **promises_settings(a)))
    first.feed(singer_input(messages[:102]))  # SCHEMA, CN-0..99, STATE 100
    wait_for(lambda: len(first.states) == 1)  # it holds the tenant, its input still open
    second = b.start(b.config(tenant, **promises_settings(b)))
    second.feed(singer_input(messages))
    second.close_input()
    second.wait_for_stderr("Another target-leanpay run is loading this Leanpay tenant")
    posted_while_waiting = credit_note_posts(tenant)

    first.feed(singer_input(messages[102:]))  # CN-100..199, STATE 200
    first.close_input()
    assert first.process.wait(timeout=30) == 0
    assert second.process.wait(timeout=30) == 0
    first.kill()
    second.kill()

    assert posted_while_waiting == [f"CN-{n}" for n in range(100)]  # the first's only
    assert credit_note_posts(tenant) == [f"CN-{n}" for n in range(200)]  # never twice
    stored = Counter(o["externalId"] for o in tenant.store("credit_notes"))
    assert stored == {f"CN-{n}": 1 for n in range(200)}
    assert first.states == [{"done": 100}, {"done": 200}]
    # 100 may be skipped: its records settled after the reader saw the next STATE
    assert second.states in ([{"done": 100}, {"done": 200}], [{"done": 200}])
    assert "200 already present" in "".join(second.stderr)
    assert "".join(second.stderr).count("Another target-leanpay run is loading") == 1
    assert not (b.work / "rejected.jsonl").exists()  # nothing set aside as uncertain


def test_credit_notes_on_the_wire_of_a_running_machine_are_settled_by_its_receipts_not_set_aside(
    tenant: StandIn, tmp_path: Path, store: str
) -> None:
    """The second run starts while the first's POST is on the wire (marked, no receipt
    yet): once it holds the tenant, it reads the marks again, and finds the receipts."""
    tenant.add_faults(  # the first batch stored, its answer late: the second starts then
        {"path": "/credit-notes/batch", "action": "delay_after_store", "seconds": 10, "times": 1}
    )
    a, b = Machine(tmp_path / "a", store), Machine(tmp_path / "b", store)
    messages = credit_notes(100)
    first = a.start(a.config(tenant, **promises_settings(a)))
    first.feed(singer_input(messages))
    wait_for(lambda: len(tenant.store("credit_notes")) == 100)  # on the wire, unanswered
    second = b.start(b.config(tenant, **promises_settings(b)))
    second.feed(singer_input(messages))
    second.close_input()
    second.wait_for_stderr("Another target-leanpay run is loading this Leanpay tenant")

    first.close_input()
    assert first.process.wait(timeout=60) == 0
    assert second.process.wait(timeout=30) == 0
    first.kill()
    second.kill()

    assert credit_note_posts(tenant) == [f"CN-{n}" for n in range(100)]  # never twice
    assert first.states == [{"done": 100}]
    assert second.states == [{"done": 100}]
    assert "100 already present" in "".join(second.stderr)
    assert not (b.work / "rejected.jsonl").exists()  # none taken for a dead run's


def test_a_plan_on_another_machine_reads_the_store_and_writes_nothing_to_it(
    tenant: StandIn, tmp_path: Path, store: str
) -> None:
    first_load(Machine(tmp_path / "a", store), tenant)
    other = Machine(tmp_path / "b", store)
    since = len(tenant.requests())

    plan = other.run(
        other.config(tenant, plan=True, dry_run_path=str(other.work / "plan.jsonl")),
        invoices_with_state(110, every=10, start=990),
    )

    assert plan.returncode == 0, plan.stderr
    assert plan.stdout == ""  # a plan writes no STATE
    assert posted(tenant, since) == []
    assert len(pages_read(tenant, since)) <= 5
    since = len(tenant.requests())
    real = other.run(other.config(tenant), invoices_with_state(110, every=10, start=990))
    assert real.returncode == 0, real.stderr
    assert len(pages_read(tenant, since)) <= 5  # the plan left the store as it was
    assert sorted(posted(tenant, since)) == [f"INV-{i:05d}" for i in range(1000, 1100)]
    stored_once(tenant, range(1100))
