"""Tiers: per-category scores → tiers → one decision per image (pure).

Where a category's cut-offs come from, highest precedence first: its active threshold version in
the DB (calibrated, set by hand or adapted), the ``thresholds_file`` YAML, the catalog's base,
the preset of its score scale (``scales``). ``resolver.resolve_thresholds`` applies that order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from moderation.domain import TIERS, RiskTier
from moderation.thresholds.scales import scale_spec

__all__ = [
    "ACTIONS",
    "LADDER",
    "CategoryThresholds",
    "Decision",
    "decide",
    "ladder_from_base",
    "preset_thresholds",
    "review_priority",
    "summarise",
    "tier_for",
]

# Non-clear tiers, least to most severe; a cut-off is the lowest score that reaches the tier.
LADDER: tuple[RiskTier, ...] = tuple(t for t in RiskTier if t is not RiskTier.CLEAR)

ACTIONS: dict[RiskTier, str] = {tier: look.action for tier, look in TIERS.items()}


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
        cutoffs = scale_spec(scale).cutoffs
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


def ladder_from_base(base: float, scale: str) -> dict[RiskTier, float]:
    """The preset ladder of ``scale`` moved so that its violation cut-off (MEDIUM) is ``base``.

    Calibration yields one number, the violation threshold; the other tiers follow it by a
    piecewise-linear map of the scale that fixes its ends: cut-offs below the preset base are
    scaled into [lo, base], those above into [base, hi]. Order is kept, every cut-off stays on
    the scale, and ``base`` equal to the preset's gives the preset back exactly.
    """
    spec = scale_spec(scale)
    preset, (lo, hi) = spec.cutoffs, spec.span
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
