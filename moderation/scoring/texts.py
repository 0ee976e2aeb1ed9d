"""Image–text comparisons beyond the catalog: a job's ``match_text`` and the album-tag labels.

Texts are embedded as retrieval queries (``QUERY_INSTRUCTION``, SEED-DIGEST §1) by the scorer's
embedding backend and compared with the image vectors its forward already computed
(``score_keeping_vectors``): one cosine per (image, text), no second image forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from moderation.embedders.base import QUERY_INSTRUCTION, Embedder
from moderation.scoring.base import Scorer
from moderation.scoring.scorers import embedding_scale, scorer_embedder
from moderation.thresholds.presets import AlbumTagging, Policy
from moderation.thresholds.scenarios import (
    JobOptions,
    MatchOutcome,
    match_outcome,
    scenario_record,
    tags_for,
    wants_tags,
)

__all__ = [
    "Scenario",
    "TagVocabulary",
    "TextUnsupported",
    "backend_embeds_text",
    "make_scenarios",
    "match_scores",
]


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


@dataclass(frozen=True)
class Scenario:
    """What a job asked for beyond safety, and what it got (``thresholds.scenarios``)."""

    options: JobOptions
    match: MatchOutcome | None = None
    tagging: AlbumTagging | None = None
    error: str | None = None  # why a match or tags could not be made

    def record(self) -> dict[str, object] | None:
        """The JSON kept with the decision (``decisions.scenario``)."""
        out = scenario_record(self.match, self.tagging, self.options.context)
        if self.error is not None:
            out = {**(out or {}), "error": self.error}
        return out


NO_TEXT = "the scoring backend cannot embed text"


def make_scenarios(
    scorer: Scorer,
    policy: Policy,
    options: Sequence[JobOptions],
    vectors: np.ndarray | None,
    rows: Sequence[int | None],
    vocabulary: Callable[[], TagVocabulary],
) -> list[Scenario]:
    """One ``Scenario`` per job: its match verdict and tags from its image vector (row
    ``rows[i]`` of ``vectors``, from ``score_keeping_vectors``); all match texts are embedded
    in one call. The worker and ``moderation score`` both call this."""
    embedder = scorer_embedder(scorer)
    out: list[Scenario | None] = [None] * len(options)
    text_jobs: list[int] = []
    for i, (o, row) in enumerate(zip(options, rows, strict=True)):
        if not (o.match_text or wants_tags(o, policy)):
            out[i] = Scenario(o)
        elif embedder is None or vectors is None or row is None:
            # the API refuses such jobs up front; one queued before a backend change lands here
            out[i] = Scenario(o, error=NO_TEXT)
        else:
            text_jobs.append(i)
    if text_jobs:
        assert embedder is not None and vectors is not None
        scale = embedding_scale(embedder.info.name)
        matching = [i for i in text_jobs if options[i].match_text]
        cosines = match_scores(
            embedder,
            vectors[[rows[i] for i in matching]],  # type: ignore[misc]
            [options[i].match_text for i in matching],  # type: ignore[misc]
        )
        matches = {
            i: match_outcome(float(c), scale, options[i].context)
            for i, c in zip(matching, cosines, strict=True)
        }
        tagged = [i for i in text_jobs if wants_tags(options[i], policy)]
        label_scores = (
            vocabulary().label_scores(vectors[[rows[i] for i in tagged]]) if tagged else []
        )  # type: ignore[misc]
        tags = {i: tags_for(ls) for i, ls in zip(tagged, label_scores, strict=True)}
        for i in text_jobs:
            out[i] = Scenario(options[i], matches.get(i), tags.get(i))
    return [s for s in out if s is not None]
