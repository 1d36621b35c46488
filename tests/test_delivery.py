"""Delivery's policy, driven through a fake Leanpay: no HTTP, no sleeps.

Each test scripts what the fake answers to each POST, delivers one chunk, and asserts on
the three things the policy decides: which records were settled (and how they were
counted), which were dead-lettered (the file's lines), and what was sent again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from target_leanpay.checkpoint import Checkpoints
from target_leanpay.client import Created
from target_leanpay.deadletter import DeadLetters
from target_leanpay.delivery import Chunk, Delivery, Pending
from target_leanpay.errors import Ambiguous, ApiError, ItemsRefused, RejectedRecord
from target_leanpay.listing import Listing
from target_leanpay.progress import Progress, StreamStats
from target_leanpay.replay import ReplayGuard
from target_leanpay.resources import CREDIT_NOTES, INVOICES, Resource

STREAM = "erp"
NO_ANSWER_WAIT = 7.0

Answer = Callable[["FakeLeanpay", list[dict[str, Any]]], list[Created] | None]
"""One scripted outcome: store what it likes in the fake tenant, then answer or raise."""


class FakeLeanpay:
    """The sender and page reader Delivery talks to, with a tenant of externalIds."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.tenant: list[str] = []
        self.posts: list[list[str]] = []
        self.listings = 0
        self.harnesses: list[Harness] = []

    def post_batch(
        self,
        resource: Resource,
        items: Sequence[dict[str, Any]],
        *,
        on_retry: Callable[[str], None] | None = None,
    ) -> list[Created] | None:
        self.posts.append([item["externalId"] for item in items])
        answer = self.script.pop(0) if self.script else stores_all
        return answer(self, list(items))

    def read_page(self, path: str, page: int) -> dict[str, Any]:
        self.listings += 1
        return {"data": [{"externalId": x} for x in self.tenant], "pageCount": 1}

    # -- outcomes -------------------------------------------------------------------

    def store(self, items: Iterable[dict[str, Any]]) -> list[Created]:
        created = [Created(id=f"id-{i['externalId']}", externalId=i["externalId"]) for i in items]
        self.tenant.extend(c.externalId for c in created if c.externalId)
        return created


def stores_all(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created]:
    """201 listing every item."""
    return leanpay.store(items)


def refuses(status: int, body: dict[str, Any] | str) -> Answer:
    """A refusal that stores nothing."""
    text = body if isinstance(body, str) else json.dumps(body)

    def answer(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created] | None:
        raise ItemsRefused(f"HTTP {status}", status=status, body=text)

    return answer


def refuses_when(bad: set[str], status: int = 400) -> Answer:
    """Refuses, naming nothing, any batch holding one of `bad`; else stores all."""

    def answer(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created] | None:
        if bad & {i["externalId"] for i in items}:
            raise ItemsRefused("HTTP 400", status=status, body='{"message": "Bad Request"}')
        return leanpay.store(items)

    return answer


def unanswered(*, stored: bool, status: int | None = None) -> Answer:
    """No answer (or a 5xx): Leanpay stored the batch, or did not."""

    def answer(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created] | None:
        if stored:
            leanpay.store(items)
        raise Ambiguous("no answer", status=status)

    return answer


class Settled(Checkpoints):
    """Checkpoints that also remember every settled sequence number, in order."""

    def __init__(self) -> None:
        super().__init__(lambda state: None)
        self.settled: list[int] = []

    def settle(self, seqs: Iterable[int]) -> None:
        seqs = list(seqs)
        self.settled.extend(seqs)
        super().settle(seqs)


class FakeTime:
    """The guard's clock: every pause is recorded and moves the clock on at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []
        self.on_pause: Callable[[], None] = lambda: None

    def clock(self) -> float:
        return self.now

    def pause(self, condition: threading.Condition, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds
        self.on_pause()

    @property
    def waited(self) -> float:
        """Seconds waited in all, to the 1/100 s (a re-listing starts a tick after its due time)."""
        return round(sum(self.pauses), 2)


class Harness:
    """One Delivery wired to the fake, a dead-letter file, and a fake clock."""

    def __init__(
        self,
        leanpay: FakeLeanpay,
        tmp_path: Path,
        *,
        resource: Resource = INVOICES,
        retries: int = 3,
        dead_letters: bool = True,
    ) -> None:
        self.checkpoints = Settled()
        self.dead_letter_path = tmp_path / "dead.jsonl"
        self.dead_letters = DeadLetters(
            str(self.dead_letter_path) if dead_letters else None, max_rejections=None
        )
        self.stats = StreamStats(STREAM, resource.name)
        self.time = FakeTime()
        self.failed = threading.Event()
        self.stopping = threading.Event()
        self.resource = resource
        listing = None
        if resource.list_path is not None:
            listing = Listing(
                resource.name,
                resource.list_path,
                leanpay.read_page,
                concurrency=2,
                stopping=self.stopping,
            )
        self.guard: ReplayGuard[Pending] = ReplayGuard(
            resource, listing, stopping=self.stopping, clock=self.time.clock, pause=self.time.pause
        )
        if listing is not None:
            self.guard.confirm_since(float("-inf"))  # the first listing, here and now
        self.delivery = Delivery(
            send=leanpay.post_batch,
            checkpoints=self.checkpoints,
            dead_letters=self.dead_letters,
            progress=Progress(),
            failed=self.failed,
            stopping=self.stopping,
            max_ambiguous_retries=retries,
            no_answer_wait=NO_ANSWER_WAIT,
            max_wait=60.0,
        )

        leanpay.harnesses.append(self)

    def close(self) -> None:
        self.dead_letters.close()
        self.guard.close()

    def chunk(self, n: int) -> Chunk:
        items = []
        for i in range(n):
            record = {"externalId": f"X{i}", "amount": i}
            seq = self.checkpoints.open()
            item = Pending(seq, record, dict(record), f"X{i}", i + 1, (), STREAM, self.stats)
            assert self.guard.claim(item.external_id or "", item) == "send"
            items.append(item)
        return Chunk(STREAM, self.resource, items, self.stats, self.guard)

    def dead_lettered(self) -> list[dict[str, Any]]:
        self.dead_letters.close()
        if not self.dead_letter_path.exists():
            return []
        return [json.loads(line) for line in self.dead_letter_path.read_text().splitlines()]

    def counts(self) -> tuple[int, int, int, int]:
        s = self.stats
        return (s.acknowledged, s.already_present, s.rejected, s.requests)


@pytest.fixture
def leanpay() -> Iterator[FakeLeanpay]:
    """The fake Leanpay of one test; every Harness built on it is closed afterwards."""
    fake = FakeLeanpay()
    yield fake
    for harness in fake.harnesses:
        harness.close()


def ids(*numbers: int) -> list[str]:
    return [f"X{n}" for n in numbers]


def test_a_2xx_listing_every_item_settles_all_once(tmp_path: Path, leanpay: FakeLeanpay) -> None:
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(5))
    assert leanpay.posts == [ids(0, 1, 2, 3, 4)]
    assert sorted(h.checkpoints.settled) == [0, 1, 2, 3, 4]
    assert h.counts() == (5, 0, 0, 1)
    assert h.dead_lettered() == []
    assert h.time.waited == 0


def test_a_2xx_listing_some_settles_those_and_sends_only_what_the_listing_lacks(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    def lists_two(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created]:
        return leanpay.store(items)[:2]  # all stored; the answer names only two

    leanpay.script = [lists_two]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(4))
    assert leanpay.posts == [ids(0, 1, 2, 3)]  # nothing sent again: the listing has them
    assert leanpay.listings == 2  # the first one, and the check
    assert sorted(h.checkpoints.settled) == [0, 1, 2, 3]
    assert h.counts() == (2, 2, 0, 1)
    assert h.dead_lettered() == []


def test_a_2xx_listing_some_of_an_unlistable_resource_stops_the_run(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [lambda fake, items: fake.store(items)[:1]]
    h = Harness(leanpay, tmp_path, resource=CREDIT_NOTES)
    with pytest.raises(ApiError, match="does not confirm 2 of the 3 items sent"):
        h.delivery.deliver(h.chunk(3))
    assert h.checkpoints.settled == [0]
    assert leanpay.posts == [ids(0, 1, 2)]


def test_a_400_naming_items_dead_letters_them_and_sends_the_rest_once(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    body = {"statusCode": 400, "message": ["invoices.1.amount must not be less than 0"]}
    leanpay.script = [refuses(400, body)]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(4))
    assert leanpay.posts == [ids(0, 1, 2, 3), ids(0, 2, 3)]
    assert sorted(h.checkpoints.settled) == [0, 1, 2, 3]
    assert h.counts() == (3, 0, 1, 2)
    (line,) = h.dead_lettered()
    assert line["record"]["externalId"] == "X1"
    assert line["reasons"] == [
        {"field": "amount", "reason": "invoices.1.amount must not be less than 0"}
    ]
    assert line["http_status"] == 400


def test_an_opaque_400_is_bisected_to_the_bad_item(tmp_path: Path, leanpay: FakeLeanpay) -> None:
    leanpay.script = [refuses_when({"X5"})] * 20
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(8))
    assert leanpay.posts == [
        ids(0, 1, 2, 3, 4, 5, 6, 7),
        ids(0, 1, 2, 3),
        ids(4, 5, 6, 7),
        ids(4, 5),
        ids(4),
        ids(5),
        ids(6, 7),
    ]
    assert sorted(h.checkpoints.settled) == list(range(8))
    assert h.counts() == (7, 0, 1, 7)
    (line,) = h.dead_lettered()
    assert line["record"]["externalId"] == "X5"
    assert line["reasons"][0]["reason"].startswith("refused by Leanpay: HTTP 400")


def test_a_refusal_of_every_item_alike_is_about_the_request_and_stops_the_run(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [refuses(400, {"message": "API version no longer supported"})] * 10
    h = Harness(leanpay, tmp_path)
    with pytest.raises(ApiError, match="refusal of the request, not of the records"):
        h.delivery.deliver(h.chunk(4))
    assert len(leanpay.posts) == 7  # 4 items bisected to single ones: 2*4 - 1
    assert h.checkpoints.settled == []
    assert h.dead_lettered() == []


def test_a_409_naming_an_item_dead_letters_it_and_loads_the_rest(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    body = {"statusCode": 409, "message": ["invoices.0.externalId already exists"]}
    leanpay.script = [refuses(409, body)]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(3))
    assert leanpay.posts == [ids(0, 1, 2), ids(1, 2)]
    assert h.counts() == (2, 0, 1, 2)
    (line,) = h.dead_lettered()
    assert (line["record"]["externalId"], line["http_status"]) == ("X0", 409)


def test_a_timeout_after_leanpay_stored_the_batch_settles_it_without_sending_again(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [unanswered(stored=True)]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(3))
    assert leanpay.posts == [ids(0, 1, 2)]
    assert h.time.waited == NO_ANSWER_WAIT  # Leanpay may still be working: wait, then look
    assert leanpay.listings == 2
    assert sorted(h.checkpoints.settled) == [0, 1, 2]
    assert h.counts() == (0, 3, 0, 1)


def test_a_timeout_before_leanpay_stored_the_batch_sends_it_again_once(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [unanswered(stored=False)]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(3))
    assert leanpay.posts == [ids(0, 1, 2), ids(0, 1, 2)]
    assert h.time.waited == NO_ANSWER_WAIT
    assert sorted(h.checkpoints.settled) == [0, 1, 2]
    assert h.counts() == (3, 0, 0, 2)


def test_a_5xx_that_stored_half_the_batch_sends_only_the_other_half(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    def half_then_500(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created] | None:
        leanpay.store(items[:2])
        raise Ambiguous("HTTP 500", status=500, body="{}", answered=True)

    leanpay.script = [half_then_500]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(4))
    assert h.time.waited == 0  # Leanpay answered: the request is over, check at once
    assert leanpay.listings == 2
    assert leanpay.posts == [ids(0, 1, 2, 3), ids(2, 3)]
    assert sorted(h.checkpoints.settled) == [0, 1, 2, 3]
    assert h.counts() == (2, 2, 0, 2)
    assert leanpay.tenant == ids(0, 1, 2, 3)


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"), [(None, NO_ANSWER_WAIT), (3.0, 3.0), (600.0, 60.0)]
)
def test_a_gateways_502_waits_for_leanpay_before_checking(
    tmp_path: Path, leanpay: FakeLeanpay, retry_after: float | None, expected_wait: float
) -> None:
    def stored_then_502(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created]:
        leanpay.store(items)
        raise Ambiguous("HTTP 502", status=502, retry_after=retry_after)

    leanpay.script = [stored_then_502]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(2))
    assert h.time.waited == expected_wait  # Retry-After is honoured, capped by max_wait
    assert leanpay.posts == [ids(0, 1)]
    assert h.counts() == (0, 2, 0, 1)


def test_ambiguity_past_the_retry_budget_stops_the_run_with_nothing_settled(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [unanswered(stored=False)] * 3
    h = Harness(leanpay, tmp_path, retries=2)
    with pytest.raises(Ambiguous, match="batch of 2 invoices"):
        h.delivery.deliver(h.chunk(2))
    assert len(leanpay.posts) == 3
    assert h.checkpoints.settled == []


def test_an_unlistable_resource_is_sent_again_after_an_ambiguous_answer(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [unanswered(stored=True)]
    h = Harness(leanpay, tmp_path, resource=CREDIT_NOTES)
    h.delivery.deliver(h.chunk(2))
    assert leanpay.posts == [ids(0, 1), ids(0, 1)]  # no list to check: at least once
    assert h.time.waited == NO_ANSWER_WAIT
    assert leanpay.listings == 0
    assert h.counts() == (2, 0, 0, 2)


def test_items_leanpay_already_holds_are_settled_as_present_and_not_sent(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.tenant = ids(1, 3)
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(4))
    assert leanpay.posts == [ids(0, 2)]
    assert sorted(h.checkpoints.settled) == [0, 1, 2, 3]
    assert h.counts() == (2, 2, 0, 1)


def test_without_a_dead_letter_file_a_refusal_stops_the_run_with_the_record_unsettled(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [refuses(422, {"message": ["invoices.0.reference is too long"]})]
    h = Harness(leanpay, tmp_path, dead_letters=False)
    with pytest.raises(RejectedRecord, match=r"invoices\.0\.reference is too long"):
        h.delivery.deliver(h.chunk(2))
    assert h.checkpoints.settled == []


def test_once_another_chunk_failed_nothing_more_is_sent(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    h = Harness(leanpay, tmp_path)
    h.failed.set()
    h.delivery.deliver(h.chunk(2))
    assert leanpay.posts == []
    assert h.checkpoints.settled == []


def test_a_stop_during_the_wait_gives_up_without_sending_again(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [unanswered(stored=False)]
    h = Harness(leanpay, tmp_path)
    h.time.on_pause = h.stopping.set  # a signal arrives during the wait
    with pytest.raises(Ambiguous):
        h.delivery.deliver(h.chunk(2))
    assert leanpay.posts == [ids(0, 1)]
    assert 0 < h.time.waited < NO_ANSWER_WAIT
    assert leanpay.listings == 1  # no re-listing either
    assert h.checkpoints.settled == []


def test_a_stopped_run_gives_up_on_an_ambiguous_batch_without_waiting(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [unanswered(stored=False)]
    h = Harness(leanpay, tmp_path)
    h.stopping.set()
    with pytest.raises(Ambiguous):
        h.delivery.deliver(h.chunk(2))
    assert leanpay.posts == [ids(0, 1)]
    assert h.time.waited == 0


def twin_of(h: Harness, item: Pending) -> Pending:
    """A later record with the same externalId, parked behind `item` as the sink does."""
    twin = Pending(
        h.checkpoints.open(), dict(item.record), dict(item.payload), item.external_id,
        item.line + 100, (), STREAM, h.stats,
    )  # fmt: skip
    assert h.guard.claim(item.external_id or "", twin) == "parked"
    return twin


def test_a_parked_twin_is_settled_as_present_when_its_claimant_is_acknowledged(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    h = Harness(leanpay, tmp_path)
    chunk = h.chunk(2)
    twin = twin_of(h, chunk.items[1])
    h.delivery.deliver(chunk)
    assert leanpay.posts == [ids(0, 1)]
    assert sorted(h.checkpoints.settled) == [0, 1, twin.seq]
    assert h.counts() == (2, 1, 0, 1)


def test_a_parked_twin_is_dead_lettered_when_its_claimant_is_refused(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    body = {"message": ["invoices.1.clientId must be a UUID"]}
    leanpay.script = [refuses(400, body)]
    h = Harness(leanpay, tmp_path)
    chunk = h.chunk(2)
    twin = twin_of(h, chunk.items[1])
    h.delivery.deliver(chunk)
    assert sorted(h.checkpoints.settled) == [0, 1, twin.seq]
    lines = h.dead_lettered()
    assert [line["record_id"] for line in lines] == [
        "externalId 'X1' (input line 2)",
        "externalId 'X1' (input line 102)",
    ]
    assert "which Leanpay refused" in lines[1]["reasons"][0]["reason"]
