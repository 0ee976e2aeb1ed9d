"""The seed's scenarios applied to one job (pure): context-adjusted thresholds, the e-commerce
match verdict, album tags, the policy's action and the confidence level of a score.

A job may carry ``JobOptions``: ``match_text`` (e.g. a listing title) for an image–text match,
``tags`` (album tagging) and a ``JobContext`` (SEED-DIGEST §3 step 4). The worker, ``moderation
score`` and the API all call these functions, so a job gets the same outcome everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moderation.thresholds.context import adjust_for_context
from moderation.thresholds.presets import (
    ECOMMERCE,
    AlbumTagging,
    EcommercePreset,
    Policy,
    album_tags,
    ecommerce_verdict,
)
from moderation.thresholds.scales import scale_spec
from moderation.thresholds.strategies import confidence_levels
from moderation.thresholds.tiers import CategoryThresholds, Decision, ladder_from_base

__all__ = [
    "CONTEXT_LEVELS",
    "MAX_MATCH_TEXT",
    "MATCH_ACTIONS",
    "MIN_CONFIDENCE_REFERENCE",
    "JobContext",
    "JobOptions",
    "MatchOutcome",
    "apply_policy",
    "confidence_level",
    "context_thresholds",
    "match_outcome",
    "scenario_record",
    "tags_for",
    "wants_tags",
]

CONTEXT_LEVELS = ("low", "normal", "high")
MAX_MATCH_TEXT = 500  # characters: a listing title or short description
MIN_CONFIDENCE_REFERENCE = 20  # fewer observed scores than this: no confidence level
# What the e-commerce policy does with each match verdict (when safety is not violated).
MATCH_ACTIONS = {"accept": None, "review": "review_match", "reject": "reject_listing"}


@dataclass(frozen=True)
class JobContext:
    """The seed's context of one decision: how many candidates compete, how costly a wrong
    match is, how busy the image is (``adjust_for_context``)."""

    candidates: int | None = None
    criticality: str = "normal"
    image_complexity: str = "normal"

    def __post_init__(self) -> None:
        if self.candidates is not None and (
            isinstance(self.candidates, bool) or not isinstance(self.candidates, int)
        ):
            raise ValueError(f"context.candidates must be an integer, got {self.candidates!r}")
        if self.candidates is not None and self.candidates < 0:
            raise ValueError(f"context.candidates must be >= 0, got {self.candidates}")
        for name in ("criticality", "image_complexity"):
            value = getattr(self, name)
            if value not in CONTEXT_LEVELS:
                raise ValueError(f"context.{name} must be one of {CONTEXT_LEVELS}, got {value!r}")

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> JobContext | None:
        """From a JSON object (unknown keys refused); None stays None."""
        if raw is None:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown context keys {unknown}; known: {sorted(known)}")
        return cls(**dict(raw))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_neutral(self) -> bool:
        return self == JobContext()


@dataclass(frozen=True)
class JobOptions:
    """What a job asks for beyond the safety decision."""

    match_text: str | None = None
    tags: bool | None = None  # None: the policy's default
    context: JobContext | None = None

    def __post_init__(self) -> None:
        if self.match_text is not None:
            if not self.match_text.strip():
                raise ValueError("match_text must not be blank")
            if len(self.match_text) > MAX_MATCH_TEXT:
                raise ValueError(f"match_text is longer than {MAX_MATCH_TEXT} characters")


def wants_tags(options: JobOptions, policy: Policy) -> bool:
    """Whether a job gets album tags: its own choice, else its policy's default."""
    return policy.tags_by_default if options.tags is None else options.tags


def context_thresholds(
    thresholds: Mapping[str, CategoryThresholds], context: JobContext | None
) -> dict[str, CategoryThresholds]:
    """Every category's violation cut-off moved by the seed's context rules of its scale
    (``adjust_for_context``, clamped), the rest of its ladder following (``ladder_from_base``).
    No context, or a neutral one, leaves the thresholds as they are."""
    if context is None or context.is_neutral:
        return dict(thresholds)
    out = {}
    for category, th in thresholds.items():
        base = adjust_for_context(
            th.base,
            candidates=context.candidates,
            criticality=context.criticality,
            image_complexity=context.image_complexity,
            rules=scale_spec(th.scale).context,
        )
        out[category] = dataclasses.replace(th, cutoffs=ladder_from_base(base, th.scale))
    return out


@dataclass(frozen=True)
class MatchOutcome:
    """The image–text match of one job: cosine, verdict and the cut-offs that gave it."""

    score: float
    verdict: str  # accept, review, reject
    accept: float
    review: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def match_outcome(
    score: float,
    scale: str,
    context: JobContext | None = None,
    preset: EcommercePreset = ECOMMERCE,
) -> MatchOutcome:
    """The e-commerce verdict of one image–text cosine: accept ≥ 0.32, review ≥ 0.25, else
    reject; a context moves the accept cut-off by the scale's rules and review by the same step."""
    accept, review = preset.accept, preset.review
    if context is not None and not context.is_neutral:
        moved = adjust_for_context(
            accept,
            candidates=context.candidates,
            criticality=context.criticality,
            image_complexity=context.image_complexity,
            rules=scale_spec(scale).context,
        )
        # rounded: a cut-off a caller reads back should not carry float noise (0.27999…)
        accept, review = round(moved, 6), round(review + (moved - accept), 6)
    cut = EcommercePreset(accept=accept, review=review)
    return MatchOutcome(float(score), ecommerce_verdict(score, cut), accept, review)


def tags_for(label_scores: Mapping[str, float]) -> AlbumTagging:
    """The album tags of one image from its per-label cosines (the seed's preset)."""
    return album_tags(label_scores)


def apply_policy(decision: Decision, policy: Policy, match: MatchOutcome | None) -> Decision:
    """The decision with the policy's action: under ``ecommerce`` a match verdict of review or
    reject sets the action unless the safety tier is already a violation (safety wins)."""
    if not policy.match_decides or match is None or decision.tier.is_violation:
        return decision
    action = MATCH_ACTIONS[match.verdict]
    return decision if action is None else dataclasses.replace(decision, action=action)


def scenario_record(
    match: MatchOutcome | None,
    tagging: AlbumTagging | None,
    context: JobContext | None,
) -> dict[str, Any] | None:
    """The JSON kept with a decision (``decisions.scenario``); None when nothing was asked."""
    out: dict[str, Any] = {}
    if match is not None:
        out["match"] = match.as_dict()
    if tagging is not None:
        out["tags"] = [dataclasses.asdict(t) for t in tagging.tags]
        out["tag_threshold"] = tagging.threshold
    if context is not None:
        out["context"] = context.as_dict()
    return out or None


def confidence_level(
    score: float, reference: Sequence[float], *, min_reference: int = MIN_CONFIDENCE_REFERENCE
) -> str | None:
    """The seed's confidence level of ``score`` among observed scores of its category: high ≥
    p80, medium ≥ p40, low ≥ p20, else none; None with fewer than ``min_reference`` scores."""
    if len(reference) < min_reference:
        return None
    return confidence_levels(list(reference)).level(score)
