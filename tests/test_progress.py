"""Progress lines and the end-of-run summary."""

from __future__ import annotations

import logging

import pytest

from target_leanpay.output.progress import Progress


def test_progress_logs_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(interval=3600)
    stats = progress.stats_for("s", "invoices")
    stats.read = 10
    with caplog.at_level(logging.INFO, logger="target-leanpay"):
        progress.maybe_log()
    assert caplog.messages == []

    progress = Progress(interval=0)
    stats = progress.stats_for("s", "invoices")
    stats.read = 10
    stats.add(acknowledged=7, already_present=2)
    with caplog.at_level(logging.INFO, logger="target-leanpay"):
        progress.maybe_log()
    (line,) = caplog.messages
    assert line.startswith("Progress: 10 records read, 9 acknowledged or present, ")
    assert line.endswith(" records/s")


def test_summary_has_one_line_per_stream(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress()
    progress.stats_for("a", "invoices").add(read=3, acknowledged=2, rejected=1, requests=2)
    progress.stats_for("b", "credit_notes").add(read=1, already_present=1, retries=1, requests=1)
    with caplog.at_level(logging.INFO, logger="target-leanpay"):
        progress.log_summary()
    assert [m.rsplit(",", 1)[0] for m in caplog.messages] == [
        "Summary: stream 'a' -> invoices: 3 records read, 2 acknowledged, 0 already present, "
        "1 rejected, 2 requests, 0 retries",
        "Summary: stream 'b' -> credit_notes: 1 record read, 0 acknowledged, 1 already "
        "present, 0 rejected, 1 request, 1 retry",
    ]


def test_a_dry_runs_lines_say_what_would_be_sent(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(interval=0)
    progress.dry_run = True
    progress.stats_for("a", "invoices").add(read=3, acknowledged=2, rejected=1, requests=1)
    progress.stats_for("b", "invoices").add(read=2, acknowledged=1, already_present=1, requests=1)
    with caplog.at_level(logging.INFO, logger="target-leanpay"):
        progress.maybe_log()
        progress.log_summary()
    assert [m.rsplit(",", 1)[0] for m in caplog.messages] == [
        "Progress (dry run): 5 records read, 4 would be sent",
        "Summary (dry run): stream 'a' -> invoices: 3 records read, 2 would be sent in "
        "1 request, 1 rejected",
        "Summary (dry run): stream 'b' -> invoices: 2 records read, 1 would be sent in "
        "1 request, 1 not sent (already in Leanpay, or repeating an earlier record's "
        "externalId), 0 rejected",
    ]
    assert not any("acknowledged" in m for m in caplog.messages)
