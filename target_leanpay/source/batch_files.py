"""BATCH messages: the records of the files a singer-sdk tap in batch mode lists.

A tap with a `batch_config` sends, instead of RECORD messages,
`{"type": "BATCH", "stream", "encoding": {"format", "compression"}, "manifest": [uri…]}`
(singer_sdk/helpers/_batch.py): each file holds raw records, one JSON object per line
(`jsonl`, plain or `gzip`), or a Parquet table. The SDK's own handling hands a whole file
to `process_batch`, past stream maps, mapping and validation; here each record is given,
one at a time and in file order, with its place (file and line), to the RECORD path.

Only local files are read (`file://` URIs, or plain paths): a tap and this target run on
one machine under Meltano. JSON numbers with a fraction are read as Decimal (money is
never a float); Parquet doubles are read as the Decimal of their shortest repr.
Anything that cannot be read stops the run with one paragraph naming the input line of
the BATCH message, the file and, where it applies, the line within it.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import urllib.parse
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec
from singer_sdk.contrib.msgspec import decoder as sdk_decoder

from target_leanpay.leanpay.errors import InputError, quote

FORMATS = ("jsonl", "parquet")
COMPRESSIONS = (None, "none", "gzip")


class Place(int):
    """Where a record of a BATCH file was read.

    As a number, the input line of its BATCH message (what every message and ordering
    of the RECORD path uses); as text, that line plus the file and the line within it,
    so that every error and dead letter names the record's own place.
    """

    file: str
    line: int
    unit: str

    def __new__(cls, input_line: int, file: str, line: int, unit: str = "line") -> Place:
        place = super().__new__(cls, input_line)
        place.file = file
        place.line = line
        place.unit = unit
        return place

    def __str__(self) -> str:
        return f"{int(self)}, file {self.file} {self.unit} {self.line}"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else format(int(self), spec)

    __repr__ = __str__


def records(message: dict[str, Any], input_line: int) -> Iterator[tuple[Place, Any]]:
    """(place, record) of every record of every file of a BATCH message, in order."""
    stream = quote(str(message.get("stream")), 80)
    where = f"Input line {input_line}: the BATCH message of stream {stream!r}"
    encoding = message.get("encoding")
    manifest = message.get("manifest")
    if not isinstance(encoding, dict) or not isinstance(manifest, list):
        raise InputError(
            f"{where} lacks its 'encoding' object or its 'manifest' list of files "
            "(singer-sdk's BATCH message has both)"
        )
    file_format, compression = encoding.get("format"), encoding.get("compression")
    if file_format not in FORMATS or compression not in COMPRESSIONS:
        raise InputError(
            f"{where} has the encoding {quote(str(encoding), 120)}; target-leanpay reads "
            "format 'jsonl' (compression 'gzip' or none) and 'parquet'"
        )
    if file_format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise InputError(
            f"{where} lists Parquet files, which need pyarrow: install it beside "
            "target-leanpay (pip install pyarrow), or give the tap's batch_config the "
            "encoding jsonl"
        )
    for uri in manifest:
        path = _local_path(uri, where)
        if file_format == "parquet":
            yield from _parquet(path, input_line, where)
        else:
            yield from _jsonl(path, compression == "gzip", input_line, where)


def _local_path(uri: Any, where: str) -> str:
    """The local path of a manifest entry (`file:///…` or a plain path)."""
    if not isinstance(uri, str) or not uri:
        raise InputError(f"{where} lists {quote(repr(uri), 80)}, which is not a file URI")
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return urllib.parse.unquote(parts.path)
    if parts.scheme == "" or (len(parts.scheme) == 1 and uri[1:2] == ":"):  # C:\… on Windows
        return uri
    raise InputError(
        f"{where} lists {quote(uri, 200)}: target-leanpay reads only local files "
        "(file:// URIs); give the tap's batch_config a local storage root"
    )


def _jsonl(path: str, gzipped: bool, input_line: int, where: str) -> Iterator[tuple[Place, Any]]:
    kind = "gzipped JSONL" if gzipped else "JSONL"
    try:
        raw: io.BufferedIOBase = gzip.GzipFile(path) if gzipped else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"{where} lists {path}, which cannot be read ({exc.strerror})") from None
    except ValueError:  # a NUL or a lone surrogate: no file can have that name
        raise InputError(
            f"{where} lists {quote(repr(path), 120)}, which cannot be a file's name"
        ) from None
    with raw:
        number = 0
        try:
            for number, line in enumerate(raw, 1):
                if not line.strip():
                    continue
                try:
                    record = sdk_decoder.decode(line)
                except msgspec.DecodeError as exc:
                    raise InputError(
                        f"{where}: file {path} line {number} is not valid JSON ({exc}): "
                        f"{quote(line.decode('utf-8', 'replace'), 120)}"
                    ) from None
                yield Place(input_line, path, number), record
        except (OSError, EOFError, zlib.error) as exc:
            after = f" after line {number}" if number else ""
            raise InputError(
                f"{where}: file {path} cannot be read as {kind}{after} ({quote(str(exc), 120)})"
            ) from None


def _parquet(path: str, input_line: int, where: str) -> Iterator[tuple[Place, Any]]:
    import pyarrow.parquet as pq  # noqa: PLC0415 - optional: only for Parquet batches

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several kinds for one cause
        raise InputError(
            f"{where} lists {path}, which cannot be read as Parquet ({quote(str(exc), 200)})"
        ) from None
    for number, row in enumerate(table.to_pylist(), 1):
        yield Place(input_line, path, number, "row"), _without_floats(row)


def _without_floats(value: Any) -> Any:
    """A Parquet row with its doubles as Decimal (their shortest repr), never a float."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _without_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_floats(item) for item in value]
    return value
