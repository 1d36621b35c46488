"""The lock beside the tenant index: a second holder waits, saying so once; a tenant that
lists nothing yet holds its host; a stop ends the wait."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from conftest import wait_for

from target_leanpay.leanpay.errors import Stopped
from target_leanpay.store.store import TenantKey
from target_leanpay.store.tenant_lock import TenantLock

T1 = TenantKey("api.leanpay.fr", "t1")
T2 = TenantKey("api.leanpay.fr", "t2")


def lock(tmp_path: Path, stopping: threading.Event | None = None) -> TenantLock:
    return TenantLock(tmp_path, "api.leanpay.fr", stopping=stopping or threading.Event())


def waiting_for(first: TenantLock, take: object, caplog: pytest.LogCaptureFixture) -> list[bool]:
    """Run `take` in a thread; once it logged that it waits, release `first`."""
    got: list[bool] = []
    thread = threading.Thread(target=lambda: got.append(take()))  # type: ignore[operator]
    thread.start()
    wait_for(lambda: "Another target-leanpay run is loading" in caplog.text)
    assert got == []
    first.release()
    thread.join(5)
    return got


def test_a_second_run_on_the_tenant_waits_for_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first, second = lock(tmp_path), lock(tmp_path)
    assert first.hold_tenant(T1) is False
    other = lock(tmp_path)
    assert other.hold_tenant(T2) is False  # another tenant: no wait
    assert waiting_for(first, lambda: second.hold_tenant(T1), caplog) == [True]
    assert caplog.text.count("Another target-leanpay run is loading this Leanpay tenant") == 1
    second.release()
    other.release()


def test_a_run_into_an_empty_tenant_holds_the_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    empty, named = lock(tmp_path), lock(tmp_path)
    assert empty.hold_new_tenant() is False
    assert waiting_for(empty, lambda: named.hold_tenant(T1), caplog) == [True]
    assert "a new Leanpay tenant of this host" in caplog.text
    named.release()


def test_a_stop_ends_the_wait(tmp_path: Path) -> None:
    stopping = threading.Event()
    first = lock(tmp_path)
    first.hold_tenant(T1)
    stopping.set()
    second = lock(tmp_path, stopping)
    with pytest.raises(Stopped, match="waiting for another run"):
        second.hold_tenant(T1)
    second.release()
    first.release()
