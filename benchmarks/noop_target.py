"""The "stock SDK" baseline: a singer-sdk target whose sink does nothing at all.

`throughput.py` runs it over the same input as target-leanpay, so the ratio between the
two says how much of the SDK's own per-record cost target-leanpay avoids. Everything is
left at the SDK's defaults on purpose: its reader (`SimpleSingerReader`), jsonschema
validation of every record, timestamp parsing, `_sdc` metadata handling and batch size.
Any tuning here would flatter neither side and would stop being the baseline.

Run: `python benchmarks/noop_target.py --config CONFIG.json < input.singer`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink


class NoopSink(BatchSink):
    """Buffers records like any BatchSink, and drops each batch on the floor."""

    def process_batch(self, context: dict[str, Any]) -> None:
        """Nothing: the cost measured is the SDK's reading, validation and batching."""


class NoopTarget(Target):
    """A stock target with no settings of its own."""

    name = "target-noop"
    config_jsonschema: ClassVar[dict[str, Any]] = th.PropertiesList().to_dict()
    default_sink_class = NoopSink


if __name__ == "__main__":
    NoopTarget.cli()
