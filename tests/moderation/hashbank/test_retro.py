"""``match_stored``: the retro-matching core equals a brute-force scan, on both its paths (a few
entry hashes: per-hash popcount; many: the multi-index)."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.hashbank.retro import EntryHashes, match_stored


def _brute(entries, stored, radius):  # type: ignore[no-untyped-def]
    best = {}
    for e in entries:
        for words in e.words:
            d = np.bitwise_count(stored ^ words).sum(axis=1)
            for row in np.flatnonzero(d <= radius).tolist():
                key = (row, e.entry_id)
                best[key] = min(best.get(key, 999), int(d[row]))
    return sorted((r, e, d) for (r, e), d in best.items())


def _flip(words, bits, rng):  # type: ignore[no-untyped-def]
    out = words.copy()
    for bit in rng.choice(256, bits, replace=False).tolist():
        out[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
    return out


@pytest.mark.parametrize("entries_n", [1, 3, 200])
def test_match_stored_equals_brute_force(entries_n):
    rng = np.random.default_rng(entries_n)
    stored = rng.integers(0, 2**63, (3000, 4), dtype=np.uint64)
    entries = []
    for i in range(entries_n):
        words = rng.integers(0, 2**63, (2, 4), dtype=np.uint64)
        entries.append(EntryHashes(100 + i, words))
        for row in rng.choice(3000, 3, replace=False).tolist():  # near copies, some too far
            stored[row] = _flip(words[row % 2], int(rng.integers(0, 40)), rng)
    hits = match_stored(entries, stored, 31)
    assert sorted((h.row, h.entry_id, h.distance) for h in hits) == _brute(entries, stored, 31)
    assert hits  # the planted copies within 31 bits are found
    assert match_stored([], stored, 31) == [] and match_stored(entries, stored[:0], 31) == []
