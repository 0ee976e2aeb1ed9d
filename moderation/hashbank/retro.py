"""Retro-matching, the pure part: which stored image hashes lie within the match distance of
a set of (new or re-enabled) bank entries' hashes.

The entries' hashes — each entry's own hash, its crop windows and, where the entry's image is
stored, its 7 rotations/mirrors (the live matcher hashes the *query's* variants; here the
query is the entry, and d(variant(a), b) = d(a, variant⁻¹(b))) — go into one ``HashIndex``;
the stored hashes are looked up against it in chunks, so one entry or a 100 k-entry import
costs one pass over the stored hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from moderation.hashbank.index import HashIndex

__all__ = ["EntryHashes", "RetroHit", "match_stored"]


@dataclass(frozen=True)
class EntryHashes:
    entry_id: int
    words: npt.NDArray[np.uint64]  # (k, 4): every hash the entry matches by


@dataclass(frozen=True)
class RetroHit:
    row: int  # position in the stored chunk
    entry_id: int
    distance: int


def match_stored(
    entries: Sequence[EntryHashes], stored: npt.NDArray[np.uint64], radius: int
) -> list[RetroHit]:
    """Every (stored row, entry) within ``radius``, the nearest hash of the entry counted;
    one hit per pair, ordered by row then distance."""
    stored = np.asarray(stored, np.uint64).reshape(-1, 4)
    if not entries or len(stored) == 0:
        return []
    owners = np.concatenate([np.full(len(e.words), e.entry_id, np.int64) for e in entries])
    words = np.concatenate([np.asarray(e.words, np.uint64).reshape(-1, 4) for e in entries])
    if len(words) <= 64:
        return _scan(owners, words, stored, radius)
    index = HashIndex(radius)
    index.add(np.arange(len(words), dtype=np.int64), words)
    best: dict[tuple[int, int], int] = {}
    for row, (keys, distances) in enumerate(index.search_many(stored)):
        for key, distance in zip(keys.tolist(), distances.tolist(), strict=True):
            pair = (row, int(owners[key]))
            if pair not in best or distance < best[pair]:
                best[pair] = distance
    return sorted(
        (RetroHit(r, e, d) for (r, e), d in best.items()), key=lambda h: (h.row, h.distance)
    )


def _scan(
    owners: npt.NDArray[np.int64],
    words: npt.NDArray[np.uint64],
    stored: npt.NDArray[np.uint64],
    radius: int,
) -> list[RetroHit]:
    """A few entry hashes against a chunk: a vectorised popcount per entry hash."""
    best: dict[tuple[int, int], int] = {}
    for owner, query in zip(owners.tolist(), words, strict=True):
        distances = np.bitwise_count(stored ^ query).sum(axis=1, dtype=np.int32)
        for row in np.flatnonzero(distances <= radius).tolist():
            pair = (row, owner)
            d = int(distances[row])
            if pair not in best or d < best[pair]:
                best[pair] = d
    return sorted(
        (RetroHit(r, e, d) for (r, e), d in best.items()), key=lambda h: (h.row, h.distance)
    )
