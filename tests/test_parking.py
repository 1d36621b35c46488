"""Parking (parking.py) driven alone: records wait for the documents they name, are
released in read order once nothing else is missing, and past the constant wait on disk."""

from __future__ import annotations

from decimal import Decimal

from target_leanpay.output.progress import StreamStats
from target_leanpay.records.mapping import Reference
from target_leanpay.sending.items import Pending
from target_leanpay.sending.parking import PARKED_IN_MEMORY, Parking
from target_leanpay.source.batch_files import Place

STATS = StreamStats("links-stream", "links")


def link(seq: int, invoice: str, credit_note: str = "CN-1") -> Pending:
    payload = {
        "externalId": f"L{seq}",
        "invoiceId": Reference("invoices", invoice),
        "creditNoteId": Reference("credit_notes", credit_note),
        "amount": Decimal("12.50"),
    }
    line = Place(seq + 1, "batch-1.jsonl", seq) if seq % 2 else seq + 1
    record = {"externalId": f"L{seq}", "invoiceExternalId": invoice}
    return Pending(seq, record, payload, f"L{seq}", line, ("externalId",), "links-stream", STATS)


class Documents:
    """What the reading thread has read (or Leanpay is known to hold)."""

    def __init__(self) -> None:
        self.read: set[tuple[str, str]] = set()

    def is_read(self, resource: str, external_id: str) -> bool:
        return (resource, external_id) in self.read

    def arrive(self, parking: Parking, resource: str, external_id: str) -> None:
        self.read.add((resource, external_id))
        parking.arrived(resource, external_id)


def parking_with(documents: Documents) -> tuple[Parking, list[Pending]]:
    taken: list[Pending] = []
    parking = Parking(documents.is_read)
    parking.register("links-stream", taken.append)
    return parking, taken


def test_a_record_is_released_once_every_document_it_names_is_read_in_read_order() -> None:
    documents = Documents()
    parking, taken = parking_with(documents)
    for seq in (3, 5, 7):
        parking.park(link(seq, "INV-1" if seq != 5 else "INV-2"), [
            ("invoices", "INV-1" if seq != 5 else "INV-2"), ("credit_notes", "CN-1"),
        ])  # fmt: skip
    documents.arrive(parking, "credit_notes", "CN-1")
    assert taken == []  # their invoices are still missing
    documents.arrive(parking, "invoices", "INV-1")
    assert [p.seq for p in taken] == [3, 7]
    assert parking.count == 1
    parking.release_all()
    assert [p.seq for p in taken] == [3, 7, 5]
    assert parking.count == 0


def test_a_document_leanpay_turns_out_to_hold_counts_when_the_other_arrives() -> None:
    documents = Documents()
    parking, taken = parking_with(documents)
    parking.park(link(1, "INV-OLD"), [("invoices", "INV-OLD"), ("credit_notes", "CN-1")])
    documents.read.add(("invoices", "INV-OLD"))  # the first listing has shown it since
    documents.arrive(parking, "credit_notes", "CN-1")
    assert [p.seq for p in taken] == [1]


def test_past_the_constant_records_wait_on_disk_and_come_back_whole() -> None:
    documents = Documents()
    parking, taken = parking_with(documents)
    total = PARKED_IN_MEMORY + 25
    for seq in range(total):
        parking.park(link(seq, f"INV-{seq}"), [("invoices", f"INV-{seq}")])
        assert parking.in_memory <= PARKED_IN_MEMORY
    assert parking.count == total and parking.spilled == 25
    documents.arrive(parking, "invoices", f"INV-{total - 2}")  # one of those on disk
    [back] = taken
    assert back.seq == total - 2 and back.stats is STATS
    expected = link(total - 2, f"INV-{total - 2}")
    assert (back.payload, back.record, back.external_id) == (
        expected.payload,
        expected.record,
        expected.external_id,
    )
    assert isinstance(back.line, Place) and back.line.file == "batch-1.jsonl"
    assert back.ident == expected.ident
    documents.arrive(parking, "invoices", "INV-0")  # one in memory
    parking.release_all()  # the rest, memory and disk merged in read order
    assert [p.seq for p in taken] == [total - 2, 0, *range(1, total - 2), total - 1]
    assert parking.peak_in_memory == PARKED_IN_MEMORY and parking.count == 0
    parking.close()


def test_nothing_parked_releases_nothing() -> None:
    parking, taken = parking_with(Documents())
    parking.arrived("invoices", "INV-1")
    parking.release_all()
    assert taken == [] and parking.parked == 0


def test_records_whose_documents_a_listing_has_shown_since_are_released_at_a_recheck() -> None:
    documents = Documents()
    parking, taken = parking_with(documents)
    parking.park(link(1, "INV-OLD"), [("invoices", "INV-OLD")])
    parking.park(link(2, "INV-LATER"), [("invoices", "INV-LATER")])
    parking.recheck()
    assert taken == []
    documents.read.add(("invoices", "INV-OLD"))  # the first listing has ended: Leanpay holds it
    parking.recheck()
    assert [p.seq for p in taken] == [1] and parking.count == 1
    documents.arrive(parking, "invoices", "INV-LATER")
    assert [p.seq for p in taken] == [1, 2] and parking.count == 0
