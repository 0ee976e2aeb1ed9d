"""Score scales: every per-scale constant of the score → decision path, declared once.

A score only means something on its scale: a GME cosine of 0.25 is a strong match, a classifier
probability of 0.25 is weak. Everything that turns a score into a decision therefore needs
constants per scale — the content-safety tier ladder, the span cut-offs must stay inside, the
audit bands below the threshold, the adjuster's steps and bounds, the context rules. They all
live in one ``ScaleSpec`` here, so a backend declares its scale once (``register_scale``) and
every consumer (tiers, thresholds file, audit sampling, adjusters, context) reads the same spec.

An unknown scale is one rule everywhere: ``UnknownScale`` naming the scale and the known ones.
``check_scales`` raises it at start-up (scorer built, pipeline context, adjuster run), so a
misconfigured backend never reaches a decision. Pure: no I/O imports.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from moderation.domain import RiskTier
from moderation.thresholds.context import ContextRules

__all__ = [
    "SCALES",
    "AdjusterSteps",
    "ScaleSpec",
    "UnknownScale",
    "check_scales",
    "known_scales",
    "register_scale",
    "scale_spec",
]


class UnknownScale(ValueError):
    """A score scale with no registered ``ScaleSpec``."""


@dataclass(frozen=True)
class AdjusterSteps:
    """How far an adaptive adjuster may move a threshold on this scale, in score units."""

    bounds: tuple[float, float]  # the threshold never leaves [lo, hi]
    max_step_up: float  # per run
    max_step_down: float
    resolution: float  # candidate thresholds are this far apart
    # the most a run lowers the threshold when only the bound, not the recall estimate, is
    # short of target (``RecallTargetAdjuster.thin_step_down``; None: no smoothing)
    thin_step_down: float | None = None


@dataclass(frozen=True)
class ScaleSpec:
    """The constants of one score scale (see the module docstring)."""

    name: str
    cutoffs: Mapping[RiskTier, float]  # content-safety preset: lowest score of each tier
    adjuster: AdjusterSteps
    # (band name, max distance below the threshold, inclusion probability); the last unbounded
    audit_bands: tuple[tuple[str, float, float], ...]
    context: ContextRules = field(default_factory=ContextRules)
    span: tuple[float, float] = (0.0, 1.0)  # cut-offs stay inside it
    description: str = ""

    def __post_init__(self) -> None:
        ladder = [t for t in RiskTier if t is not RiskTier.CLEAR]
        if set(self.cutoffs) != set(ladder):
            raise ValueError(f"scale {self.name}: cut-offs needed for exactly {ladder}")
        values = [self.cutoffs[t] for t in ladder]
        lo, hi = self.span
        if any(a > b for a, b in zip(values, values[1:], strict=False)) or not (
            lo <= values[0] and values[-1] <= hi
        ):
            raise ValueError(f"scale {self.name}: cut-offs must rise inside {self.span}")
        if not self.audit_bands or not math.isinf(self.audit_bands[-1][1]):
            raise ValueError(f"scale {self.name}: the last audit band must be unbounded")

    @property
    def base(self) -> float:
        """The preset violation cut-off (the MEDIUM tier's)."""
        return self.cutoffs[RiskTier.MEDIUM]


SCALES: dict[str, ScaleSpec] = {}


def register_scale(spec: ScaleSpec, *, replace: bool = False) -> ScaleSpec:
    """Declare a scale; registering a different spec under a taken name needs ``replace``."""
    current = SCALES.get(spec.name)
    if current is not None and current != spec and not replace:
        raise ValueError(f"score scale {spec.name!r} is already registered differently")
    SCALES[spec.name] = spec
    return spec


def known_scales() -> list[str]:
    return sorted(SCALES)


def scale_spec(name: str) -> ScaleSpec:
    """The spec of ``name``; ``UnknownScale`` (naming the known scales) when none."""
    try:
        return SCALES[name]
    except KeyError:
        raise UnknownScale(
            f"score scale {name!r} is not registered (known: {', '.join(known_scales())}); "
            "declare it with moderation.thresholds.scales.register_scale"
        ) from None


def check_scales(scales: Mapping[str, str]) -> None:
    """Start-up check of a scorer's ``{category: scale}``: every scale must be registered."""
    unknown = sorted({s for s in scales.values() if s not in SCALES})
    if unknown:
        categories = sorted(c for c, s in scales.items() if s in unknown)
        raise UnknownScale(
            f"score scale(s) {', '.join(map(repr, unknown))} of categories {categories} are not "
            f"registered (known: {', '.join(known_scales())}); declare them with "
            "moderation.thresholds.scales.register_scale"
        )


# --- the built-in scales ------------------------------------------------------------------------

# GME raw cosines (SEED-DIGEST §4): base 0.18 (recall-first) = violation, "review now";
# ≥ 0.22 high; ≥ 0.30 extreme; ≥ 0.12 warning. Audit bands are dense just below the threshold,
# where misses concentrate (cosine spread ~0.05), thin far away. Context rules: the seed's.
GME_COSINE = register_scale(
    ScaleSpec(
        "gme_cosine",
        cutoffs={
            RiskTier.WARNING: 0.12,
            RiskTier.MEDIUM: 0.18,
            RiskTier.HIGH: 0.22,
            RiskTier.EXTREME: 0.30,
        },
        adjuster=AdjusterSteps(
            bounds=(0.1, 0.5),
            max_step_up=0.01,
            max_step_down=0.02,
            resolution=0.0025,
            thin_step_down=0.0025,
        ),  # fmt: skip
        audit_bands=(
            ("near", 0.02, 0.2),
            ("mid", 0.05, 0.075),
            ("far", 0.10, 0.02),
            ("rest", math.inf, 0.005),
        ),  # fmt: skip
        context=ContextRules(),
        description="GME-Qwen2-VL cosine similarity",
    )
)
# The fake test embedder's cosines: unrelated pairs spread around 0 with std ≈ 1/sqrt(768) and a
# matching image scores ≈ 1, so GME's constants separate them the same way (its own name keeps
# DB threshold versions apart).
register_scale(
    dataclasses.replace(GME_COSINE, name="fake_cosine", description="fake embedder cosine (tests)")
)
# Classifier probabilities in [0, 1] (Open-NSFW): recall-first as well — well below the 0.8
# "NSFW" point its authors suggest. Probabilities spread over the unit interval: audit bands
# 2.5–3× wider, adjuster steps 2.5× (a 0.025 step moves about the score mass a cosine 0.01
# does), context steps doubled with an inner clamp (0 or 1 flags everything or nothing).
register_scale(
    ScaleSpec(
        "probability",
        cutoffs={
            RiskTier.WARNING: 0.15,
            RiskTier.MEDIUM: 0.30,
            RiskTier.HIGH: 0.60,
            RiskTier.EXTREME: 0.85,
        },
        adjuster=AdjusterSteps(
            bounds=(0.05, 0.95),
            max_step_up=0.025,
            max_step_down=0.05,
            resolution=0.005,
            thin_step_down=0.005,
        ),  # fmt: skip
        audit_bands=(
            ("near", 0.05, 0.2),
            ("mid", 0.15, 0.075),
            ("far", 0.30, 0.02),
            ("rest", math.inf, 0.005),
        ),  # fmt: skip
        context=ContextRules().scaled(2.0, (0.05, 0.95)),
        description="classifier probability (Open-NSFW)",
    )
)
