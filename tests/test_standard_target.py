"""singer-sdk's standard target tests, run against target-leanpay.

These tests only check that nothing raises (and that STATE is relayed). Their records
are not invoices, so every record is rejected by the mapping and set aside in a
dead-letter file; no request is ever made (replay safety off, nothing valid to send), so
`api_url` points at a closed loopback port. What was actually sent is asserted by the
end-to-end tests.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class

from target_leanpay.target import TargetLeanpay

_DEAD_LETTERS = Path(tempfile.mkdtemp(prefix="target-leanpay-standard-")) / "rejected.jsonl"

StandardTests = get_target_test_class(
    TargetLeanpay,
    config={
        "api_key": "standard-tests-key",
        "api_url": "http://127.0.0.1:9/v1/public",
        "replay_safety": False,
        "dead_letter_path": str(_DEAD_LETTERS),
    },
)


class TestTargetLeanpayStandard(StandardTests):  # type: ignore[misc,valid-type]
    """The SDK's standard target tests."""
