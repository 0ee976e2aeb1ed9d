"""Scorer profiles as stored in the DB, and their union (pure: no model, no database).

A pipeline process registers ``profile_categories(scorer)`` — per category its scale,
severity and catalog base — and the threshold adjuster adjusts the ``union_profiles`` of the
profiles seen recently. Two live profiles that put one category on different scales cannot
both be adjusted with one threshold: that category is left out, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from moderation.scoring.base import Scorer
from moderation.scoring.scorers import ScorerProfile

__all__ = ["profile_categories", "profile_from_categories", "union_profiles"]


def profile_categories(scorer: Scorer | ScorerProfile) -> dict[str, dict[str, Any]]:
    """``{category: {"scale", "severity", "base"}}`` of ``scorer`` (JSON-ready; base None when
    the catalog sets none)."""
    return {
        category: {
            "scale": scale,
            "severity": int(scorer.severities[category]),
            "base": (
                float(scorer.base_thresholds[category])
                if category in scorer.base_thresholds
                else None
            ),
        }
        for category, scale in scorer.scales.items()
    }


def profile_from_categories(categories: Mapping[str, Mapping[str, Any]]) -> ScorerProfile:
    """The inverse of ``profile_categories``."""
    return ScorerProfile(
        {c: str(v["scale"]) for c, v in categories.items()},
        {c: int(v["severity"]) for c, v in categories.items()},
        {c: float(v["base"]) for c, v in categories.items() if v.get("base") is not None},
    )


def union_profiles(
    named: Sequence[tuple[str, ScorerProfile]],
) -> tuple[ScorerProfile, dict[str, str]]:
    """Union of ``(worker, profile)`` pairs, most recently seen first, and the categories
    left out because the profiles put them on different scales (category → why).

    A category on one scale everywhere keeps that scale; its severity and base come from the
    most recently seen profile that has them.
    """
    seen: dict[str, dict[str, list[str]]] = {}  # category → scale → workers
    for worker, profile in named:
        for category, scale in profile.scales.items():
            seen.setdefault(category, {}).setdefault(scale, []).append(worker)
    conflicts = {
        category: "live scorers disagree on its scale: "
        + "; ".join(f"{scale} ({', '.join(ws)})" for scale, ws in sorted(scales.items()))
        for category, scales in seen.items()
        if len(scales) > 1
    }
    merged = ScorerProfile.merged([profile for _, profile in named])
    keep = [c for c in merged.scales if c not in conflicts]
    return (
        ScorerProfile(
            {c: merged.scales[c] for c in keep},
            {c: merged.severities[c] for c in keep},
            {c: merged.base_thresholds[c] for c in keep if c in merged.base_thresholds},
        ),
        conflicts,
    )
