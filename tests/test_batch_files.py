"""batch_files: a BATCH message's records, each with its place; refusals as one paragraph."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from target_leanpay.leanpay.errors import InputError
from target_leanpay.source import batch_files
from target_leanpay.source.batch_files import Place


def message(manifest: list[str], **encoding: Any) -> dict[str, Any]:
    return {"type": "BATCH", "stream": "s", "encoding": encoding, "manifest": manifest}


def test_a_place_is_the_batch_line_as_a_number_and_names_file_and_line_as_text() -> None:
    place = Place(12, "/b/x.json.gz", 3)

    assert place == 12
    assert place + 1 == 13
    assert f"input line {place}" == "input line 12, file /b/x.json.gz line 3"
    assert f"{place:>4}" == "  12"
    assert str(Place(12, "/b/x.parquet", 1, "row")) == "12, file /b/x.parquet row 1"


def test_records_of_each_file_in_order_with_decimals_and_blank_lines_skipped(
    tmp_path: Path,
) -> None:
    plain = tmp_path / "a b.jsonl"
    plain.write_text('{"n": 1, "amount": 12.50}\n\n{"n": 2}\n')
    zipped = tmp_path / "c.jsonl.gz"
    zipped.write_bytes(gzip.compress(b'{"n": 3}\n'))

    plain_records = list(batch_files.records(message([plain.as_uri()], format="jsonl"), 7))
    zipped_records = list(
        batch_files.records(message([zipped.as_uri()], format="jsonl", compression="gzip"), 9)
    )

    assert [(str(p), r) for p, r in plain_records] == [
        (f"7, file {plain} line 1", {"n": 1, "amount": Decimal("12.50")}),
        (f"7, file {plain} line 3", {"n": 2}),
    ]
    assert [(str(p), r) for p, r in zipped_records] == [(f"9, file {zipped} line 1", {"n": 3})]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///tmp/x%20y.jsonl", "/tmp/x y.jsonl"),
        ("file://localhost/tmp/x.jsonl", "/tmp/x.jsonl"),
        ("/tmp/x.jsonl", "/tmp/x.jsonl"),
    ],
)
def test_local_uris_and_paths_are_read(uri: str, expected: str) -> None:
    assert batch_files._local_path(uri, "where") == expected


@pytest.mark.parametrize("uri", ["s3://b/x.jsonl", "file://host/x.jsonl", "", 3])
def test_other_uris_are_refused(uri: Any) -> None:
    with pytest.raises(InputError):
        batch_files._local_path(uri, "where")


def test_doubles_become_the_decimal_of_their_shortest_repr() -> None:
    row = {"a": 0.1, "b": [1.25, {"c": 3.0}], "d": 7, "e": None, "f": True}

    assert batch_files._without_floats(row) == {
        "a": Decimal("0.1"),
        "b": [Decimal("1.25"), {"c": Decimal("3.0")}],
        "d": 7,
        "e": None,
        "f": True,
    }
