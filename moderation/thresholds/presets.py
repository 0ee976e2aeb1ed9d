"""The seed's named policies besides content safety (SEED-DIGEST §2, §4): e-commerce
image–text matching, photo-album tagging, and the score bands used to label reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ALBUM_TAGGING",
    "ECOMMERCE",
    "POLICIES",
    "SCORE_BANDS",
    "AlbumTag",
    "AlbumTagging",
    "AlbumTaggingPreset",
    "EcommercePreset",
    "album_tags",
    "ecommerce_verdict",
    "score_band",
]


# Score bands of GME raw cosine: a labelling helper for reports, never a decision.
SCORE_BANDS: tuple[tuple[float, str], ...] = (
    (0.4, "very_high"),
    (0.3, "high"),
    (0.2, "medium"),
    (0.1, "low"),
)


def score_band(score: float) -> str:
    """``very_high`` (≥ 0.4), ``high`` (≥ 0.3), ``medium`` (≥ 0.2), ``low`` (≥ 0.1) or ``none``."""
    for cut, name in SCORE_BANDS:
        if score >= cut:
            return name
    return "none"


@dataclass(frozen=True)
class EcommercePreset:
    """Product-image ↔ listing-text matching: accept ≥ 0.32, human review ≥ 0.25, else reject."""

    accept: float = 0.32
    review: float = 0.25


ECOMMERCE = EcommercePreset()


def ecommerce_verdict(score: float, preset: EcommercePreset = ECOMMERCE) -> str:
    """``"accept"``, ``"review"`` or ``"reject"`` for one GME cosine."""
    if score >= preset.accept:
        return "accept"
    return "review" if score >= preset.review else "reject"


@dataclass(frozen=True)
class AlbumTaggingPreset:
    """Photo-album tags: keep tags ≥ 0.25, at most 10; when fewer than 3, retry at 0.8× the
    threshold, up to 5 retries; confidence = min(score / 0.5, 1)."""

    threshold: float = 0.25
    max_tags: int = 10
    min_tags: int = 3
    fallback_factor: float = 0.8
    max_retries: int = 5
    full_confidence_at: float = 0.5


ALBUM_TAGGING = AlbumTaggingPreset()


@dataclass(frozen=True)
class AlbumTag:
    label: str
    score: float
    confidence: float  # min(score / 0.5, 1)


@dataclass(frozen=True)
class AlbumTagging:
    tags: tuple[AlbumTag, ...]
    threshold: float  # the threshold that produced ``tags``
    retries: int


def album_tags(
    scores: Mapping[str, float], preset: AlbumTaggingPreset = ALBUM_TAGGING
) -> AlbumTagging:
    """The best tags of one image from its per-label GME cosines, highest score first."""
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    threshold, retries = preset.threshold, 0
    while True:
        kept = [(label, s) for label, s in ranked if s >= threshold][: preset.max_tags]
        if len(kept) >= preset.min_tags or retries == preset.max_retries:
            break
        threshold *= preset.fallback_factor
        retries += 1
    tags = tuple(AlbumTag(label, s, min(s / preset.full_confidence_at, 1.0)) for label, s in kept)
    return AlbumTagging(tags=tags, threshold=threshold, retries=retries)


# Named policies (``settings.policy``): what each is for and its constants.
POLICIES: dict[str, object] = {
    "content_safety": "tier ladders per score scale (moderation.thresholds.scales)",
    "ecommerce": ECOMMERCE,
    "album_tagging": ALBUM_TAGGING,
}
