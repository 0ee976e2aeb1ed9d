"""Threshold policy: per-category scores → tiers → one decision per image; the seed's presets.

Where a category's cut-offs come from, highest precedence first: its active threshold version in
the DB (calibrated, set by hand or adapted), the ``thresholds_file`` YAML, the preset of its
score scale. ``resolve_thresholds`` in ``db/repositories/thresholds.py`` applies that order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moderation.domain import RiskTier

__all__ = [
    "ACTIONS",
    "ALBUM_TAGGING",
    "CONTENT_SAFETY_CUTOFFS",
    "ECOMMERCE",
    "LADDER",
    "POLICIES",
    "SCALE_RANGES",
    "SCORE_BANDS",
    "AlbumTag",
    "AlbumTagging",
    "AlbumTaggingPreset",
    "CategoryThresholds",
    "Decision",
    "EcommercePreset",
    "album_tags",
    "apply_overrides",
    "decide",
    "ecommerce_verdict",
    "ladder_from_base",
    "parse_threshold_overrides",
    "preset_thresholds",
    "review_priority",
    "score_band",
    "summarise",
    "tier_for",
]

# Non-clear tiers, least to most severe; a cut-off is the lowest score that reaches the tier.
LADDER: tuple[RiskTier, ...] = (RiskTier.WARNING, RiskTier.MEDIUM, RiskTier.HIGH, RiskTier.EXTREME)

# Content-safety preset, per score scale. `gme_cosine` is the seed's (SEED-DIGEST §4): base
# 0.18 (recall-first) = violation, "review now"; ≥ 0.22 high; ≥ 0.30 extreme; ≥ 0.12 warning.
CONTENT_SAFETY_CUTOFFS: dict[str, dict[RiskTier, float]] = {
    "gme_cosine": {
        RiskTier.WARNING: 0.12,
        RiskTier.MEDIUM: 0.18,
        RiskTier.HIGH: 0.22,
        RiskTier.EXTREME: 0.30,
    },
    # The fake test embedder's cosines: unrelated image/phrasing pairs spread around 0 with
    # std ≈ 1/sqrt(768) ≈ 0.036 and a matching image scores ≈ 1, so the seed's GME cut-offs
    # separate them the same way (a different scale name keeps DB thresholds apart).
    "fake_cosine": {
        RiskTier.WARNING: 0.12,
        RiskTier.MEDIUM: 0.18,
        RiskTier.HIGH: 0.22,
        RiskTier.EXTREME: 0.30,
    },
    # Classifier probabilities in [0, 1] (Open-NSFW): recall-first as well — well below the
    # 0.8 "NSFW" point its authors suggest, so borderline images reach a human.
    "probability": {
        RiskTier.WARNING: 0.15,
        RiskTier.MEDIUM: 0.30,
        RiskTier.HIGH: 0.60,
        RiskTier.EXTREME: 0.85,
    },
}

ACTIONS: dict[RiskTier, str] = {
    RiskTier.CLEAR: "allow",
    RiskTier.WARNING: "watch",
    RiskTier.MEDIUM: "review_now",
    RiskTier.HIGH: "review_now",
    RiskTier.EXTREME: "review_now",
}


@dataclass(frozen=True)
class CategoryThresholds:
    """Tier cut-offs of one category on its score scale, and where they came from."""

    category: str
    cutoffs: Mapping[RiskTier, float]
    severity: int = 2  # 1 (low) … 4 (critical); weights review priority
    scale: str = "gme_cosine"
    version_id: int | None = None  # threshold_versions.id; None = preset or thresholds file
    source: str = "preset"  # "preset", "file" (settings.thresholds_file) or "version" (DB)

    def __post_init__(self) -> None:
        missing = [t for t in LADDER if t not in self.cutoffs]
        if missing:
            raise ValueError(f"{self.category}: cut-offs missing for {missing}")
        values = [self.cutoffs[t] for t in LADDER]
        if any(a > b for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"{self.category}: cut-offs must not decrease with tier: {values}")
        if not 1 <= self.severity <= 4:
            raise ValueError(f"{self.category}: severity must be 1..4, got {self.severity}")

    @property
    def base(self) -> float:
        """The violation cut-off (the MEDIUM tier's)."""
        return self.cutoffs[RiskTier.MEDIUM]


@dataclass(frozen=True)
class Decision:
    """The verdict on one image: worst tier over its categories and what to do about it."""

    tier: RiskTier
    action: str
    category: str | None  # the category that set the tier (None when clear)
    priority: float  # review priority: higher first; severity-weighted
    category_tiers: Mapping[str, RiskTier] = field(default_factory=dict)
    threshold_versions: Mapping[str, int | None] = field(default_factory=dict)
    policy: str = "content_safety"


def tier_for(score: float, cutoffs: Mapping[RiskTier, float]) -> RiskTier:
    """The highest tier whose cut-off ``score`` reaches (``>=``); CLEAR when none."""
    tier = RiskTier.CLEAR
    for candidate in LADDER:
        if score >= cutoffs[candidate]:
            tier = candidate
    return tier


def review_priority(score: float, tier: RiskTier, th: CategoryThresholds) -> float:
    """Severity-weighted review priority: severity × (tier rank + position of the score inside
    its tier band, in [0, 1)). A critical category's medium outranks a low one's high."""
    if tier is RiskTier.CLEAR:
        low, high = 0.0, th.cutoffs[RiskTier.WARNING]
    else:
        low = th.cutoffs[tier]
        nxt = LADDER.index(tier) + 1
        high = th.cutoffs[LADDER[nxt]] if nxt < len(LADDER) else max(1.0, low + 1e-9)
    frac = 0.0 if high <= low else min(max((score - low) / (high - low), 0.0), 0.999)
    return th.severity * (tier.rank + frac)


def decide(
    scores: Mapping[str, float],
    thresholds: Mapping[str, CategoryThresholds],
    policy: str = "content_safety",
) -> Decision:
    """Tier every scored category; the image gets the worst tier (ties: higher priority).

    ``priority`` is the highest severity-weighted review priority over all categories, so a
    critical category's medium still jumps the queue when another category tiers higher.
    Categories without thresholds are an error: an unthresholded score would silently pass.
    """
    unknown = sorted(set(scores) - set(thresholds))
    if unknown:
        raise KeyError(f"no thresholds for categories {unknown}")
    if not scores:
        return Decision(RiskTier.CLEAR, ACTIONS[RiskTier.CLEAR], None, 0.0, policy=policy)
    tiers: dict[str, RiskTier] = {}
    priorities: dict[str, float] = {}
    for category, score in scores.items():
        th = thresholds[category]
        tiers[category] = tier_for(score, th.cutoffs)
        priorities[category] = review_priority(score, tiers[category], th)
    worst = max(scores, key=lambda c: (tiers[c].rank, priorities[c]))
    tier = tiers[worst]
    return Decision(
        tier=tier,
        action=ACTIONS[tier],
        category=worst if tier is not RiskTier.CLEAR else None,
        priority=max(priorities.values()),
        category_tiers=tiers,
        threshold_versions={c: thresholds[c].version_id for c in scores},
        policy=policy,
    )


def summarise(decisions: Iterable[Decision]) -> dict[str, int]:
    """The seed's content-safety summary: violations (medium and up), warnings, clear, and the
    count of each tier."""
    tiers = Counter(d.tier for d in decisions)
    out = {
        "total": sum(tiers.values()),
        "violations": sum(n for t, n in tiers.items() if t.is_violation),
        "warnings": tiers[RiskTier.WARNING],
        "clear": tiers[RiskTier.CLEAR],
    }
    out.update({f"tier_{t.value}": tiers[t] for t in RiskTier})
    return out


def preset_thresholds(
    scales: Mapping[str, str],
    severities: Mapping[str, int] | None = None,
    bases: Mapping[str, float] | None = None,
) -> dict[str, CategoryThresholds]:
    """The content-safety preset for each category on its scale (no DB versions yet).

    ``bases`` (e.g. a catalog's per-category ``threshold``) moves a category's violation
    cut-off; the other tiers follow by ``ladder_from_base``, the one rule every re-based ladder
    (calibration, adjusters, file overrides, catalog) uses.
    """
    severities = severities or {}
    bases = bases or {}
    out = {}
    for category, scale in scales.items():
        if scale not in CONTENT_SAFETY_CUTOFFS:
            raise KeyError(f"no content-safety preset for score scale {scale!r} ({category})")
        cutoffs = CONTENT_SAFETY_CUTOFFS[scale]
        if category in bases:
            cutoffs = ladder_from_base(bases[category], scale)
        out[category] = CategoryThresholds(
            category=category,
            cutoffs=cutoffs,
            severity=severities.get(category, 2),
            scale=scale,
        )
    return out


# --- calibrated ladders and file overrides -----------------------------------------------------

# The span each score scale lives in; tier cut-offs are kept inside it. Cosines can be
# negative, but no violation threshold is, so [0, 1] serves every scale not listed.
SCALE_RANGES: dict[str, tuple[float, float]] = {
    "gme_cosine": (0.0, 1.0),
    "probability": (0.0, 1.0),
}
DEFAULT_SCALE_RANGE = (0.0, 1.0)


def ladder_from_base(base: float, scale: str) -> dict[RiskTier, float]:
    """The preset ladder of ``scale`` moved so that its violation cut-off (MEDIUM) is ``base``.

    Calibration yields one number, the violation threshold; the other tiers follow it by a
    piecewise-linear map of the scale that fixes its ends: cut-offs below the preset base are
    scaled into [lo, base], those above into [base, hi]. Order is kept, every cut-off stays on
    the scale, and ``base`` equal to the preset's gives the preset back exactly.
    """
    if scale not in CONTENT_SAFETY_CUTOFFS:
        raise KeyError(f"no content-safety preset for score scale {scale!r}")
    preset = CONTENT_SAFETY_CUTOFFS[scale]
    lo, hi = SCALE_RANGES.get(scale, DEFAULT_SCALE_RANGE)
    if not lo <= base <= hi:
        raise ValueError(f"threshold {base:g} is outside the {scale} range [{lo:g}, {hi:g}]")
    pb = preset[RiskTier.MEDIUM]
    if base == pb:
        return dict(preset)
    out = {}
    for tier, value in preset.items():
        if value <= pb:
            out[tier] = lo + (value - lo) * (base - lo) / (pb - lo)
        else:
            out[tier] = base + (value - pb) * (hi - base) / (hi - pb)
    out[RiskTier.MEDIUM] = base  # exactly: a calibrated threshold must not move by rounding
    return out


def _number(category: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{category}: {key} must be a number, got {value!r}")
    return float(value)


def _parse_override(category: str, entry: Any) -> CategoryThresholds:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{category}: expected a mapping with scale and base or cutoffs")
    unknown = set(entry) - {"scale", "base", "cutoffs", "severity"}
    if unknown:
        raise ValueError(f"{category}: unknown keys {sorted(unknown)}")
    scale = entry.get("scale")
    if scale not in CONTENT_SAFETY_CUTOFFS:
        raise ValueError(
            f"{category}: scale must be one of {sorted(CONTENT_SAFETY_CUTOFFS)}, got {scale!r}"
        )
    if ("base" in entry) == ("cutoffs" in entry):
        raise ValueError(f"{category}: give exactly one of base or cutoffs")
    if "base" in entry:
        cutoffs = ladder_from_base(_number(category, "base", entry["base"]), scale)
    else:
        raw = entry["cutoffs"]
        if not isinstance(raw, Mapping) or set(raw) != {t.value for t in LADDER}:
            raise ValueError(f"{category}: cutoffs needs exactly {[t.value for t in LADDER]}")
        cutoffs = {RiskTier(k): _number(category, k, v) for k, v in raw.items()}
    severity = entry.get("severity", 2)
    if not isinstance(severity, int) or isinstance(severity, bool):
        raise ValueError(f"{category}: severity must be an integer 1..4, got {severity!r}")
    return CategoryThresholds(category, cutoffs, severity=severity, scale=scale, source="file")


def parse_threshold_overrides(document: Any) -> dict[str, CategoryThresholds]:
    """Validate a thresholds-file document::

        categories:
          weapons: {scale: gme_cosine, base: 0.20}          # ladder moved to this base
          sexual:
            scale: probability
            cutoffs: {warning: 0.2, medium: 0.35, high: 0.6, extreme: 0.9}

    ``severity`` (1–4) is optional and applies only when the scorer declares none. An override
    applies only to a scorer on the same scale. Errors name the category and the problem.
    """
    if document is None:
        return {}
    if not isinstance(document, Mapping) or not isinstance(document.get("categories"), Mapping):
        raise ValueError("a thresholds file needs a top-level `categories:` mapping")
    if set(document) - {"categories"}:
        raise ValueError(f"unknown top-level keys {sorted(set(document) - {'categories'})}")
    return {str(c): _parse_override(str(c), e) for c, e in document["categories"].items()}


def apply_overrides(
    resolved: Mapping[str, CategoryThresholds],
    overrides: Mapping[str, CategoryThresholds],
    severities: Mapping[str, int] | None = None,
) -> dict[str, CategoryThresholds]:
    """``resolved`` with each override on the same scale applied (others are ignored: a
    probability cut-off must never be applied to a cosine). Scorer severities win."""
    severities = severities or {}
    out = dict(resolved)
    for category, current in resolved.items():
        override = overrides.get(category)
        if override is None or override.scale != current.scale:
            continue
        out[category] = CategoryThresholds(
            category,
            override.cutoffs,
            severity=severities.get(category, override.severity),
            scale=override.scale,
            source="file",
        )
    return out


# --- the seed's other scenario presets (SEED-DIGEST §2, §4) ------------------------------------

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
    "content_safety": CONTENT_SAFETY_CUTOFFS,
    "ecommerce": ECOMMERCE,
    "album_tagging": ALBUM_TAGGING,
}
