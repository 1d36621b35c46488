"""The rule that names the day of an echoed date-time (date_zone.py), with fakes for the
store's facts and the listing's tenant."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from target_leanpay.leanpay.client import Created
from target_leanpay.records.resources import INVOICES
from target_leanpay.store import changes, date_zone
from target_leanpay.store.date_zone import DateZones, choose, compared, same_day
from target_leanpay.store.store import TenantKey

URL = "https://api.leanpay.test/v1/public"
PARIS_WINTER = ("2024-03-05", "2024-03-04T23:00:00Z")
PARIS_SUMMER = ("2024-07-05", "2024-07-04T22:00:00Z")


class FakeFacts:
    def __init__(self, **kept: str) -> None:
        self.facts = {(TenantKey.of(URL, t), date_zone.FACT): z for t, z in kept.items()}
        self.reads = 0
        self.writes: list[tuple[str, str]] = []

    def fact(self, key: TenantKey, name: str) -> str | None:
        self.reads += 1
        return self.facts.get((key, name))

    def keep_fact(self, key: TenantKey, name: str, value: str) -> None:
        self.facts[(key, name)] = value
        self.writes.append((key.tenant_id, value))


def answer(
    *echoes: tuple[str, str], field: str = "issueDate"
) -> tuple[list[Created], dict[str, dict[str, Any]]]:
    """A batch of one invoice per (day sent, echo), as sent by externalId, and Leanpay's
    answer."""
    sent = {f"INV-{n}": {"externalId": f"INV-{n}", field: day} for n, (day, _) in enumerate(echoes)}
    created = [Created(externalId=f"INV-{n}", **{field: e}) for n, (_, e) in enumerate(echoes)]
    return created, sent


def zones(facts: FakeFacts | None, tenant: str | None = "t-1", writes: bool = True) -> DateZones:
    return DateZones(facts, URL, lambda: tenant, writes=writes)


# -- the forms dates compare in -----------------------------------------------------------


@pytest.mark.parametrize(
    ("echo", "form"),
    [
        ("2024-03-05", "2024-03-05"),
        ("2024-03-05T00:00:00Z", "2024-03-05"),
        ("2024-03-05T00:00:00.000Z", "2024-03-05"),
        ("2024-03-05T01:00:00+01:00", "2024-03-05"),  # UTC midnight
        ("2024-03-05T10:00:00", "2024-03-05"),  # no offset: the day as written
        ("2024-03-04T23:00:00.000Z", "2024-03-04T23:00:00Z"),
        ("2024-03-05T00:00:00+01:00", "2024-03-04T23:00:00Z"),
        ("2023-11-07T05:31:56.250Z", "2023-11-07T05:31:56.250000Z"),
        ("not a date", "not a date"),
    ],
)
def test_an_echo_compares_as_a_day_or_as_its_instant_in_utc(echo: str, form: str) -> None:
    assert compared(echo) == form


# -- which zone the echoes show -----------------------------------------------------------


def test_candidates_are_utc_then_paris_then_the_rest_sorted() -> None:
    found = date_zone.candidates()
    assert found[:2] == ("UTC", "Europe/Paris")
    assert list(found[2:]) == sorted(found[2:]) and "America/New_York" in found


def test_winter_and_summer_echoes_show_paris_not_an_offset() -> None:
    echoes = [PARIS_WINTER, PARIS_SUMMER]
    assert choose([(d, compared(e)) for d, e in echoes], None) == "Europe/Paris"
    assert choose([("2024-03-05", "2024-03-05")], None) == "UTC"
    new_york = [("2024-01-05", "2024-01-05T05:00:00Z"), ("2024-07-05", "2024-07-05T04:00:00Z")]
    # the first zone by name with those midnights (Detroit keeps New York's clock)
    assert choose(new_york, None) == "America/Detroit"


def test_a_kept_zone_stays_while_it_explains_the_echoes() -> None:
    echoes = [(d, compared(e)) for d, e in (PARIS_WINTER, PARIS_SUMMER)]
    assert choose(echoes, "Europe/Berlin") == "Europe/Berlin"  # the same midnights
    assert choose(echoes, "UTC") == "Europe/Paris"  # contradicted: the first that explains
    assert choose([], "Europe/Berlin") == "Europe/Berlin"


def test_echoes_no_zone_explains_teach_nothing() -> None:
    assert choose([("2023-11-07", "2023-11-07T05:31:56Z")], None) is None
    assert choose([PARIS_WINTER, ("2024-03-06", "2024-03-06T00:00:00Z")], None) is None


# -- the comparison -----------------------------------------------------------------------


def test_until_a_zone_is_known_what_utc_or_paris_explains_cannot_tell() -> None:
    held = compared(PARIS_SUMMER[1])  # Paris: 07-05, UTC: 07-04
    assert same_day(held, "2024-07-05", None) and same_day(held, "2024-07-04", None)
    assert not same_day(held, "2024-07-06", None)
    assert not same_day(held, "2024-07-04", "Europe/Paris")
    assert same_day(held, "2024-07-05", "Europe/Paris")
    assert not same_day("2024-07-05", "2024-07-06", None)  # days are compared as days


def test_differences_read_a_held_instant_in_the_zone() -> None:
    held = {"issueDate": "2024-03-04T23:00:00.000Z", "dueDate": "2024-03-31T22:00:00.000Z"}
    wire = {"issueDate": "2024-03-05", "dueDate": "2024-04-01"}
    found = changes.differences(INVOICES, held, wire, "Europe/Paris")
    assert found == []
    moved = changes.differences(INVOICES, held, {**wire, "issueDate": "2024-03-04"}, "Europe/Paris")
    assert moved == [changes.Change("issueDate", "2024-03-05", "2024-03-04")]
    unknown = changes.differences(INVOICES, held, {**wire, "issueDate": "2024-03-07"})
    assert unknown == [changes.Change("issueDate", "2024-03-04T23:00:00Z", "2024-03-07")]
    assert changes.differences(INVOICES, held, {**wire, "issueDate": "2024-03-04"}) == []


# -- learning and keeping -----------------------------------------------------------------


def test_a_zone_learned_from_an_answer_is_kept_as_a_fact() -> None:
    facts = FakeFacts()
    known = zones(facts)
    assert known.zone() is None
    known.learn("t-1", *answer(PARIS_WINTER, PARIS_SUMMER))
    assert known.zone() == "Europe/Paris"
    assert facts.writes == [("t-1", "Europe/Paris")]
    known.learn("t-1", *answer(PARIS_SUMMER))  # consistent: nothing written again
    assert facts.writes == [("t-1", "Europe/Paris")]
    assert zones(facts).zone() == "Europe/Paris"  # a later run reads it


def test_the_fact_is_read_once_per_tenant() -> None:
    facts = FakeFacts(**{"t-1": "Europe/Paris"})
    known = zones(facts)
    assert [known.zone(), known.zone(), known.zone("t-2")] == ["Europe/Paris", "Europe/Paris", None]
    assert facts.reads == 2


def test_an_echo_contradicting_the_kept_zone_is_logged_once_and_replaces_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    facts = FakeFacts(**{"t-1": "UTC"})
    known = zones(facts)
    with caplog.at_level(logging.WARNING, logger="target-leanpay"):
        known.learn(None, *answer(PARIS_WINTER, PARIS_SUMMER))  # tenant from the listing
        known.learn("t-1", *answer(PARIS_SUMMER))
    assert known.zone() == "Europe/Paris"
    assert facts.writes == [("t-1", "Europe/Paris")]
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "Leanpay echoed 2024-03-05 as 2024-03-04T23:00:00Z, which is not midnight in UTC, "
        "the time zone learned for its dates so far: its dates are now read in Europe/Paris"
    ]


def test_what_shows_no_zone_teaches_nothing() -> None:
    facts = FakeFacts()
    known = zones(facts)
    days: Any = answer(("2024-03-05", "2024-03-05"))  # echoed as a day
    known.learn("t-1", *days)
    created, items = answer(("2024-03-05", "2024-03-05T00:00:00"))  # no offset
    known.learn("t-1", created, items)
    other, _ = answer(PARIS_WINTER)
    known.learn("t-1", [Created(externalId="not-sent", issueDate=other[0].issueDate)], items)
    assert known.zone() is None and facts.writes == []


def test_sentdate_and_duedate_echoes_count_too() -> None:
    known = zones(FakeFacts())
    known.learn("t-1", *answer(PARIS_SUMMER, field="dueDate"))
    assert known.zone() == "Europe/Paris"


def test_a_plan_learns_for_the_run_but_keeps_nothing() -> None:
    facts = FakeFacts()
    known = zones(facts, writes=False)
    known.learn("t-1", *answer(PARIS_WINTER))
    assert known.zone() == "Europe/Paris" and facts.writes == []


def test_without_a_tenant_or_a_store_the_zone_lives_for_the_run() -> None:
    known = zones(None, tenant=None)
    known.learn(None, *answer(PARIS_WINTER))
    assert known.zone() == "Europe/Paris"
