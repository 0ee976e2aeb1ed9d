"""The matcher playground's engine: one lazily built scorer per dashboard process, the uploaded
image's category scores, and free texts scored against it the GME way (texts as queries)."""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from moderation.embedders.base import QUERY_INSTRUCTION, Embedder
from moderation.scoring.base import Scorer, ScoreSet, similarity
from moderation.thresholds.presets import score_band

if TYPE_CHECKING:
    from moderation.config import Settings
    from moderation.images import DecodedImage

__all__ = [
    "EMBEDDING_BACKENDS",
    "MAX_TEXTS",
    "MAX_TEXT_CHARS",
    "AnalysedImage",
    "Playground",
    "PlaygroundUnavailable",
    "TextScore",
    "TextsRejected",
    "parse_texts",
    "thumbnail_uri",
]

log = logging.getLogger(__name__)

EMBEDDING_BACKENDS = ("gme", "fake")  # backends with a text tower; open_nsfw has none
MAX_TEXTS = 50  # one GME text batch; more is a benchmark, not a playground
MAX_TEXT_CHARS = 300  # a long caption; GME truncates far later, but the page must stay readable
MEMO_SIZE = 32  # analysed images kept so texts can change without re-uploading (~10 kB each)
THUMBNAIL_PX = 320


class PlaygroundUnavailable(RuntimeError):
    """The configured backend cannot be built; the message says which setting to fix."""


class TextsRejected(ValueError):
    """The candidate texts cannot be matched; the message says why, for the user."""


@dataclass(frozen=True)
class TextScore:
    """One candidate text's cosine with the image (in [-1, 1]) and its seed band."""

    text: str
    score: float
    band: str  # policy.score_band: very_high, high, medium, low, none


@dataclass(frozen=True)
class AnalysedImage:
    """An uploaded image as the pipeline would score it, plus what the page shows of it."""

    sha256: str
    width: int
    height: int
    format: str
    byte_size: int
    thumbnail: str  # data: URI of a re-encoded JPEG, never the uploaded bytes
    scores: ScoreSet  # the ScoreSet the pipeline would store for this image
    vector: np.ndarray | None  # the image's embedding (corpus side); None for a classifier


def parse_texts(
    raw: str, *, max_texts: int = MAX_TEXTS, max_chars: int = MAX_TEXT_CHARS
) -> list[str]:
    """One candidate per line, stripped; blank lines and repeats dropped, order kept.

    Raises ``TextsRejected`` naming the first line over ``max_chars`` or the count over
    ``max_texts``.
    """
    texts: list[str] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        text = line.strip()
        if not text or text in texts:
            continue
        if len(text) > max_chars:
            raise TextsRejected(
                f"line {number} has {len(text)} characters; at most {max_chars} per text"
            )
        texts.append(text)
    if len(texts) > max_texts:
        raise TextsRejected(
            f"{len(texts)} candidate texts; at most {max_texts} per match — remove some lines"
        )
    return texts


def thumbnail_uri(decoded: DecodedImage, size: int = THUMBNAIL_PX) -> str:
    """A small JPEG of the decoded pixels as a data: URI (re-encoded: no uploaded bytes echo)."""
    image = decoded.image
    scale = size / max(image.size)
    if scale < 1:  # never upscale; reducing_gap shrinks a huge image cheaply before filtering
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Playground:
    """The dashboard process's scorer, built on first use (thread-safe) and never per request.

    Model calls are serialised by one lock: the dashboard is a low-traffic tool, and two
    concurrent GME forwards would only double the accelerator memory for no gain in latency.
    """

    def __init__(
        self, settings: Settings, build: Callable[[Settings], Scorer] | None = None
    ) -> None:
        self.settings = settings
        self._build = build
        self._scorer: Scorer | None = None
        self._embedder: Embedder | None = None
        self._model_lock = threading.Lock()
        self._memo: OrderedDict[str, AnalysedImage] = OrderedDict()
        self._memo_lock = threading.Lock()

    @property
    def backend(self) -> str:
        return self.settings.backend

    @property
    def matches_texts(self) -> bool:
        """Whether the configured backend can score free texts (known before loading)."""
        return self.settings.backend in EMBEDDING_BACKENDS

    @property
    def loaded(self) -> Scorer | None:
        """The scorer if it was already built; never builds it."""
        return self._scorer

    @property
    def embedder(self) -> Embedder | None:
        return self._embedder

    def scorer(self) -> Scorer:
        """The scorer ``settings`` describe, built once; ``PlaygroundUnavailable`` if it can't be.

        A failed build is not remembered: the next request tries again (weights may appear).
        """
        if self._scorer is not None:
            return self._scorer
        with self._model_lock:
            if self._scorer is None:
                self._scorer, self._embedder = self._load()
        return self._scorer

    def _load(self) -> tuple[Scorer, Embedder | None]:
        # imported here: the registry pulls in a backend's heavy libraries only when asked
        from moderation.embedders.registry import BackendUnavailable
        from moderation.scoring.catalog import CatalogError
        from moderation.scoring.scorers import ScorerConfigError, build_scorer, scorer_embedder
        from moderation.thresholds.scales import UnknownScale

        build = self._build or build_scorer
        log.info("matcher playground: loading the %s backend", self.settings.backend)
        try:
            scorer = build(self.settings)
        except (ScorerConfigError, BackendUnavailable, CatalogError, UnknownScale) as exc:
            raise PlaygroundUnavailable(str(exc)) from exc
        except Exception as exc:  # unreadable weights, a broken model dir: a message, not a 500
            log.exception("matcher playground: the %s backend failed to load", self.backend)
            raise PlaygroundUnavailable(f"cannot load the {self.backend} backend: {exc}") from exc
        return scorer, scorer_embedder(scorer)

    def recall(self, sha256: str) -> AnalysedImage | None:
        """An image analysed earlier in this process, if it is still remembered."""
        with self._memo_lock:
            found = self._memo.get(sha256)
            if found is not None:
                self._memo.move_to_end(sha256)
            return found

    def analyse(self, decoded: DecodedImage) -> AnalysedImage:
        """Score ``decoded`` once (category scores and, with an embedder, its vector)."""
        remembered = self.recall(decoded.sha256)
        if remembered is not None:
            return remembered
        from moderation.scoring.scorers import score_keeping_vectors

        scorer = self.scorer()
        with self._model_lock:
            score_sets, vectors = score_keeping_vectors(scorer, [decoded.image])
        analysed = AnalysedImage(
            sha256=decoded.sha256,
            width=decoded.width,
            height=decoded.height,
            format=decoded.format,
            byte_size=decoded.byte_size,
            thumbnail=thumbnail_uri(decoded),
            scores=score_sets[0],
            vector=None if vectors is None else vectors[0],
        )
        with self._memo_lock:
            self._memo[analysed.sha256] = analysed
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
        return analysed

    def match(self, image: AnalysedImage, texts: Sequence[str]) -> list[TextScore]:
        """Each text's cosine with ``image``, highest first (ties keep the typed order).

        All texts go through ONE ``embed_texts`` call with GME's retrieval instruction (they are
        queries); the image vector is the corpus-side one ``analyse`` already computed.
        """
        embedder = self._embedder
        if image.vector is None or embedder is None:
            raise TextsRejected(
                f"the {self.backend} backend has no text tower: free-text matching needs an "
                "embedding backend (MODERATION_BACKEND=gme with MODERATION_GME_PATH)"
            )
        if not texts:
            return []
        with self._model_lock:
            text_vectors = embedder.embed_texts(list(texts), instruction=QUERY_INSTRUCTION)
        scores = similarity(image.vector[np.newaxis, :], text_vectors)[0]
        rows = [
            TextScore(text, float(score), score_band(float(score)))
            for text, score in zip(texts, scores, strict=True)
        ]
        return sorted(rows, key=lambda row: -row.score)
