"""Twins and reference waits, alone: no listing, no Leanpay."""

from __future__ import annotations

import threading

import pytest
from conftest import wait_for

from target_leanpay.leanpay.errors import Stopped
from target_leanpay.listings.twins import Twins


@pytest.fixture
def twins() -> Twins[str]:
    return Twins("invoices", stopping=threading.Event())


def test_the_first_record_is_sent_and_its_twins_wait_for_its_outcome(twins: Twins[str]) -> None:
    assert twins.claim("INV-1", "first") == "send"
    assert twins.claim("INV-1", "second") == "parked"
    assert twins.claim("INV-1", "third") == "parked"
    assert twins.claim("INV-2", "other") == "send"
    assert twins.release(["INV-1", "INV-9"]) == ["second", "third"]
    assert twins.release(["INV-2"]) == []
    assert twins.claim("INV-1", "later") == "send"  # settled: a new claim


@pytest.mark.parametrize("uncertain", [False, True])
def test_a_refused_or_uncertain_claimant_hands_its_fate_to_its_twins(
    twins: Twins[str], uncertain: bool
) -> None:
    twins.claim("INV-1", "first")
    twins.claim("INV-1", "second")
    assert twins.refused("INV-1", uncertain=uncertain) == ["second"]
    assert twins.fate("INV-1") == ("uncertain" if uncertain else "refused")
    assert twins.fate("INV-2") is None
    assert twins.seen("INV-1") and not twins.seen("INV-2")


def test_a_reference_waits_until_the_claim_is_settled(twins: Twins[str]) -> None:
    twins.claim("INV-1", "first")
    settled = threading.Event()
    waiter = threading.Thread(target=lambda: (twins.wait_settled("INV-1"), settled.set()))
    waiter.start()
    wait_for(waiter.is_alive)
    assert not settled.is_set()
    twins.release(["INV-1"])
    waiter.join(5)
    assert settled.is_set()
    twins.wait_settled("INV-unclaimed")  # nothing on its way: returns at once


def test_a_reference_waiting_gives_up_when_the_run_stops() -> None:
    stopping = threading.Event()
    twins: Twins[str] = Twins("invoices", stopping=stopping)
    twins.claim("INV-1", "first")
    stopping.set()
    with pytest.raises(Stopped, match="invoices not resolved"):
        twins.wait_settled("INV-1")
