"""Threshold policy: per-category scores → per-category tiers → one decision per image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from moderation.domain import RiskTier

__all__ = [
    "ACTIONS",
    "CONTENT_SAFETY_CUTOFFS",
    "CategoryThresholds",
    "Decision",
    "decide",
    "preset_thresholds",
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
    version_id: int | None = None  # threshold_versions.id; None = the policy preset

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


def _priority(score: float, tier: RiskTier, th: CategoryThresholds) -> float:
    """severity × (tier rank + position of the score inside its tier band, in [0, 1))."""
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
    """Tier every scored category, then take the worst; ties go to the higher priority.

    Categories without thresholds are an error: an unthresholded score would silently pass.
    """
    unknown = sorted(set(scores) - set(thresholds))
    if unknown:
        raise KeyError(f"no thresholds for categories {unknown}")
    tiers: dict[str, RiskTier] = {}
    best: tuple[int, float, str] | None = None
    for category, score in scores.items():
        th = thresholds[category]
        tier = tier_for(score, th.cutoffs)
        tiers[category] = tier
        key = (tier.rank, _priority(score, tier, th), category)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return Decision(RiskTier.CLEAR, ACTIONS[RiskTier.CLEAR], None, 0.0, policy=policy)
    tier = tiers[best[2]]
    return Decision(
        tier=tier,
        action=ACTIONS[tier],
        category=best[2] if tier is not RiskTier.CLEAR else None,
        priority=best[1],
        category_tiers=tiers,
        threshold_versions={c: thresholds[c].version_id for c in scores},
        policy=policy,
    )


def preset_thresholds(
    scales: Mapping[str, str],
    severities: Mapping[str, int] | None = None,
    bases: Mapping[str, float] | None = None,
) -> dict[str, CategoryThresholds]:
    """The content-safety preset for each category on its scale (no DB versions yet).

    ``bases`` (e.g. a catalog's per-category ``threshold``) moves a category's violation
    cut-off: the whole ladder shifts by ``base - preset base``, keeping the preset's band widths.
    """
    severities = severities or {}
    bases = bases or {}
    out = {}
    for category, scale in scales.items():
        if scale not in CONTENT_SAFETY_CUTOFFS:
            raise KeyError(f"no content-safety preset for score scale {scale!r} ({category})")
        cutoffs = CONTENT_SAFETY_CUTOFFS[scale]
        if category in bases:
            shift = bases[category] - cutoffs[RiskTier.MEDIUM]
            cutoffs = {tier: value + shift for tier, value in cutoffs.items()}
        out[category] = CategoryThresholds(
            category=category,
            cutoffs=cutoffs,
            severity=severities.get(category, 2),
            scale=scale,
        )
    return out
