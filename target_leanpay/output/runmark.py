"""RunMark: which run wrote a line of the dead-letter or receipts file.

Both files are appended to by every run; a line carries its run's id and start time so
that one run's lines can be told from another's (`jq 'select(.run_id == "…")'`). One
mark per run, shared by both files: a receipt and a dead letter of one run have the
same `run_started`.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RunMark:
    """A run's id (a random UUID) and start time (UTC, ISO 8601, to the second)."""

    id: str
    started: str

    @classmethod
    def new(cls) -> RunMark:
        """The mark of a run starting now."""
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        return cls(str(uuid.uuid4()), started)
