"""The plan's report as a policy: counts per reason, examples, client codes, verdicts."""

from __future__ import annotations

from target_leanpay.output.deadletter import RejectedItem
from target_leanpay.output.plan import EXAMPLES, MAX_CLIENT_CODES, MAX_REASONS, Plan
from target_leanpay.output.progress import StreamStats
from target_leanpay.records.mapping import UNMAPPED_CLIENT, Problem


def item(n: int, *problems: Problem) -> RejectedItem:
    return RejectedItem("s", f"externalId 'F-{n}' (input line {n + 1})", {}, None, problems)


def stats(read: int, sent: int, present: int, rejected: int) -> dict[str, StreamStats]:
    return {
        "s": StreamStats(
            "s",
            "invoices",
            read=read,
            acknowledged=sent,
            already_present=present,
            rejected=rejected,
        )
    }


def unmapped(code: str) -> Problem:
    return Problem("clientId", f"client {code!r} (clientExternalId) {UNMAPPED_CLIENT}", code)


def test_each_problem_counts_under_its_reason_with_the_first_examples() -> None:
    plan = Plan("dead.jsonl")
    for n in range(5):
        plan.rejected(
            item(
                n,
                Problem("amount", f"must be >= 0, got -{n}", -n),
                Problem("dueDate", "is required"),
            )
        )
    lines = plan.lines(stats(5, 0, 0, 5), 0, "out.jsonl")
    assert lines[2:6] == [
        "    5 x amount: must be >= 0, got …",
        "        e.g. 0 in externalId 'F-0' (input line 1); -1 in externalId 'F-1' (input "
        "line 2); -2 in externalId 'F-2' (input line 3)",
        "    5 x dueDate: is required",
        "        e.g. externalId 'F-0' (input line 1); externalId 'F-1' (input line 2); "
        "externalId 'F-2' (input line 3)",
    ]
    assert EXAMPLES == 3


def test_reasons_beyond_the_limit_are_counted_in_one_line() -> None:
    plan = Plan(None)
    for n in range(MAX_REASONS + 2):
        plan.rejected(item(n, Problem(f"f{n}", "is required")))
    lines = plan.lines(stats(22, 0, 0, 22), 0, "out.jsonl")
    assert len(lines) == 1 + 2 * MAX_REASONS + 1 + 1
    assert lines[-1] == "    … and 2 other reasons (2 problems)"


def test_unmapped_client_codes_are_listed_most_frequent_first_then_counted() -> None:
    plan = Plan("dead.jsonl")
    for n in range(MAX_CLIENT_CODES + 3):
        plan.rejected(item(n, unmapped(f"C-{n:03d}")))
    plan.rejected(item(99, unmapped("C-050")))
    line = plan.lines(stats(54, 0, 0, 54), 0, "out.jsonl")[-1]
    assert line.startswith(
        "53 client codes with no Leanpay id in client_ids / client_ids_file: "
        "'C-050' (2 records), 'C-000' (1 record), 'C-001' (1 record), "
    )
    assert line.endswith("'C-048' (1 record) and 3 more")


def test_the_verdicts_name_the_requests_file() -> None:
    assert Plan(None).verdict(stats(4, 4, 0, 0), 1, "out.jsonl") == (
        "READY: a real run would send 4 records in 1 request; they are written to out.jsonl"
    )
    assert Plan(None).verdict(stats(4, 0, 4, 0), 0, "out.jsonl") == (
        "NOTHING NEW TO SEND: every record is already in Leanpay (4); a real run would send "
        "nothing and exit 0. The requests file out.jsonl is empty"
    )
    assert Plan(None).verdict(stats(0, 0, 0, 0), 0, "out.jsonl") == (
        "NOTHING NEW TO SEND: the input holds no record; a real run would send nothing and "
        "exit 0. The requests file out.jsonl is empty"
    )
    assert Plan("dead.jsonl").verdict(stats(4, 0, 1, 3), 0, "out.jsonl") == (
        "NOTHING NEW TO SEND: every record is already in Leanpay (1) or would be set aside "
        "(3, in dead.jsonl); a real run would send nothing and exit 0. The requests file "
        "out.jsonl is empty"
    )
    assert (
        Plan(None)
        .verdict(stats(4, 0, 1, 3), 0, "out.jsonl")
        .startswith("NOT READY: a real run would stop at the first of 3 rejected records")
    )
    assert Plan("dead.jsonl").verdict(stats(3, 0, 0, 3), 0, "out.jsonl") == (
        "NOT READY: no record could be sent (3 rejected records); fix the reasons below. "
        "The requests file out.jsonl is empty"
    )
    updating = stats(4, 0, 2, 0)
    updating["s"].updated, updating["s"].changed = 1, 1
    assert Plan(None).verdict(updating, 1, "out.jsonl") == (
        "READY: a real run would send 0 records and 1 update in 1 request; 2 already in "
        "Leanpay; 1 changed but cannot be updated (listed below); they are written to out.jsonl"
    )
