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

from target_leanpay.leanpay.client import Created
from target_leanpay.leanpay.errors import Ambiguous, ApiError, ItemsRefused, RejectedRecord
from target_leanpay.listings.listing import Listing
from target_leanpay.listings.replay import ReplayGuard
from target_leanpay.output.checkpoint import Checkpoints
from target_leanpay.output.deadletter import DeadLetters
from target_leanpay.output.progress import Progress, StreamStats
from target_leanpay.output.runmark import RunMark
from target_leanpay.records.mapping import Reference
from target_leanpay.records.resources import CREDIT_NOTES, INVOICES, LINKS, PAYBACKS, Resource
from target_leanpay.sending.delivery import Chunk, Delivery, Pending
from target_leanpay.sending.references import References
from target_leanpay.sending.updates import Updates
from target_leanpay.store import changes
from target_leanpay.store.folder_promises import FolderPromises

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
        self.bodies: list[list[dict[str, Any]]] = []
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
        self.bodies.append([dict(item) for item in items])
        answer = self.script.pop(0) if self.script else stores_all
        return answer(self, list(items))

    def read_page(self, path: str, page: int) -> dict[str, Any]:
        self.listings += 1
        return {"data": [{"externalId": x, "id": f"id-{x}"} for x in self.tenant], "pageCount": 1}

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
        receipts: bool = False,
        puts: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        """`puts`: changed items are sorted out (updates.py), their PUTs appended there."""
        self.leanpay = leanpay
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
        self.receipts_path = tmp_path / "receipts.jsonl"
        self.receipts = FolderPromises(
            tmp_path / "store",
            "leanpay.test",
            writable=True,
            run=RunMark.new(),
            export=str(self.receipts_path) if receipts else None,
        )
        self.guards: dict[str, ReplayGuard[Pending]] = {}
        self.guard = self.guard_for(resource)
        self.delivery = Delivery(
            send=leanpay.post_batch,
            checkpoints=self.checkpoints,
            dead_letters=self.dead_letters,
            progress=Progress(),
            references=References(self.guard_for, dry_run=False),
            promises=self.receipts,
            failed=self.failed,
            stopping=self.stopping,
            max_ambiguous_retries=retries,
            no_answer_wait=NO_ANSWER_WAIT,
            max_wait=60.0,
            updates=None
            if puts is None
            else Updates(
                put=lambda path, body, on_retry=None: puts.append((path, body)),
                dead_letters=self.dead_letters,
                receipts=self.receipts,
            ),
        )

        leanpay.harnesses.append(self)

    def guard_for(self, resource: Resource) -> ReplayGuard[Pending]:
        """The guard of `resource`: invoices listed from the fake tenant, here and now."""
        guard = self.guards.get(resource.name)
        if guard is None:
            listing = None
            if resource.list_path is not None:
                listing = Listing(
                    resource.name,
                    resource.list_path,
                    self.leanpay.read_page,
                    concurrency=2,
                    stopping=self.stopping,
                )
            guard = self.guards[resource.name] = ReplayGuard(
                resource,
                listing,
                stopping=self.stopping,
                clock=self.time.clock,
                pause=self.time.pause,
            )
            guard.learn(self.receipts.earlier(resource.name))
            if listing is not None:
                guard.confirm_since(float("-inf"))  # the first listing
        return guard

    def close(self) -> None:
        self.dead_letters.close()
        self.receipts.close()
        for guard in self.guards.values():
            guard.close()

    def chunk(self, n: int) -> Chunk:
        return self.chunk_of([{"externalId": f"X{i}", "amount": i} for i in range(n)])

    def chunk_of(self, payloads: list[dict[str, Any]]) -> Chunk:
        """A chunk of these payloads (each also the record), claimed as the sink does."""
        items = []
        for line, payload in enumerate(payloads, 1):
            seq = self.checkpoints.open()
            external_id = payload.get("externalId")
            item = Pending(seq, payload, dict(payload), external_id, line, (), STREAM, self.stats)
            if external_id is not None:
                assert self.guard.twins.claim(external_id, item, _same) == "send"
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


def stores_before(index: int) -> Answer:
    """An import without a transaction: the items before `index` are stored, then a 400
    names that one."""

    def answer(leanpay: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created] | None:
        leanpay.store(items[:index])
        body = json.dumps({"message": [f"invoices.{index}.reference already used"]})
        raise ItemsRefused("HTTP 400", status=400, body=body)

    return answer


def test_a_partial_refusal_is_listed_before_the_rest_is_sent_again(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [stores_before(2)]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(5))
    assert leanpay.posts == [ids(0, 1, 2, 3, 4), ids(3, 4)]  # not X0 and X1, kept
    assert leanpay.tenant == ["X0", "X1", "X3", "X4"]
    assert sorted(h.checkpoints.settled) == [0, 1, 2, 3, 4]
    (line,) = h.dead_lettered()
    assert line["record"]["externalId"] == "X2"


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


def test_an_unlistable_resource_is_set_aside_not_sent_again_after_an_ambiguous_answer(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [unanswered(stored=True)]
    h = Harness(leanpay, tmp_path, resource=CREDIT_NOTES)
    chunk = h.chunk(2)
    twin = twin_of(h, chunk.items[1])
    h.delivery.deliver(chunk)
    assert leanpay.posts == [ids(0, 1)]  # never sent again: it could be stored twice
    assert leanpay.listings == 0
    assert h.counts() == (0, 0, 3, 1)
    assert sorted(h.checkpoints.settled) == [0, 1, twin.seq]
    lines = h.dead_lettered()
    assert [line["record_id"] for line in lines] == [
        "externalId 'X0' (input line 1)",
        "externalId 'X1' (input line 2)",
        "externalId 'X1' (input line 102)",
    ]
    assert lines[0]["reasons"][0]["reason"].startswith("Leanpay may have stored it: ")
    assert "load it again only if it is missing" in lines[0]["reasons"][0]["reason"]
    assert h.guard.twins.fate("X0") == "uncertain"


def test_a_reference_to_a_set_aside_object_says_its_id_is_unknown(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    h = Harness(leanpay, tmp_path, resource=LINKS)
    credit_notes = h.guard_for(CREDIT_NOTES)
    assert credit_notes.twins.claim("CN-1", "the credit note record", _same) == "send"
    credit_notes.twins.refused("CN-1", uncertain=True)
    leanpay.tenant = ["INV-1"]
    h.delivery.deliver(h.chunk_of([link(1, "INV-1", "CN-1")]))
    assert leanpay.posts == []
    (line,) = h.dead_lettered()
    assert line["reasons"][0]["reason"] == (
        "credit_notes with externalId 'CN-1' may be in Leanpay, but the answer that would "
        "have given its id was lost; give its Leanpay id instead"
    )


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
    assert h.guard.twins.claim(item.external_id or "", twin, _same) == "parked"
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


# -- references, receipts, 409 -------------------------------------------------------------


def link(number: int, invoice: str, credit_note: str) -> dict[str, Any]:
    return {
        "externalId": f"L{number}",
        "invoiceId": Reference("invoices", invoice),
        "creditNoteId": Reference("credit_notes", credit_note),
        "amount": 100,
        "date": "2024-05-01",
    }


def test_references_resolve_from_the_listing_and_from_receipts_and_are_sent_as_ids(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.tenant = ["INV-1", "INV-2"]
    (tmp_path / "receipts.jsonl").write_text(
        '{"resource":"credit_notes","externalId":"CN-9","id":"cn-uuid-9","stream":"cn",'
        '"run_started":"2026-01-01T00:00:00+00:00"}\n'
    )
    h = Harness(leanpay, tmp_path, resource=LINKS, receipts=True)
    h.delivery.deliver(h.chunk_of([link(1, "INV-2", "CN-9")]))
    (sent,) = leanpay.bodies
    assert sent[0]["invoiceId"] == "id-INV-2" and sent[0]["creditNoteId"] == "cn-uuid-9"
    assert h.counts() == (1, 0, 0, 1)


def test_an_unresolvable_reference_is_dead_lettered_with_its_reason_and_nothing_else_waits(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.tenant = ["INV-1"]
    h = Harness(leanpay, tmp_path, resource=LINKS)
    h.guard_for(CREDIT_NOTES).acknowledged([("CN-1", "cn-uuid-1")])  # created by this run
    h.delivery.deliver(h.chunk_of([link(1, "INV-404", "CN-1"), link(2, "INV-1", "CN-1")]))
    assert [[i["externalId"] for i in body] for body in leanpay.bodies] == [["L2"]]
    (line,) = h.dead_lettered()
    assert line["record_id"] == "externalId 'L1' (input line 1)"
    assert line["reasons"] == [
        {
            "field": "invoiceId",
            "reason": "no invoices with externalId 'INV-404' is known to Leanpay (not listed "
            "by Leanpay, nor loaded from this input)",
        }
    ]
    assert line["payload"]["invoiceId"] == {"resource": "invoices", "externalId": "INV-404"}
    assert h.stats.unresolved == 1
    assert sorted(h.checkpoints.settled) == [0, 1]


def test_a_reference_to_a_refused_object_is_rejected_too(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    h = Harness(leanpay, tmp_path, resource=LINKS)
    credit_notes = h.guard_for(CREDIT_NOTES)
    assert credit_notes.twins.claim("CN-1", "the credit note record", _same) == "send"
    credit_notes.twins.refused("CN-1")
    leanpay.tenant = ["INV-1"]
    h.delivery.deliver(h.chunk_of([link(1, "INV-1", "CN-1")]))
    assert leanpay.posts == []
    (line,) = h.dead_lettered()
    assert line["reasons"][0]["reason"] == (
        "credit_notes with externalId 'CN-1' was refused by Leanpay in this run"
    )


def test_a_reference_waits_for_the_object_this_run_is_sending(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    h = Harness(leanpay, tmp_path, resource=LINKS)
    leanpay.tenant = ["INV-1"]
    credit_notes = h.guard_for(CREDIT_NOTES)
    assert credit_notes.twins.claim("CN-7", "the credit note record", _same) == "send"
    acknowledge = threading.Timer(0.05, credit_notes.acknowledged, [[("CN-7", "cn-uuid-7")]])
    acknowledge.start()  # the credit note's own chunk, in another sending thread
    h.delivery.deliver(h.chunk_of([link(1, "INV-1", "CN-7")]))
    acknowledge.join()
    assert leanpay.bodies[0][0]["creditNoteId"] == "cn-uuid-7"


def test_receipts_of_an_acknowledged_batch_are_in_the_store_and_export_before_its_checkpoint(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    h = Harness(leanpay, tmp_path, resource=CREDIT_NOTES, receipts=True)
    store = Path(h.receipts.where)
    on_disk_at_settle: list[tuple[int, int]] = []
    settle = h.checkpoints.settle

    def settle_and_look(seqs: Iterable[int]) -> None:
        exported = h.receipts_path.read_text().splitlines()
        on_disk_at_settle.append((len(store.read_text().splitlines()), len(exported)))
        settle(seqs)

    h.checkpoints.settle = settle_and_look  # type: ignore[method-assign]
    h.delivery.deliver(h.chunk(3))
    assert on_disk_at_settle == [(3, 3)]
    assert store.read_bytes() == h.receipts_path.read_bytes()  # the export: the same lines
    lines = [json.loads(x) for x in store.read_text().splitlines()]
    assert [(r["resource"], r["externalId"], r["id"], r["stream"]) for r in lines] == [
        ("credit_notes", f"X{i}", f"id-X{i}", STREAM) for i in range(3)
    ]


def test_an_external_id_in_the_receipts_is_never_sent_again(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    (tmp_path / "receipts.jsonl").write_text(
        '{"resource":"credit_notes","externalId":"X1","id":"cn-1","stream":"s",'
        '"run_started":"2026-01-01T00:00:00+00:00"}\n'
    )
    h = Harness(leanpay, tmp_path, resource=CREDIT_NOTES, receipts=True)
    h.delivery.deliver(h.chunk(3))
    assert leanpay.posts == [ids(0, 2)]
    assert h.counts() == (2, 1, 0, 1)


def test_a_409_for_an_item_leanpay_is_known_to_hold_is_already_present(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    body = {"statusCode": 409, "message": ["invoices.1.externalId already exists"]}

    def stored_meanwhile(fake: FakeLeanpay, items: list[dict[str, Any]]) -> list[Created]:
        h.guard.acknowledged([("X1", "id-X1")])  # e.g. a twin's request that was answered
        raise ItemsRefused("HTTP 409", status=409, body=json.dumps(body))

    leanpay.script = [stored_meanwhile]
    h = Harness(leanpay, tmp_path)
    h.delivery.deliver(h.chunk(3))
    assert h.counts() == (2, 1, 0, 2)
    assert h.dead_lettered() == []


def test_a_409_for_an_item_not_known_to_be_held_says_leanpay_reports_it_exists(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    leanpay.script = [refuses(409, {"message": "Conflict"})] * 10  # opaque: bisected
    h = Harness(leanpay, tmp_path, resource=CREDIT_NOTES)
    h.delivery.deliver(h.chunk(2))  # every item refused alike: still not a request refusal
    lines = h.dead_lettered()
    assert [line["record"]["externalId"] for line in lines] == ["X0", "X1"]
    assert lines[0]["reasons"][0]["reason"].startswith(
        "Leanpay reports it already exists: refused by Leanpay: HTTP 409"
    )


def test_a_held_item_that_changed_is_reported_and_settled_and_only_the_rest_is_sent(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    h = Harness(leanpay, tmp_path, resource=CREDIT_NOTES, puts=[])
    h.guard.learn([
        ("X0", "id-X0", changes.encode({"amount": 0})),
        ("X1", "id-X1", changes.encode({"amount": 1})),
    ])  # fmt: skip
    h.delivery.deliver(h.chunk_of([{"externalId": f"X{n}", "amount": n * 5} for n in range(3)]))

    assert leanpay.posts == [["X2"]]
    assert (h.stats.already_present, h.stats.changed, h.stats.acknowledged) == (1, 1, 1)
    assert sorted(h.checkpoints.settled) == [0, 1, 2]
    (line,) = h.dead_lettered()
    assert line["changes"] == [{"field": "amount", "leanpay": 1, "source": 5}]
    assert h.stats.rejected == 0


def test_a_payback_updated_by_this_run_and_read_again_is_not_put_twice(
    tmp_path: Path, leanpay: FakeLeanpay
) -> None:
    puts: list[tuple[str, dict[str, Any]]] = []
    h = Harness(leanpay, tmp_path, resource=PAYBACKS, puts=puts)
    h.guard.learn([("P1", "id-P1", changes.encode({"amount": 50, "date": "2024-03-12"}))])
    changed = {"externalId": "P1", "amount": 75, "date": "2024-03-12"}

    h.delivery.deliver(h.chunk_of([changed]))
    h.delivery.deliver(h.chunk_of([changed]))  # the same record, read again later
    h.delivery.deliver(h.chunk_of([{**changed, "amount": 80}]))  # and changed again

    assert puts == [("/paybacks/id-P1", {"amount": 75, "date": "2024-03-12", "externalId": "P1"})]
    assert (h.stats.updated, h.stats.already_present, h.stats.rejected) == (1, 1, 1)
    (line,) = h.dead_lettered()
    assert "repeats externalId 'P1'" in line["reasons"][0]["reason"]
    assert leanpay.posts == []


def _same(first: Any, later: Any) -> bool:
    """Twins share a fate when they say the same (as the sink decides)."""
    return bool(getattr(first, "payload", first) == getattr(later, "payload", later))
