"""Scoring math: one matrix product equals the naive loop; max over phrasings; fusion; merging."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.domain import ScoreSource
from moderation.embedders.base import l2_normalise
from moderation.scoring.base import (
    CategoryScore,
    PhrasingTable,
    category_maxima,
    fuse,
    merge_score_sets,
    score_embeddings,
    similarity,
)

PAIRS = [
    ("drugs", "pills"),
    ("drugs", "a syringe"),
    ("weapons", "a gun"),
    ("weapons", "a knife"),
    ("weapons", "a rifle"),
    ("gore", "blood"),
]


def unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    return l2_normalise(rng.standard_normal((n, d)))


def naive(images: np.ndarray, patterns: np.ndarray, pairs: list[tuple[str, str]]) -> list[dict]:
    """The seed's loop, per image and per phrasing, as the reference."""
    out = []
    for image in images:
        best: dict[str, tuple[float, str]] = {}
        for (category, phrasing), pattern in zip(pairs, patterns, strict=True):
            cos = float(np.dot(image, pattern) / np.linalg.norm(image) / np.linalg.norm(pattern))
            if category not in best or cos > best[category][0]:
                best[category] = (cos, phrasing)
        out.append(best)
    return out


def test_table_from_pairs_groups_contiguous_blocks():
    table = PhrasingTable.from_pairs(PAIRS)
    assert table.categories == ("drugs", "weapons", "gore")
    assert table.starts == (0, 2, 5)
    assert [table.block(k) for k in range(3)] == [slice(0, 2), slice(2, 5), slice(5, 6)]


@pytest.mark.parametrize(
    "pairs", [[("a", "x"), ("b", "y"), ("a", "z")], []], ids=["not-contiguous", "empty"]
)
def test_table_rejects_bad_layouts(pairs):
    with pytest.raises(ValueError):
        PhrasingTable.from_pairs(pairs)


def test_matrix_form_equals_naive_loop():
    rng = np.random.default_rng(7)
    images, patterns = unit(rng, 9), unit(rng, len(PAIRS))
    table = PhrasingTable.from_pairs(PAIRS)
    got = score_embeddings(images, {"query": patterns}, table)
    want = naive(images, patterns, PAIRS)
    assert len(got) == 9
    for score_set, reference in zip(got, want, strict=True):
        assert set(score_set) == set(reference)
        for category, (cos, phrasing) in reference.items():
            assert score_set[category].score == pytest.approx(cos, abs=1e-6)
            assert score_set[category].phrasing == phrasing
            assert score_set[category].source is ScoreSource.EMBEDDING
            assert table.phrasings[score_set[category].details["phrasing_index"]] == phrasing


def test_max_over_phrasings_and_the_winner_with_known_numbers():
    table = PhrasingTable.from_pairs(PAIRS)
    sim = np.array(
        [
            [0.1, 0.3, 0.2, 0.25, -0.1, 0.05],
            [0.4, 0.4, -0.2, -0.3, 0.9, 0.0],  # a tie in drugs goes to the first phrasing
        ],
        dtype=np.float32,
    )
    scores, winners = category_maxima(sim, table)
    np.testing.assert_allclose(scores, [[0.3, 0.25, 0.05], [0.4, 0.9, 0.0]])
    assert winners.tolist() == [[1, 3, 5], [0, 4, 5]]


def test_empty_batch_and_shape_errors():
    table = PhrasingTable.from_pairs(PAIRS)
    patterns = np.zeros((len(PAIRS), 4), np.float32)
    assert score_embeddings(np.zeros((0, 4), np.float32), {"query": patterns}, table) == []
    with pytest.raises(ValueError):
        similarity(np.zeros((2, 3)), patterns)
    with pytest.raises(ValueError):
        score_embeddings(np.zeros((1, 4)), {"query": patterns[:3]}, table)
    with pytest.raises(ValueError):
        category_maxima(np.zeros((1, 3)), table)


def test_fuse_is_a_weighted_mean_over_real_dimensions_only():
    a, b = np.array([0.2, 0.4]), np.array([0.5, 0.1])
    np.testing.assert_allclose(fuse({"query": a, "corpus": b}, {"query": 0.6, "corpus": 0.3}),
                               (0.6 * a + 0.3 * b) / 0.9, rtol=1e-6)  # fmt: skip
    # a dimension that is not computed is not a zero: weights renormalise over what exists
    np.testing.assert_allclose(fuse({"query": a}, {"query": 0.6, "keyword": 0.1}), a, rtol=1e-6)


@pytest.mark.parametrize(
    ("dims", "weights", "error"),
    [
        ({}, {"query": 1.0}, ValueError),
        ({"query": np.zeros(2)}, {"corpus": 1.0}, KeyError),
        ({"query": np.zeros(2)}, {"query": 0.0}, ValueError),
        ({"query": np.zeros(2), "corpus": np.zeros(3)}, {"query": 1, "corpus": 1}, ValueError),
    ],
)
def test_fuse_rejects_bad_input(dims, weights, error):
    with pytest.raises(error):
        fuse(dims, weights)


def test_fused_scores_take_the_max_after_fusion_and_record_dimensions():
    rng = np.random.default_rng(3)
    images = unit(rng, 5)
    query, corpus = unit(rng, len(PAIRS)), unit(rng, len(PAIRS))
    weights = {"query": 0.6, "corpus": 0.3}
    table = PhrasingTable.from_pairs(PAIRS)
    got = score_embeddings(images, {"query": query, "corpus": corpus}, table, weights)
    fused = (0.6 * images @ query.T + 0.3 * images @ corpus.T) / 0.9
    for i, score_set in enumerate(got):
        for k, category in enumerate(table.categories):
            block = fused[i, table.block(k)]
            j = table.starts[k] + int(np.argmax(block))
            s = score_set[category]
            assert s.score == pytest.approx(block.max(), abs=1e-6)
            assert s.phrasing == table.phrasings[j]
            assert s.details["dimensions"]["query"] == pytest.approx(images[i] @ query[j], abs=1e-6)
            assert s.details["dimensions"]["corpus"] == pytest.approx(
                images[i] @ corpus[j], abs=1e-6
            )
    with pytest.raises(ValueError, match="weights"):
        score_embeddings(images, {"query": query, "corpus": corpus}, table)


def test_merge_keeps_every_category_and_records_the_losing_signal():
    classifier = {"sexual": CategoryScore("sexual", 0.7, ScoreSource.CLASSIFIER)}
    embedding = {
        "sexual": CategoryScore("sexual", 0.31, ScoreSource.EMBEDDING, "nudity", {"k": 1}),
        "weapons": CategoryScore("weapons", 0.12, ScoreSource.EMBEDDING, "a gun"),
    }
    merged = merge_score_sets([classifier, embedding])
    assert set(merged) == {"sexual", "weapons"}
    assert merged["weapons"] is embedding["weapons"]
    assert merged["sexual"].score == 0.7 and merged["sexual"].source is ScoreSource.CLASSIFIER
    assert merged["sexual"].details["other_signals"] == [
        {"source": "embedding", "score": 0.31, "phrasing": "nudity"}
    ]
    assert merge_score_sets([embedding, classifier])["sexual"].score == 0.31
