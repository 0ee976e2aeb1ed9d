"""Per-category scores: the one shape every scorer (embedding or classifier) produces."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from moderation.domain import ScoreSource

if TYPE_CHECKING:  # PIL stays out of this pure module at run time
    from PIL.Image import Image

__all__ = [
    "CategoryScore",
    "PhrasingTable",
    "ScoreSet",
    "Scorer",
    "category_maxima",
    "fuse",
    "merge_score_sets",
    "score_embeddings",
    "similarity",
]


@dataclass(frozen=True)
class CategoryScore:
    """The score of one image for one violation category.

    ``score`` is on the category's own scale (``Scorer.scales``): GME cosine in [-1, 1]
    (observed 0–0.5, SEED-DIGEST §2) or a classifier probability in [0, 1]. ``phrasing`` is the
    pattern text that won the max over phrasings (embedding scores only).
    """

    category: str
    score: float
    source: ScoreSource
    phrasing: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


ScoreSet = dict[str, CategoryScore]
"""All category scores of one image, keyed by category."""


@runtime_checkable
class Scorer(Protocol):
    """Anything that turns a batch of images into per-category scores.

    Implementations load their model once and score a whole batch in one forward. The policy
    never sees how a score was made, only its category, value and scale.
    """

    model_id: str  # identifies weights + recipe; scores are reused only for the same model_id
    catalog_version: str  # hash of the violation catalog in use ("" when none is involved)
    categories: tuple[str, ...]
    scales: Mapping[str, str]  # category -> scale name, e.g. "gme_cosine", "probability"
    severities: Mapping[str, int]  # category -> severity 1 (low) … 4 (critical)
    base_thresholds: Mapping[str, float]  # category -> catalog-set base cut-off (if any)

    def score_images(self, images: Sequence[Image]) -> list[ScoreSet]:
        """One ``ScoreSet`` per input image, in input order."""
        ...


@dataclass(frozen=True)
class PhrasingTable:
    """Pattern phrasings as matrix columns, each category's phrasings in one contiguous block."""

    categories: tuple[str, ...]
    phrasings: tuple[str, ...]
    starts: tuple[int, ...]  # first column of each category's block; a block ends at the next

    def __post_init__(self) -> None:
        if len(self.categories) != len(self.starts) or not self.categories:
            raise ValueError("one start column per category, and at least one category")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"duplicate categories in {self.categories}")
        bounds = [*self.starts, len(self.phrasings)]
        if self.starts[0] != 0 or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError(f"blocks must start at 0 and be non-empty: starts={self.starts}")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> PhrasingTable:
        """From (category, phrasing) pairs; each category's pairs must be adjacent."""
        categories: list[str] = []
        phrasings: list[str] = []
        starts: list[int] = []
        for category, phrasing in pairs:
            if not categories or categories[-1] != category:
                if category in categories:
                    raise ValueError(f"phrasings of {category!r} are not contiguous")
                categories.append(category)
                starts.append(len(phrasings))
            phrasings.append(phrasing)
        return cls(tuple(categories), tuple(phrasings), tuple(starts))

    def block(self, k: int) -> slice:
        """Columns of the k-th category."""
        end = self.starts[k + 1] if k + 1 < len(self.starts) else len(self.phrasings)
        return slice(self.starts[k], end)


def similarity(image_vectors: np.ndarray, pattern_vectors: np.ndarray) -> np.ndarray:
    """Cosine matrix [n_images, n_phrasings] in [-1, 1] of unit rows: one matrix product."""
    images = np.asarray(image_vectors, dtype=np.float32)
    patterns = np.asarray(pattern_vectors, dtype=np.float32)
    if images.ndim != 2 or patterns.ndim != 2 or images.shape[1] != patterns.shape[1]:
        raise ValueError(f"need [n, d] and [m, d] matrices, got {images.shape}, {patterns.shape}")
    return images @ patterns.T


def category_maxima(sim: np.ndarray, table: PhrasingTable) -> tuple[np.ndarray, np.ndarray]:
    """Per category, the max over its phrasings (SEED-DIGEST §5) and the winning column.

    Returns (scores float32 [n, k], winners int [n, k]); ties go to the first phrasing.
    """
    if sim.ndim != 2 or sim.shape[1] != len(table.phrasings):
        raise ValueError(f"matrix has {sim.shape} columns, table {len(table.phrasings)} phrasings")
    n, k = sim.shape[0], len(table.categories)
    scores = np.empty((n, k), dtype=np.float32)
    winners = np.empty((n, k), dtype=np.int64)
    for index in range(k):
        block = table.block(index)
        local = np.argmax(sim[:, block], axis=1)
        winners[:, index] = local + block.start
        scores[:, index] = sim[np.arange(n), winners[:, index]]
    return scores, winners


def fuse(dimensions: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean Σ w_d·s_d / Σ w_d over the dimensions given (SEED-DIGEST §5).

    The seed fused direct 0.6 + reverse 0.3 + keyword 0.1 with stub dimensions returning 0.0,
    which silently shrank every score; here only real dimensions are passed and the weights are
    renormalised over them. Every dimension needs a positive weight and the same shape.
    """
    if not dimensions:
        raise ValueError("fusion needs at least one dimension")
    missing = sorted(set(dimensions) - set(weights))
    if missing:
        raise KeyError(f"no fusion weight for dimensions {missing}")
    if any(not weights[d] > 0 for d in dimensions):
        raise ValueError(f"fusion weights must be positive: {dict(weights)}")
    arrays = {d: np.asarray(v, dtype=np.float32) for d, v in dimensions.items()}
    if len({a.shape for a in arrays.values()}) != 1:
        raise ValueError(f"dimensions differ in shape: { {d: a.shape for d, a in arrays.items()} }")
    total = sum(weights[d] for d in arrays)
    fused = sum(np.float32(weights[d] / total) * a for d, a in arrays.items())
    return np.asarray(fused, dtype=np.float32)


def score_embeddings(
    image_vectors: np.ndarray,
    pattern_vectors: Mapping[str, np.ndarray],
    table: PhrasingTable,
    weights: Mapping[str, float] | None = None,
) -> list[ScoreSet]:
    """Images × phrasings → one ``ScoreSet`` per image (category = max over its phrasings).

    ``pattern_vectors`` maps a fusion dimension (e.g. ``"query"``) to its [m, d] phrasing
    vectors in ``table`` order. All dimensions go through ONE matrix product against the
    stacked pattern matrix; with several dimensions the per-phrasing scores are fused
    (``fuse``) before the max, and the winner's per-dimension scores land in ``details``.
    """
    names = list(pattern_vectors)
    if len(names) > 1 and weights is None:
        raise ValueError("several dimensions need fusion weights")
    m = len(table.phrasings)
    stacked = np.concatenate([np.asarray(pattern_vectors[d], np.float32) for d in names])
    if stacked.shape[0] != m * len(names):
        raise ValueError(f"each dimension needs {m} pattern vectors")
    sim = similarity(image_vectors, stacked)
    per_dim = {d: sim[:, i * m : (i + 1) * m] for i, d in enumerate(names)}
    fused = per_dim[names[0]] if len(names) == 1 else fuse(per_dim, weights or {})
    scores, winners = category_maxima(fused, table)
    out: list[ScoreSet] = []
    for i in range(scores.shape[0]):
        score_set: ScoreSet = {}
        for k, category in enumerate(table.categories):
            j = int(winners[i, k])
            details: dict[str, Any] = {"phrasing_index": j}
            if len(names) > 1:
                details["dimensions"] = {d: float(per_dim[d][i, j]) for d in names}
            score_set[category] = CategoryScore(
                category, float(scores[i, k]), ScoreSource.EMBEDDING, table.phrasings[j], details
            )
        out.append(score_set)
    return out


def merge_score_sets(score_sets: Sequence[ScoreSet]) -> ScoreSet:
    """One image's scores from several scorers, merged per category.

    Earlier sets win a category that several produce (the caller orders them by trust); the
    losers are kept in the winner's ``details["other_signals"]`` so nothing measured is lost.
    """
    merged: ScoreSet = {}
    others: dict[str, list[dict[str, Any]]] = {}
    for score_set in score_sets:
        for category, score in score_set.items():
            if category not in merged:
                merged[category] = score
                continue
            others.setdefault(category, []).append(
                {"source": str(score.source), "score": score.score, "phrasing": score.phrasing}
            )
    for category, signals in others.items():
        winner = merged[category]
        details = {**winner.details, "other_signals": signals}
        merged[category] = CategoryScore(
            winner.category, winner.score, winner.source, winner.phrasing, details
        )
    return merged
