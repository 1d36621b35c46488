"""One `meltano run tap-jsonl target-leanpay` end to end, as the README's demo does it, in
this project (its .meltano folder), on Meltano's own Python (tests/support/meltano.py): the
suites of the other Pythons, running side by side, leave the folder to this one."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path

from support.meltano import MELTANO, on_meltanos_python

from leanpay_standin import StandIn

ROOT = Path(__file__).resolve().parent.parent


pytestmark = on_meltanos_python


def test_meltano_run_loads_the_sample_invoices(tmp_path: Path) -> None:
    assert MELTANO is not None
    rows = [json.loads(line) for line in (ROOT / "samples/invoices.jsonl").read_text().splitlines()]
    with (ROOT / "samples/clients.csv").open() as handle:
        clients = {row["externalId"]: row["id"] for row in csv.DictReader(handle)}
    env = {
        **os.environ,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "TARGET_LEANPAY_DEAD_LETTER_PATH": str(tmp_path / "rejected.jsonl"),
        # a receipts file belongs to one tenant: not the demo's, next to meltano.yml
        "TARGET_LEANPAY_RECEIPTS_PATH": str(tmp_path / "receipts.jsonl"),
    }

    with StandIn(api_key="meltano-test-key") as leanpay:
        env["TARGET_LEANPAY_API_URL"] = leanpay.url
        env["TARGET_LEANPAY_API_KEY"] = "meltano-test-key"
        run = subprocess.run(
            [MELTANO, "run", "tap-jsonl", "target-leanpay"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        stored = leanpay.store("invoices")

    assert run.returncode == 0, run.stderr[-3000:]
    expected = [
        {
            "externalId": row["invoice_number"],
            "reference": row["invoice_number"],
            "clientId": clients[row["customer_code"]],
            "amount": int(Decimal(str(row["total_incl_tax"])) * 100),
            "netAmount": int(Decimal(str(row["total_excl_tax"])) * 100),
            "issueDate": row["invoice_date"],
            "dueDate": row["due_date"],
        }
        for row in rows
    ]
    assert [
        {key: item[key] if "Date" not in key else item[key][:10] for key in expected[0]}
        for item in stored
    ] == expected
    assert not (tmp_path / "rejected.jsonl").exists()
    receipts = [json.loads(x) for x in (tmp_path / "receipts.jsonl").read_text().splitlines()]
    assert [(r["externalId"], r["id"]) for r in receipts] == [
        (item["externalId"], item["id"]) for item in stored
    ]
    state = subprocess.run(
        [MELTANO, "--log-level=warning", "state", "get", "dev:tap-jsonl-to-target-leanpay"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    bookmarks = json.loads(state.stdout)["singer_state"]["bookmarks"]
    assert "erp_invoices" in bookmarks
    # the receipts read back by the project's tap, as a warehouse loader would get them
    invoked = subprocess.run(
        [MELTANO, "--log-level=warning", "invoke", "tap-jsonl-receipts"],
        cwd=ROOT,
        env={**env, "TAP_JSONL_RECEIPTS_PATH": str(tmp_path / "receipts.jsonl")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    messages = [json.loads(line) for line in invoked.stdout.splitlines()]
    assert [
        (m["stream"], m["record"]["resource"], m["record"]["externalId"], m["record"]["id"])
        for m in messages
        if m["type"] == "RECORD"
    ] == [("leanpay_receipts", "invoices", item["externalId"], item["id"]) for item in stored]
