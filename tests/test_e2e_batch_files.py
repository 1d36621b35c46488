"""End to end: BATCH messages with hand-made files, through the real CLI and the stand-in.

The records of the files a BATCH lists take the RECORD path (mapping, validation,
dead letters, STATE after them, <= 100 per request); a file that cannot be read stops the
run with one paragraph naming the BATCH's input line and the file. The real tap's batch
output is in tests/test_e2e_batch_tap.py.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    STREAM,
    batch_posts,
    emitted,
    invoice,
    payload,
    run_target,
    schema,
    state,
    target_config,
)

from leanpay_standin import StandIn

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| ")


def rows(numbers: range, **changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of invoices `numbers`, as a tap writes them to a batch file;
    `changes["<number>"]` updates one of them."""
    result = []
    for i in numbers:
        record = invoice(i)["record"]
        record.update(changes.get(str(i), {}))
        result.append(record)
    return result


def write_jsonl(path: Path, records: list[dict[str, Any]], *, gzipped: bool = False) -> str:
    """Write a batch file; return its file:// URI."""
    text = "".join(json.dumps(record) + "\n" for record in records).encode()
    path.write_bytes(gzip.compress(text) if gzipped else text)
    return path.as_uri()


def batch(
    manifest: list[str], *, compression: str | None = None, fmt: str = "jsonl"
) -> dict[str, Any]:
    return {
        "type": "BATCH",
        "stream": STREAM,
        "encoding": {"format": fmt, "compression": compression},
        "manifest": manifest,
    }


def one_paragraph_error(stderr: str) -> str:
    """The only ERROR record, every stderr line a log record (no traceback)."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), stderr
    [error] = [line for line in lines if "| ERROR    |" in line]
    return LOG_LINE.sub("", error).split(" | ", 2)[2]


def test_the_records_of_two_files_are_sent_like_records_at_most_100_a_request(
    leanpay: StandIn, tmp_path: Path
) -> None:
    dead = tmp_path / "rejected.jsonl"
    first = write_jsonl(
        tmp_path / "a.jsonl.gz", rows(range(120), **{"7": {"amount": -1}}), gzipped=True
    )
    second = write_jsonl(tmp_path / "b.jsonl.gz", rows(range(120, 150)), gzipped=True)
    messages = [schema(), batch([first, second], compression="gzip"), state(150)]
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    good = [i for i in range(150) if i != 7]
    assert [p["body"] for p in batch_posts(leanpay)] == [
        {"invoices": [payload(i) for i in good[:100]]},
        {"invoices": [payload(i) for i in good[100:]]},
    ]
    assert emitted(result.states) == [150]
    [line] = [json.loads(text) for text in dead.read_text().splitlines()]
    assert line["record_id"] == (
        f"externalId 'INV-00007' (input line 2, file {tmp_path / 'a.jsonl.gz'} line 8)"
    )
    assert line["record"] == rows(range(7, 8), **{"7": {"amount": -1}})[0]
    assert line["reasons"] == [{"field": "amount", "reason": "must be >= 0, got -1"}]


def test_a_state_between_batches_covers_the_records_before_it(
    leanpay: StandIn, tmp_path: Path
) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", rows(range(100)))
    second = write_jsonl(tmp_path / "b.jsonl", rows(range(100, 130)))
    messages = [schema(), batch([first]), state(100), batch([second]), state(130)]
    config = target_config(leanpay, tmp_path, max_in_flight=1)

    result = run_target(config, messages)

    assert result.returncode == 0, result.stderr
    assert [p["items"] for p in batch_posts(leanpay)] == [100, 30]
    assert emitted(result.states) == [100, 130]


def test_a_bad_record_without_dead_letter_path_stops_the_run_naming_file_and_line(
    leanpay: StandIn, tmp_path: Path
) -> None:
    uri = write_jsonl(tmp_path / "a.jsonl", rows(range(5), **{"3": {"dueDate": "2024-02-30"}}))
    config = target_config(leanpay, tmp_path)

    result = run_target(config, [schema(), batch([uri]), state(5)])

    assert result.returncode == 1
    assert result.stdout == ""
    error = one_paragraph_error(result.stderr)
    assert f"externalId 'INV-00003' (input line 2, file {tmp_path / 'a.jsonl'} line 4)" in error
    assert "dueDate" in error
    assert leanpay.store("invoices") == []


def unreadable_cases(tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Name -> (BATCH message, the error it must give)."""
    missing = tmp_path / "missing.jsonl.gz"
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(b"this is not gzip\n")
    truncated = tmp_path / "truncated.jsonl.gz"
    whole = "".join(json.dumps(record) + "\n" for record in rows(range(50))).encode()
    truncated.write_bytes(gzip.compress(whole)[:-20])
    not_json = tmp_path / "not-json.jsonl"
    not_json.write_text(json.dumps(invoice(0)["record"]) + "\n{not json\n")
    where = f"Input line 2: the BATCH message of stream '{STREAM}'"
    return {
        "missing file": (
            batch([missing.as_uri()], compression="gzip"),
            f"{where} lists {missing}, which cannot be read (No such file or directory)",
        ),
        "not gzip": (
            batch([garbage.as_uri()], compression="gzip"),
            f"{where}: file {garbage} cannot be read as gzipped JSONL (Not a gzipped file (b'th'))",
        ),
        "truncated gzip": (
            batch([truncated.as_uri()], compression="gzip"),
            f"{where}: file {truncated} cannot be read as gzipped JSONL after line ",
        ),
        "not JSON": (
            batch([not_json.as_uri()]),
            f"{where}: file {not_json} line 2 is not valid JSON",
        ),
        "unknown format": (
            batch([not_json.as_uri()], fmt="csv"),
            f"{where} has the encoding {{'format': 'csv', 'compression': None}}; "
            "target-leanpay reads format 'jsonl' (compression 'gzip' or none) and 'parquet'",
        ),
        "unknown compression": (
            batch([not_json.as_uri()], compression="zstd"),
            f"{where} has the encoding {{'format': 'jsonl', 'compression': 'zstd'}}; ",
        ),
        "remote file": (
            batch(["s3://bucket/batch-1.jsonl"]),
            f"{where} lists s3://bucket/batch-1.jsonl: target-leanpay reads only local files",
        ),
        "no manifest": (
            {"type": "BATCH", "stream": STREAM, "encoding": {"format": "jsonl"}},
            f"{where} lacks its 'encoding' object or its 'manifest' list of files",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "not gzip",
        "truncated gzip",
        "not JSON",
        "unknown format",
        "unknown compression",
        "remote file",
        "no manifest",
    ],
)
def test_a_batch_that_cannot_be_read_stops_the_run_with_one_paragraph(
    leanpay: StandIn, tmp_path: Path, case: str
) -> None:
    message, expected = unreadable_cases(tmp_path)[case]
    config = target_config(leanpay, tmp_path, replay_safety=False)

    result = run_target(config, [schema(), message, state(1)])

    assert result.returncode == 1
    assert result.stdout == ""
    assert one_paragraph_error(result.stderr).startswith(expected)
    assert batch_posts(leanpay) == []


@pytest.mark.skipif(
    importlib.util.find_spec("pyarrow") is not None, reason="pyarrow is installed here"
)
def test_parquet_without_pyarrow_says_what_to_install(leanpay: StandIn, tmp_path: Path) -> None:
    config = target_config(leanpay, tmp_path, replay_safety=False)

    result = run_target(
        config, [schema(), batch([(tmp_path / "a.parquet").as_uri()], fmt="parquet")]
    )

    assert result.returncode == 1
    assert one_paragraph_error(result.stderr) == (
        f"Input line 2: the BATCH message of stream '{STREAM}' lists Parquet files, which "
        "need pyarrow: install it beside target-leanpay (pip install pyarrow), or give the "
        "tap's batch_config the encoding jsonl"
    )
    assert leanpay.requests() == []


def test_parquet_records_take_the_same_path_with_money_never_a_float(
    leanpay: StandIn, tmp_path: Path
) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet BATCH files need pyarrow (optional)")
    pq = pytest.importorskip("pyarrow.parquet")

    records = rows(range(3), **{"1": {"amount": -1}})
    for record in records:
        del record["_sdc_extracted_at"]
        record["netAmount"] = 800.1  # a double: read as Decimal('800.1'), then refused
    records[2]["netAmount"] = 800.0
    path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(records), path)
    dead = tmp_path / "rejected.jsonl"
    config = target_config(leanpay, tmp_path, max_in_flight=1, dead_letter_path=str(dead))

    result = run_target(config, [schema(), batch([path.as_uri()], fmt="parquet"), state(3)])

    assert result.returncode == 0, result.stderr
    assert [p["body"] for p in batch_posts(leanpay)] == [{"invoices": [payload(2, netAmount=800)]}]
    assert emitted(result.states) == [3]
    lines = [json.loads(text) for text in dead.read_text().splitlines()]
    assert [line["record_id"] for line in lines] == [
        f"externalId 'INV-00000' (input line 2, file {path} row 1)",
        f"externalId 'INV-00001' (input line 2, file {path} row 2)",
    ]
    assert lines[0]["record"]["netAmount"] == "800.1"
