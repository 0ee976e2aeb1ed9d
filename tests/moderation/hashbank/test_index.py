"""Multi-index hashing: exactly the brute-force answer, including at the threshold's edge."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.hashbank.index import MAX_RADIUS, HashIndex, brute_force_search


def _random_words(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)


def _flip_bits(rng: np.random.Generator, words: np.ndarray, k: int) -> np.ndarray:
    bits = np.unpackbits(words.copy().view(np.uint8))
    bits[rng.choice(256, size=k, replace=False)] ^= 1
    return np.packbits(bits).view(np.uint64)


def _near_queries(rng, words, n, lo=0, hi=48):
    return [_flip_bits(rng, words[rng.integers(len(words))], int(rng.integers(lo, hi)))
            for _ in range(n)]  # fmt: skip


def _assert_same(index: HashIndex, keys, words, enabled, queries):
    columns = np.ascontiguousarray(words.T)
    batch = index.search_many(np.array(queries))
    for query, got_many in zip(queries, batch, strict=True):
        exp_keys, exp_dist = brute_force_search(
            keys[enabled], columns[:, enabled], query, index.radius
        )
        for got_keys, got_dist in (index.search(query), got_many):
            np.testing.assert_array_equal(got_keys, exp_keys)
            np.testing.assert_array_equal(got_dist, exp_dist)


@pytest.mark.parametrize("radius", [0, 15, 16, 31, 32, 47, 63])
def test_equals_brute_force_on_random_bank(radius):
    rng = np.random.default_rng(radius)
    words = _random_words(rng, 3000)
    keys = np.arange(10, 10 + 2 * len(words), 2)
    index = HashIndex(radius)
    index.add(keys, words)
    enabled = np.ones(len(keys), bool)
    _assert_same(index, keys, words, enabled, _near_queries(rng, words, 150, 0, radius + 10))


def test_near_threshold_distances_are_exactly_in_or_out():
    """Neighbours planted at exactly 30, 31, 32 bits — with the flips spread so that as many
    substrings as possible differ (the case the pigeonhole bound is tight for)."""
    rng = np.random.default_rng(1)
    words = _random_words(rng, 2000)
    base = words[0]
    planted = []
    for distance in (30, 31, 32):
        for _ in range(20):
            # at most 2 flipped bits per 16-bit substring, spread over every substring
            positions = np.concatenate(
                [rng.choice(16, size=2, replace=False) + 16 * c for c in range(16)]
            )
            chosen = rng.choice(positions, size=distance, replace=False)
            bits = np.unpackbits(base.copy().view(np.uint8))
            bits[chosen] ^= 1
            planted.append(np.packbits(bits).view(np.uint64))
    words = np.vstack([words, np.array(planted)])
    index = HashIndex(31)
    index.add(np.arange(1, len(words) + 1), words)
    keys, distances = index.search(base)
    found = dict(zip(keys.tolist(), distances.tolist(), strict=True))
    expected_in = [2001 + i for i in range(40)]  # the 30- and 31-bit plants
    assert all(found.get(k) in (30, 31) for k in expected_in)
    assert not any(2041 + i in found for i in range(20))  # 32 bits: out
    assert found[1] == 0


def test_clustered_bank_with_duplicates_and_tail():
    """Many near-identical hashes (real banks have clusters) and rows added in small batches,
    so part of the bank sits in the unindexed tail."""
    rng = np.random.default_rng(2)
    centres = _random_words(rng, 40)
    words = np.array([_flip_bits(rng, centres[i % 40], int(rng.integers(0, 40)))
                      for i in range(4000)])  # fmt: skip
    keys = np.arange(1, len(words) + 1)
    index = HashIndex(31, min_tail=100, tail_fraction=0.05)
    for start in range(0, len(words), 137):
        index.add(keys[start : start + 137], words[start : start + 137])
    assert 0 < index.tail_size <= max(100, 0.05 * len(words)) + 137
    enabled = rng.random(len(keys)) > 0.2
    index.set_disabled(keys[~enabled])
    _assert_same(index, keys, words, enabled, _near_queries(rng, centres, 100, 0, 40))


def test_disable_and_reenable():
    rng = np.random.default_rng(4)
    words = _random_words(rng, 500)
    index = HashIndex(31)
    index.add(np.arange(1, 501), words)
    assert index.set_disabled(np.array([7])) == 1
    assert 7 not in index.search(words[6])[0].tolist()
    assert index.enabled_count == 499
    assert index.set_disabled(np.array([7])) == 0  # idempotent
    assert index.set_disabled(np.array([], np.int64)) == 1
    assert index.search(words[6])[0].tolist()[0] == 7


def test_nearest_is_exact_top_k():
    rng = np.random.default_rng(5)
    words = _random_words(rng, 800)
    keys = np.arange(1, 801)
    index = HashIndex(31)
    index.add(keys, words)
    query = _flip_bits(rng, words[3], 50)  # beyond the radius: nearest still finds it
    got_keys, got_dist = index.nearest(query, 5)
    all_dist = np.bitwise_count(words ^ query).sum(axis=1)
    assert got_dist.tolist() == sorted(all_dist.tolist())[:5]
    assert got_keys[0] == 4 and got_dist[0] == 50


def test_keys_must_ascend_and_shapes_match():
    index = HashIndex(31)
    words = np.zeros((3, 4), np.uint64)
    with pytest.raises(ValueError, match="ascending"):
        index.add(np.array([3, 2, 1]), words)
    index.add(np.array([1, 2, 3]), words)
    with pytest.raises(ValueError, match="newer"):
        index.add(np.array([3]), words[:1])
    with pytest.raises(ValueError, match="keys but"):
        index.add(np.array([4, 5]), words[:1])
    with pytest.raises(ValueError, match="radius"):
        HashIndex(MAX_RADIUS + 1)


def test_empty_index_finds_nothing():
    index = HashIndex(31)
    keys, distances = index.search(np.zeros(4, np.uint64))
    assert len(keys) == 0 and len(distances) == 0
    assert index.last_key is None and len(index) == 0
    assert index.search_many(np.zeros((0, 4), np.uint64)) == []
    index.add(np.array([1]), np.ones((1, 4), np.uint64))
    assert index.search_many(np.zeros((0, 4), np.uint64)) == []
