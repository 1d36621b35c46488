"""The folder store's promises (`FolderPromises`): receipts and sending marks live in the
store folder, per API host; `receipts_path` is only their export, except once, when an
earlier version's file is read into the store."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from target_leanpay.output.runmark import RunMark
from target_leanpay.store.folder_promises import FolderPromises
from target_leanpay.store.store import PromisesDamaged

HOST = "api.leanpay.fr"
TENANT = "9b1f0c1e-7d0a-4c55-9a57-0f4b7d9b2a10"
OLD = '"stream":"cn","run_started":"2026-01-01T00:00:00+00:00"'


def promises(tmp_path: Path, *, export: str | None = None, writable: bool = True) -> FolderPromises:
    return FolderPromises(
        tmp_path / "store", HOST, writable=writable, run=RunMark.new(), export=export
    )


def lines(path: Path | str) -> list[dict[str, object]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_receipts_live_in_the_store_per_host_and_another_tenants_are_not_used(
    tmp_path: Path,
) -> None:
    kept = promises(tmp_path)
    kept.record("cn", "credit_notes", [("CN-1", "cn-1")], TENANT)
    kept.record("cn", "credit_notes", [("CN-2", "cn-2")], "another-tenant")
    kept.close()
    path = tmp_path / "store" / f"{HOST}.receipts.jsonl"
    assert kept.where == str(path)
    assert [line["tenantId"] for line in lines(path)] == [TENANT, "another-tenant"]
    with path.open("a") as older:  # before lines named their tenant
        older.write('{"resource":"credit_notes","externalId":"CN-0","id":"cn-0",' + OLD + "}\n")
    again = promises(tmp_path, writable=False)
    assert list(again.earlier("credit_notes", TENANT)) == [
        ("CN-1", "cn-1", None),
        ("CN-0", "cn-0", None),
    ]
    assert len(list(again.earlier("credit_notes"))) == 3  # tenant not known yet: all
    assert list(again.earlier("links")) == []


def test_reading_one_resources_receipts_decodes_no_line_of_another_and_a_damaged_one_stops(
    tmp_path: Path,
) -> None:
    kept = promises(tmp_path)
    kept.record("cn", "credit_notes", [("CN-1", "cn-1")], TENANT)
    kept.close()
    path = tmp_path / "store" / f"{HOST}.receipts.jsonl"
    with path.open("a") as more:  # an invoice's line that would not decode: never read
        more.write('{"resource":"invoices","externalId":"INV-1","id":' + "\n")
    again = promises(tmp_path, writable=False)
    assert list(again.earlier("credit_notes", TENANT)) == [("CN-1", "cn-1", None)]
    with pytest.raises(PromisesDamaged, match=f"receipts {path} line 2 is not a receipt"):
        list(again.earlier("invoices", TENANT))
    with path.open("a") as more:  # a line that names no resource first is always read
        more.write('{"externalId":"CN-2"}\n')
    with pytest.raises(PromisesDamaged, match=f"receipts {path} line 3 is not a receipt"):
        list(again.earlier("credit_notes", TENANT))


def test_marks_without_a_receipt_are_uncertain_for_the_next_run_one_line_each(
    tmp_path: Path,
) -> None:
    first = promises(tmp_path)
    first.mark_sending("credit_notes", ["CN-1", "CN-2", "CN-3"])
    first.record("cn", "credit_notes", [("CN-1", "cn-1")], TENANT)
    first.mark_sending("paybacks", ["P-1"])
    first.refused("paybacks", ["P-1"])  # Leanpay refused it: not stored
    first.close()  # CN-2, CN-3: on the wire when the run died

    second = promises(tmp_path)
    assert second.uncertain("credit_notes") == {"CN-2", "CN-3"}
    assert second.uncertain("paybacks") == set()
    second.close()
    marks = tmp_path / "store" / f"{HOST}.sending.jsonl"
    assert [(m["resource"], m["externalId"]) for m in lines(marks)] == [
        ("credit_notes", "CN-2"),
        ("credit_notes", "CN-3"),
    ]  # rewritten at start: what is still uncertain, one line per item

    kept = [line for line in marks.read_text().splitlines() if '"CN-2"' not in line]
    marks.write_text("".join(line + "\n" for line in kept))  # a user releases CN-2
    assert promises(tmp_path, writable=False).uncertain("credit_notes") == {"CN-3"}


def test_a_damaged_mark_stops_the_run_naming_its_file(tmp_path: Path) -> None:
    promises(tmp_path).close()
    marks = tmp_path / "store" / f"{HOST}.sending.jsonl"
    marks.write_text('{"resource":"credit_notes","externalIds":["CN-0"]}\n')
    with pytest.raises(PromisesDamaged, match=f"{marks} line 1 is not a sending mark"):
        promises(tmp_path)


def test_an_earlier_versions_receipts_file_is_read_into_the_store_once_then_exported(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "receipts.jsonl"
    legacy.write_text(
        '{"resource":"credit_notes","externalId":"CN-1","id":"cn-1",' + OLD + "}\n"
        '{"resource":"credit_notes","externalId":"CN-2","id":"cn-2",' + OLD + "}\n"
    )
    Path(f"{legacy}.sending").write_text(
        '{"resource":"credit_notes","externalIds":["CN-2","CN-3"],"run_started":"x"}\n'
        '{"resource":"paybacks","externalIds":["P-1"],"run_started":"x"}\n'
        '{"resource":"paybacks","externalIds":["P-1"],"run_started":"x","answered":true}\n'
    )
    adopted = promises(tmp_path, export=str(legacy))
    assert [e for e, _, _ in adopted.earlier("credit_notes")] == ["CN-1", "CN-2"]
    assert adopted.uncertain("credit_notes") == {"CN-3"}  # CN-2 has its receipt
    assert adopted.uncertain("paybacks") == set()
    adopted.record("cn", "credit_notes", [("CN-4", "cn-4")], TENANT)
    adopted.close()
    assert [line["externalId"] for line in lines(legacy)] == ["CN-1", "CN-2", "CN-4"]

    legacy.write_text("")  # from now on an export: never read again
    again = promises(tmp_path, export=str(legacy))
    assert [e for e, _, _ in again.earlier("credit_notes")] == ["CN-1", "CN-2", "CN-4"]
    assert again.uncertain("credit_notes") == {"CN-3"}
    again.close()


def test_a_plan_reads_an_earlier_versions_file_in_place_and_writes_nothing(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "receipts.jsonl"
    legacy.write_text('{"resource":"credit_notes","externalId":"CN-1","id":"cn-1",' + OLD + "}\n")
    plan = promises(tmp_path, export=str(legacy), writable=False)
    assert [e for e, _, _ in plan.earlier("credit_notes")] == ["CN-1"]
    plan.record("cn", "credit_notes", [("CN-2", "cn-2")], TENANT)
    plan.mark_sending("credit_notes", ["CN-3"])
    plan.close()
    assert not (tmp_path / "store").exists()
    assert len(lines(legacy)) == 1


def test_the_readmes_command_releases_an_uncertain_item(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Releasing an uncertain item") :]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None
    folder = tmp_path / ".local" / "state" / "target-leanpay"  # the default store

    def promises_of_a_run() -> FolderPromises:
        return FolderPromises(folder, HOST, writable=True, run=RunMark.new(), export=None)

    dead_run = promises_of_a_run()
    dead_run.mark_sending("credit_notes", ["CN-2024-0042", "CN-7"])
    dead_run.mark_sending("paybacks", ["CN-2024-0042"])
    dead_run.close()
    promises_of_a_run().close()  # the run that set them aside rewrote the marks

    env = {"HOME": str(tmp_path), "PATH": os.environ["PATH"]}
    subprocess.run(["bash", "-c", found.group(1)], env=env, check=True)

    resumed = promises_of_a_run()
    assert resumed.uncertain("credit_notes") == {"CN-7"}
    assert resumed.uncertain("paybacks") == {"CN-2024-0042"}
    resumed.close()


def test_a_run_started_while_another_sends_appends_to_its_marks_never_replaces_them(
    tmp_path: Path,
) -> None:
    sending = promises(tmp_path)
    sending.mark_sending("credit_notes", ["CN-1"])
    overlapping = promises(tmp_path)  # an hourly run that overran: the first still sends
    sending.mark_sending("credit_notes", ["CN-2"])  # then dies with CN-1 and CN-2 on the wire
    overlapping.close()
    sending.close()

    resumed = promises(tmp_path)
    assert resumed.uncertain("credit_notes") == {"CN-1", "CN-2"}
    resumed.close()


def test_a_run_alone_at_its_start_never_replaces_the_marks_of_one_still_sending(
    tmp_path: Path,
) -> None:
    first = promises(tmp_path)
    overlapping = promises(tmp_path)  # started while the first runs: it shares the lock
    overlapping.mark_sending("credit_notes", ["CN-1"])
    first.close()  # the first ends; the overlapping one still sends
    third = promises(tmp_path)  # not alone: the overlapping run still holds the lock
    overlapping.mark_sending("credit_notes", ["CN-2"])  # then it dies with both on the wire
    third.close()
    overlapping.close()

    resumed = promises(tmp_path)
    assert resumed.uncertain("credit_notes") == {"CN-1", "CN-2"}
    resumed.close()


def test_a_line_a_killed_run_left_unfinished_is_cut_before_another_run_appends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    living = promises(tmp_path)
    living.record("cn", "credit_notes", [("CN-1", "cn-1")], TENANT)
    path = tmp_path / "store" / f"{HOST}.receipts.jsonl"
    with path.open("ab") as killed:  # another run of the host, killed mid-write
        killed.write(b'{"resource":"credit_notes","externalId":"CN-9","id":"cn')
    living.record("cn", "credit_notes", [("CN-2", "cn-2")], TENANT)
    living.close()

    assert [line["externalId"] for line in lines(path)] == ["CN-1", "CN-2"]
    assert "a last line without its end" in caplog.text
    again = promises(tmp_path, writable=False)
    assert [e for e, _, _ in again.earlier("credit_notes", TENANT)] == ["CN-1", "CN-2"]


def test_another_tenants_receipt_of_one_external_id_never_clears_a_dying_runs_mark(
    tmp_path: Path,
) -> None:
    staging = promises(tmp_path)  # a tenant of the same host, with the same externalId
    staging.record("cn", "credit_notes", [("CN-9", "cn-9-staging")], "staging")
    staging.close()
    production = promises(tmp_path)
    production.mark_sending("credit_notes", ["CN-9"])  # killed -9 while CN-9 was on the wire
    production.close()

    resumed = promises(tmp_path)
    assert resumed.uncertain("credit_notes") == {"CN-9"}  # set aside, never sent again
    resumed.close()
