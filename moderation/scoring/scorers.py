"""Scorers: embedding (catalog patterns), classifier and combined, plus ``build_scorer(settings)``.

An ``EmbeddingScorer`` needs the catalog's phrasings embedded once per (catalog version, model,
instruction). It looks in the host's ``PatternVectorCache`` (``.npz`` files), then in the
shared store every worker host reads (the database, ``SharedPatternVectors``), and embeds them
only when neither has them, writing both; then it scores every batch of images with one
matrix product. A ``ClassifierScorer`` wraps a classifier that
emits its category directly. Both produce ``ScoreSet``s the policy treats alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from moderation.domain import ScoreSource
from moderation.embedders.base import DEFAULT_IMAGE_INSTRUCTION, QUERY_INSTRUCTION, Embedder
from moderation.embedders.base import ImageClassifier as Classifier
from moderation.scoring.base import (
    CategoryScore,
    PhrasingTable,
    Scorer,
    ScoreSet,
    merge_score_sets,
    score_embeddings,
)
from moderation.scoring.catalog import Catalog, load_catalog
from moderation.thresholds.scales import check_scales

if TYPE_CHECKING:
    from PIL.Image import Image

    from moderation.config import Settings

__all__ = [
    "DIMENSION_INSTRUCTIONS",
    "ClassifierScorer",
    "CombinedScorer",
    "EmbeddingScorer",
    "PatternKey",
    "PatternVectorCache",
    "ScorerConfigError",
    "ScorerProfile",
    "SharedPatternVectors",
    "build_scorer",
    "embedding_scale",
    "score_isolating",
    "score_keeping_vectors",
    "scorer_embedder",
    "scorer_profile",
]

log = logging.getLogger(__name__)
V = TypeVar("V")
DEFAULT_CLASSIFIER_SEVERITY = 3  # when the catalog does not list the classifier's category

# How each fusion dimension embeds a phrasing (see patterns.FUSION_DIMENSIONS).
DIMENSION_INSTRUCTIONS: dict[str, str] = {
    "query": QUERY_INSTRUCTION,
    "corpus": DEFAULT_IMAGE_INSTRUCTION,
}


class ScorerConfigError(ValueError):
    """The settings do not describe a scorer that can be built; the message says what to fix."""


@dataclass(frozen=True)
class PatternKey:
    """What one matrix of pattern vectors is computed from, and so how every cache finds it."""

    catalog: Catalog
    model_id: str
    instruction: str
    phrasings: tuple[str, ...]  # the matrix rows, in order
    dim: int

    @property
    def file_key(self) -> tuple[str, str, str]:
        """(catalog version, model id, instruction): ``PatternVectorCache``'s key."""
        return self.catalog.version, self.model_id, self.instruction

    def fits(self, vectors: np.ndarray | None) -> bool:
        """Whether ``vectors`` has this key's shape: one row of ``dim`` per phrasing."""
        return vectors is not None and vectors.shape == (len(self.phrasings), self.dim)


class SharedPatternVectors(Protocol):
    """Pattern vectors shared by every host (``moderation.services.pattern_vectors`` keeps
    them in the database). Both methods log and swallow their own failures: a store that is
    down costs an embedding, never a scorer."""

    def load(self, key: PatternKey) -> np.ndarray | None:
        """The vectors stored for ``key``; None when absent or unusable."""
        ...

    def store(self, key: PatternKey, vectors: np.ndarray) -> None:
        """Keep ``vectors`` for ``key`` unless usable ones are already stored."""
        ...


class PatternVectorCache:
    """Pattern vectors on disk, one ``.npz`` per (catalog version, model id, instruction).

    Files are written atomically (temp file + rename), so concurrent workers at worst compute
    the same vectors twice. A file whose stored key or phrasings disagree with the request,
    or that cannot be read, counts as a miss and is overwritten.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, catalog_version: str, model_id: str, instruction: str) -> Path:
        key = json.dumps([catalog_version, model_id, instruction])
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"

    def load(
        self, catalog_version: str, model_id: str, instruction: str, phrasings: Sequence[str]
    ) -> np.ndarray | None:
        path = self.path_for(catalog_version, model_id, instruction)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vectors = np.asarray(data["vectors"], dtype=np.float32)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable pattern cache %s: %s", path, exc)
            return None
        expected = _cache_meta(catalog_version, model_id, instruction, phrasings)
        if meta != expected or vectors.shape[0] != len(phrasings):
            log.warning("ignoring pattern cache %s: it was written for other content", path)
            return None
        return vectors

    def store(
        self,
        catalog_version: str,
        model_id: str,
        instruction: str,
        phrasings: Sequence[str],
        vectors: np.ndarray,
    ) -> None:
        path = self.path_for(catalog_version, model_id, instruction)
        meta = json.dumps(_cache_meta(catalog_version, model_id, instruction, phrasings))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".npz.tmp")
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, meta=np.array(meta), vectors=np.asarray(vectors, np.float32))
            os.replace(tmp, path)
        except OSError as exc:
            # scoring still works from memory; only the next process pays the embedding again
            log.warning("cannot write pattern cache %s: %s", path, exc)


def _cache_meta(
    catalog_version: str, model_id: str, instruction: str, phrasings: Sequence[str]
) -> dict[str, object]:
    """What a cache file records about its vectors, to be compared on every load."""
    return {
        "catalog_version": catalog_version,
        "model_id": model_id,
        "instruction": instruction,
        "phrasings": list(phrasings),
    }


class EmbeddingScorer:
    """Implements ``Scorer``: images × catalog phrasings, category = max over its phrasings."""

    def __init__(
        self,
        embedder: Embedder,
        catalog: Catalog,
        cache: PatternVectorCache | None = None,
        shared: SharedPatternVectors | None = None,
    ) -> None:
        self.embedder = embedder
        self.catalog = catalog
        self.model_id = embedder.info.model_id
        self.catalog_version = catalog.version
        self.categories = catalog.category_names
        self.scales = dict.fromkeys(self.categories, embedding_scale(embedder.info.name))
        self.severities = catalog.severities
        self.base_thresholds = catalog.thresholds
        self.table = PhrasingTable.from_pairs(catalog.pairs())
        self._weights = dict(catalog.fusion) or {"query": 1.0}
        self._cache, self._shared = cache, shared
        # computed once here, per (catalog version, model): never per image
        self.pattern_vectors = {d: self._pattern_vectors(d) for d in self._weights}

    def _pattern_key(self, dimension: str) -> PatternKey:
        instruction = DIMENSION_INSTRUCTIONS[dimension]
        info = self.embedder.info
        return PatternKey(self.catalog, self.model_id, instruction, self.table.phrasings, info.dim)

    def _pattern_vectors(self, dimension: str) -> np.ndarray:
        """Local file, else the shared store, else the embedder; what was missing is filled."""
        key = self._pattern_key(dimension)
        local = self._from_file(key)
        if local is not None:
            return local
        vectors = self._from_shared(key)
        if vectors is None:
            vectors = self._embed(key)
            if self._shared is not None:
                self._shared.store(key, vectors)
        if self._cache is not None:
            self._cache.store(*key.file_key, key.phrasings, vectors)
        return vectors

    def _from_file(self, key: PatternKey) -> np.ndarray | None:
        if self._cache is None:
            return None
        vectors = self._cache.load(*key.file_key, key.phrasings)
        return vectors if key.fits(vectors) else None

    def _from_shared(self, key: PatternKey) -> np.ndarray | None:
        if self._shared is None:
            return None
        vectors = self._shared.load(key)
        return vectors if key.fits(vectors) else None

    def _embed(self, key: PatternKey) -> np.ndarray:
        texts = list(key.phrasings)
        vectors = np.asarray(self.embedder.embed_texts(texts, key.instruction), np.float32)
        if not key.fits(vectors):
            raise ValueError(f"embedder returned {vectors.shape} for {len(texts)} phrasings")
        return vectors

    def score_images(self, images: Sequence[Image]) -> list[ScoreSet]:
        """One ``ScoreSet`` per image: one image forward, one matrix product."""
        if not images:
            return []
        return self.score_vectors(self.embedder.embed_images(images))

    def score_vectors(self, image_vectors: np.ndarray) -> list[ScoreSet]:
        """One ``ScoreSet`` per row of ``image_vectors`` (unit rows from ``self.embedder``)."""
        return score_embeddings(image_vectors, self.pattern_vectors, self.table, self._weights)


class ClassifierScorer:
    """Implements ``Scorer`` for a classifier that emits one category directly."""

    def __init__(self, classifier: Classifier, severity: int = DEFAULT_CLASSIFIER_SEVERITY) -> None:
        self.classifier = classifier
        self.model_id = classifier.model_id
        self.catalog_version = ""  # no phrasings involved
        self.categories = (classifier.category,)
        self.scales = {classifier.category: classifier.scale}
        self.severities = {classifier.category: severity}
        self.base_thresholds: dict[str, float] = {}

    def score_images(self, images: Sequence[Image]) -> list[ScoreSet]:
        if not images:
            return []
        category = self.classifier.category
        scores = self.classifier.classify(images)
        return [
            {category: CategoryScore(category, float(s), ScoreSource.CLASSIFIER)} for s in scores
        ]


@dataclass(frozen=True)
class ScorerProfile:
    """What thresholds need from a scorer — each category's score scale and severity, and the
    catalog's base thresholds — without its model (``scorer_profile``)."""

    scales: dict[str, str]
    severities: dict[str, int]
    base_thresholds: dict[str, float]

    @classmethod
    def merged(cls, parts: Sequence[Scorer | ScorerProfile]) -> ScorerProfile:
        """Earlier parts win shared categories; a base threshold counts only on its winner's
        scale (the ``CombinedScorer`` rule)."""
        scales = _first_wins(p.scales for p in parts)
        return cls(
            scales,
            _first_wins(p.severities for p in parts),
            _first_wins(
                {c: v for c, v in p.base_thresholds.items() if p.scales.get(c) == scales[c]}
                for p in parts
            ),
        )


class CombinedScorer:
    """Implements ``Scorer`` over several scorers; earlier ones win shared categories.

    Put classifiers first: a category both produce keeps the classifier's score and scale,
    and the embedding's score (with its phrasing) is kept in ``details["other_signals"]``.
    """

    def __init__(self, scorers: Sequence[Scorer]) -> None:
        if len(scorers) < 2:
            raise ValueError("a combined scorer needs at least two scorers")
        self.scorers = tuple(scorers)
        self.model_id = "+".join(s.model_id for s in self.scorers)
        self.catalog_version = next((s.catalog_version for s in scorers if s.catalog_version), "")
        profile = ScorerProfile.merged(self.scorers)
        self.scales = profile.scales
        self.severities = profile.severities
        self.base_thresholds = profile.base_thresholds
        self.categories = tuple(self.scales)

    def score_images(self, images: Sequence[Image]) -> list[ScoreSet]:
        per_scorer = [s.score_images(images) for s in self.scorers]
        return [merge_score_sets(sets) for sets in zip(*per_scorer, strict=True)]


def score_isolating(scorer: Scorer, images: Sequence[Image]) -> list[ScoreSet | Exception]:
    """Score a batch; if the batch fails, score each image alone so one bad image fails alone.

    Returns, per image in order, its ``ScoreSet`` or the exception that scoring it raised.
    """
    try:
        return list(scorer.score_images(images))
    except Exception as exc:
        if len(images) == 1:
            return [exc]
        log.warning("batch of %d failed (%s); retrying one at a time", len(images), exc)
    out: list[ScoreSet | Exception] = []
    for image in images:
        try:
            out.extend(scorer.score_images([image]))
        except Exception as exc:  # reported per image, never a crash
            out.append(exc)
    return out


def scorer_embedder(scorer: Scorer) -> Embedder | None:
    """The embedder of ``scorer``'s embedding part; None for a classifier alone."""
    parts = scorer.scorers if isinstance(scorer, CombinedScorer) else (scorer,)
    return next((p.embedder for p in parts if isinstance(p, EmbeddingScorer)), None)


def score_keeping_vectors(
    scorer: Scorer, images: Sequence[Image]
) -> tuple[list[ScoreSet], np.ndarray | None]:
    """``scorer.score_images(images)`` plus the image vectors its embedding part computed.

    The vectors (from ``scorer_embedder(scorer)``; None without one) let a caller compare the
    same images with other texts without a second image forward — the matcher playground does.
    """
    parts = scorer.scorers if isinstance(scorer, CombinedScorer) else (scorer,)
    vectors: np.ndarray | None = None
    per_part: list[list[ScoreSet]] = []
    for part in parts:
        if vectors is None and isinstance(part, EmbeddingScorer):
            vectors = np.asarray(part.embedder.embed_images(images), dtype=np.float32)
            per_part.append(part.score_vectors(vectors))
        else:
            per_part.append(list(part.score_images(images)))
    # the same merge CombinedScorer.score_images applies, parts in the same (trust) order
    return [merge_score_sets(sets) for sets in zip(*per_part, strict=True)], vectors


def _first_wins(mappings: Iterable[Mapping[str, V]]) -> dict[str, V]:
    out: dict[str, V] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            out.setdefault(key, value)
    return out


def build_scorer(
    settings: Settings,
    catalog: Catalog | None = None,
    shared: SharedPatternVectors | None = None,
) -> Scorer:
    """The scorer ``settings`` describe (backend, classifiers, catalog, cache, batch size);
    ``UnknownScale`` when a category's score scale is not registered (``check_scales``).

    A classifier backend (``open_nsfw``) → the classifier alone; an embedder (``gme``, ``fake``)
    → an ``EmbeddingScorer`` over the
    catalog, combined with any ``settings.classifiers`` (run first). The catalog's severities
    apply to classifier categories too. Pattern vectors come from the file cache under
    ``settings.pattern_cache_dir``, then ``shared`` (the database of a worker or ``scan``;
    None: files only). Heavy libraries are imported here, not at import.
    """
    catalog = catalog if catalog is not None else load_catalog(settings.catalog_file)
    classifiers = _classifier_scorers(settings, catalog)
    if _classifier_backend(settings):
        built: Scorer = classifiers[0]
    else:
        embedder = _load_embedder(settings)
        cache = PatternVectorCache(settings.pattern_cache_dir)
        scorer = EmbeddingScorer(embedder, catalog, cache, shared)
        built = CombinedScorer([*classifiers, scorer]) if classifiers else scorer
    check_scales(built.scales)  # an unregistered scale fails here, once, not per decision
    return built


def _classifier_scorers(settings: Settings, catalog: Catalog) -> list[ClassifierScorer]:
    """The classifiers ``settings`` name, ``settings.batch_size`` images per forward."""
    from moderation.embedders.registry import load_classifier

    scorers = []
    for name in _classifier_names(settings):
        classifier = load_classifier(name, batch_size=settings.batch_size)
        scorers.append(ClassifierScorer(classifier, _severity(catalog, classifier.category)))
    return scorers


def _load_embedder(settings: Settings) -> Embedder:
    """The embedding backend ``settings`` name, ``settings.batch_size`` inputs per forward."""
    from moderation.embedders.registry import load_embedder

    if settings.backend == "fake":
        return load_embedder(
            "fake",
            batch_size=settings.batch_size,
            device_ms_per_image=settings.fake_device_ms_per_image,
        )
    if settings.backend != "gme":
        return load_embedder(settings.backend, batch_size=settings.batch_size)
    path = settings.gme_path
    if path is None:
        raise ScorerConfigError("backend gme needs MODERATION_GME_PATH (a local weights dir)")
    if not Path(path).is_dir():
        raise ScorerConfigError(f"MODERATION_GME_PATH={path} is not a directory")
    return load_embedder(
        "gme",
        path,
        device=settings.device,
        batch_size=settings.batch_size,
        preprocessor=settings.gme_preprocessor,
    )


def embedding_scale(embedder_name: str) -> str:
    """The score scale of an ``EmbeddingScorer`` over the embedder ``embedder_name``."""
    return f"{embedder_name}_cosine"


def _severity(catalog: Catalog, category: str) -> int:
    """A classifier category's severity: the catalog's, else the default."""
    return catalog.severities.get(category, DEFAULT_CLASSIFIER_SEVERITY)


def _classifier_names(settings: Settings) -> list[str]:
    names = [settings.backend] if _classifier_backend(settings) else settings.classifiers
    return list(dict.fromkeys(names))


def _classifier_backend(settings: Settings) -> bool:
    """Whether the backend is a classifier scoring alone (like the default ``open_nsfw``)."""
    from moderation.embedders.registry import CLASSIFIERS

    return settings.backend in CLASSIFIERS


def scorer_profile(settings: Settings, catalog: Catalog | None = None) -> ScorerProfile:
    """The scales, severities and base thresholds ``build_scorer(settings)`` would have, read
    from the settings, the backends' classes and the catalog — no weights loaded. What the
    threshold adjuster needs in a process that holds no model (the ops worker, the CLI)."""
    from moderation.embedders.registry import CLASSIFIERS, EMBEDDERS, resolve

    catalog = catalog if catalog is not None else load_catalog(settings.catalog_file)
    parts = []
    for name in _classifier_names(settings):
        cls = resolve(name, CLASSIFIERS)  # the class only: its category and scale
        severity = _severity(catalog, cls.category)
        parts.append(ScorerProfile({cls.category: cls.scale}, {cls.category: severity}, {}))
    if not _classifier_backend(settings):
        if settings.backend not in EMBEDDERS:
            resolve(settings.backend, EMBEDDERS)  # raises BackendUnavailable, like build_scorer
        # the registry's names are the embedders' own (EmbedderInfo.name)
        scales = dict.fromkeys(catalog.category_names, embedding_scale(settings.backend))
        parts.append(ScorerProfile(scales, dict(catalog.severities), dict(catalog.thresholds)))
    profile = ScorerProfile.merged(parts)
    check_scales(profile.scales)
    return profile
