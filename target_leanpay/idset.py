"""A set of externalIds in ~16 bytes each, so replay safety keeps memory flat.

A Python set of 1M short strings costs ~100 MB, and replay safety must remember every
externalId Leanpay holds plus every one this run sent. Each id is kept as its 128-bit
BLAKE2b digest, appended to one of 65,536 `bytearray` buckets chosen by the digest's
first two bytes; a lookup scans one bucket in C (a few hundred bytes for a million ids).
Two different ids share a digest with probability ~n^2 / 2^129 (1e-27 for a million).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

DIGEST_SIZE = 16
BUCKETS = 1 << 16


def _digest(external_id: str) -> bytes:
    return hashlib.blake2b(external_id.encode(), digest_size=DIGEST_SIZE).digest()


class CompactIdSet:
    """Membership of strings, in ~16 bytes per member."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._buckets: list[bytearray | None] = [None] * BUCKETS
        self._count = 0
        for external_id in ids:
            self.add(external_id)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, external_id: object) -> bool:
        if not isinstance(external_id, str):
            return False
        digest = _digest(external_id)
        bucket = self._buckets[int.from_bytes(digest[:2], "big")]
        return bucket is not None and _find(bucket, digest)

    def add(self, external_id: str) -> None:
        """Remember `external_id`."""
        digest = _digest(external_id)
        index = int.from_bytes(digest[:2], "big")
        bucket = self._buckets[index]
        if bucket is None:
            self._buckets[index] = bytearray(digest)
        elif not _find(bucket, digest):
            bucket += digest
        else:
            return
        self._count += 1


def _find(bucket: bytearray, digest: bytes) -> bool:
    """Whether `digest` is one of the aligned 16-byte entries of `bucket`."""
    at = bucket.find(digest)
    while at != -1:
        if at % DIGEST_SIZE == 0:
            return True
        at = bucket.find(digest, at + 1)
    return False
