"""KnownIds: exact membership across statement splits, duplicates and empty calls."""

from __future__ import annotations

from target_leanpay.knownids import MAX_QUERY_IDS, KnownIds


def test_ids_added_in_one_call_beyond_one_statement_are_all_remembered() -> None:
    known = KnownIds()
    ids = [f"INV-{n}" for n in range(MAX_QUERY_IDS * 2 + 7)]
    known.add(iter(ids))  # any iterable, read once
    known.add(ids[:10])  # again: ignored, not an error
    known.add([])
    assert len(known) == len(ids)
    asked = [*ids[::97], "INV-x", "inv-1", "INV-1 ", ""]
    assert known.among(asked) == set(ids[::97])
    assert known.among([]) == set()
    known.close()
