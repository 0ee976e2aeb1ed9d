"""Per-category scores: the one shape every scorer (embedding or classifier) produces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from moderation.domain import ScoreSource

if TYPE_CHECKING:  # PIL stays out of this pure module at run time
    from PIL.Image import Image

__all__ = ["CategoryScore", "ScoreSet", "Scorer"]


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

    def score_images(self, images: Sequence[Image]) -> list[ScoreSet]:
        """One ``ScoreSet`` per input image, in input order."""
        ...
