"""Image–text comparisons beyond the catalog: a job's ``match_text`` and the album-tag labels.

Texts are embedded as retrieval queries (``QUERY_INSTRUCTION``, SEED-DIGEST §1) by the scorer's
embedding backend and compared with the image vectors its forward already computed
(``score_keeping_vectors``): one cosine per (image, text), no second image forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moderation.embedders.base import QUERY_INSTRUCTION, Embedder
from moderation.scoring.scorers import embedding_scale

__all__ = ["TagVocabulary", "TextUnsupported", "backend_embeds_text", "match_scores"]


class TextUnsupported(ValueError):
    """The scorer has no embedding backend (e.g. ``open_nsfw`` alone): it cannot embed text."""


def backend_embeds_text(backend: str) -> bool:
    """Whether ``MODERATION_BACKEND=backend`` embeds texts (the registered embedders do)."""
    from moderation.embedders.registry import EMBEDDERS

    return backend in EMBEDDERS


def match_scores(embedder: Embedder, image_vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """Cosine of row i of ``image_vectors`` with ``texts[i]`` (unit rows; one text forward)."""
    if len(texts) != len(image_vectors):
        raise ValueError(f"{len(image_vectors)} images but {len(texts)} texts")
    if not texts:
        return np.empty(0, dtype=np.float32)
    vectors = np.asarray(embedder.embed_texts(list(texts), QUERY_INSTRUCTION), np.float32)
    return np.einsum("ij,ij->i", np.asarray(image_vectors, np.float32), vectors)


class TagVocabulary:
    """The album-tag labels embedded once per process; per-image label cosines on demand."""

    def __init__(self, embedder: Embedder, labels: Sequence[str]) -> None:
        if not labels:
            raise ValueError("a tag vocabulary needs at least one label")
        self.labels = tuple(labels)
        self.scale = embedding_scale(embedder.info.name)
        self.vectors = np.asarray(embedder.embed_texts(list(labels), QUERY_INSTRUCTION), np.float32)

    def label_scores(self, image_vectors: np.ndarray) -> list[dict[str, float]]:
        """Per image, every label's cosine."""
        sim = np.asarray(image_vectors, np.float32) @ self.vectors.T
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in sim]
