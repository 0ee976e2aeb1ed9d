"""The seed's named policies besides content safety (SEED-DIGEST §2, §4): e-commerce
image–text matching, photo-album tagging, and the score bands used to label reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ALBUM_TAGGING",
    "DEFAULT_TAG_LABELS",
    "ECOMMERCE",
    "POLICIES",
    "POLICY_NAMES",
    "SCORE_BANDS",
    "AlbumTag",
    "AlbumTagging",
    "AlbumTaggingPreset",
    "EcommercePreset",
    "Policy",
    "album_tags",
    "ecommerce_verdict",
    "policy_named",
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

# The default album-tagging vocabulary (``MODERATION_TAG_LABELS`` replaces it).
DEFAULT_TAG_LABELS: tuple[str, ...] = (
    "person", "portrait", "group of people", "child", "cat", "dog", "bird", "food", "coffee",
    "drink", "landscape", "mountain", "beach", "sea", "city street", "building", "car",
    "flower", "tree", "sunset", "night sky", "rocket", "astronaut", "document", "screenshot",
)  # fmt: skip


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


@dataclass(frozen=True)
class Policy:
    """One named policy (``MODERATION_POLICY``): how a job's outcome is turned into an action.

    Every policy tiers the safety scores the same way (the content-safety ladder of each score
    scale); they differ in what else decides the action and what a job gets by default.
    """

    name: str
    description: str
    match_decides: bool = False  # the image–text match verdict sets the action (ecommerce)
    tags_by_default: bool = False  # every job gets album tags unless it asks not to

    @property
    def needs_text(self) -> bool:
        """Whether the policy is pointless without a backend that embeds text."""
        return self.match_decides or self.tags_by_default


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy(
            "content_safety",
            "recall-first safety tiers decide (base 0.18 on GME cosine); a match_text match "
            "and tags are reported but never change the action",
        ),
        Policy(
            "ecommerce",
            "marketplace listing check: a job with match_text is accepted (≥ 0.32), sent to "
            "listing review (≥ 0.25) or rejected by its image–text match; a safety violation "
            "still wins",
            match_decides=True,
        ),
        Policy(
            "album_tagging",
            "photo-album tagging: every job gets tags (≥ 0.25, up to 10, fallback 0.8×) unless "
            "it sends tags=false; safety tiers are kept",
            tags_by_default=True,
        ),
    )
}
POLICY_NAMES: tuple[str, ...] = tuple(sorted(POLICIES))


def policy_named(name: str) -> Policy:
    """The policy ``name``; ``ValueError`` naming every policy when unknown."""
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown policy {name!r}; choose one of: {', '.join(POLICY_NAMES)}"
        ) from None
