"""Reviewer feedback → proposed threshold changes: the seed's adjuster and a recall-target one."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from moderation.thresholds.audit import (
    RecallCurve,
    estimate_miss_rate,
    estimate_precision,
    recall_curve,
)
from moderation.thresholds.evidence import Evidence, Feedback
from moderation.thresholds.scales import scale_spec

__all__ = [
    "CONTENT_SAFETY_BASE",
    "Proposal",
    "RecallTargetAdjuster",
    "SeedAdjuster",
    "queue_share",
    "seed_proposal",
]


@dataclass(frozen=True)
class Proposal:
    """A proposed threshold; the caller decides whether to persist it as a new version."""

    strategy: str
    previous: float
    value: float
    reason: str
    evidence: Mapping[str, Any]  # JSON-serialisable: becomes threshold_versions.stats

    @property
    def changed(self) -> bool:
        return self.value != self.previous


# --- the seed's AdaptiveThresholdSystem (SEED-DIGEST §5) ------------------------------------

SEED_HISTORY = 1000
SEED_WINDOW = 100
SEED_MIN_FEEDBACK = 50
SEED_STEP = 0.01
SEED_FP_LIMIT = 0.1
SEED_FN_LIMIT = 0.15
SEED_BOUNDS = (0.1, 0.5)
SEED_INITIAL = 0.28
CONTENT_SAFETY_BASE = 0.18  # the seed's ContentSafetyChecker base threshold


def seed_proposal(threshold: float, feedback: Sequence[Feedback]) -> Proposal:
    """One call of the seed's ``adjust_threshold`` on ``feedback`` (oldest first), exactly.

    Over the last 100 of the (≤ 1000 kept) items, *both rates divide by the window size*, not
    by the number of negatives/positives: FP rate = #(score ≥ thr ∧ not violation) / window,
    FN rate = #(score < thr ∧ violation) / window, both against the *current* threshold.
    FP rate > 0.10 → +0.01; else FN rate > 0.15 → −0.01; then clamp to [0.1, 0.5]. Fewer than
    50 items: no change and no clamp. Floating-point steps accumulate as in the seed.
    """
    history = list(feedback)[-SEED_HISTORY:]
    if len(history) < SEED_MIN_FEEDBACK:
        reason = f"thin evidence: {len(history)} feedback items < {SEED_MIN_FEEDBACK}"
        return Proposal("seed", threshold, threshold, reason, {"history": len(history)})
    recent = history[-SEED_WINDOW:]
    fp = sum(1 for f in recent if f.score >= threshold and not f.is_violation)
    fn = sum(1 for f in recent if f.score < threshold and f.is_violation)
    fp_rate, fn_rate = fp / len(recent), fn / len(recent)
    value = threshold
    if fp_rate > SEED_FP_LIMIT:
        value += SEED_STEP
        reason = f"false-positive rate {fp_rate:.1%} > {SEED_FP_LIMIT:.0%}: raise"
    elif fn_rate > SEED_FN_LIMIT:
        value -= SEED_STEP
        reason = f"false-negative rate {fn_rate:.1%} > {SEED_FN_LIMIT:.0%}: lower"
    else:
        reason = "false-positive and false-negative rates within limits"
    value = max(SEED_BOUNDS[0], min(SEED_BOUNDS[1], value))
    evidence = {
        "history": len(history),
        "window": len(recent),
        "false_positives": fp,
        "false_negatives": fn,
        "fp_rate": fp_rate,
        "fn_rate": fn_rate,
        "rate_denominator": "window",
    }
    return Proposal("seed", threshold, value, reason, evidence)


class SeedAdjuster:
    """The seed's stateful AdaptiveThresholdSystem: feedback in, threshold moves in 0.01 steps.

    Its flaw is kept on purpose (it is the baseline): reviewers only see items above the
    threshold, so misses are never observed unless audits are mixed in — and even then the
    FN rate is diluted by the whole window. Non-finite scores are refused rather than stored
    (the seed would store them; they would never count as FP/FN but would dilute both rates).
    """

    def __init__(self, initial_threshold: float = SEED_INITIAL) -> None:
        self.threshold = initial_threshold
        self.history: list[Feedback] = []
        self.rejected = 0

    @classmethod
    def content_safety(cls) -> SeedAdjuster:
        return cls(CONTENT_SAFETY_BASE)

    def add_feedback(self, score: float, is_violation: bool, timestamp: float) -> bool:
        """Append one reviewed item; False (and counted) when the score is not finite."""
        if not math.isfinite(score):
            self.rejected += 1
            return False
        self.history.append(Feedback(float(score), bool(is_violation), float(timestamp)))
        if len(self.history) > SEED_HISTORY:
            self.history = self.history[-SEED_HISTORY:]
        return True

    def adjust(self) -> Proposal:
        proposal = seed_proposal(self.threshold, self.history)
        self.threshold = proposal.value
        return proposal

    def contextual_threshold(
        self, *, high_precision_required: bool = False, many_candidates: bool = False
    ) -> float:
        """The seed's ``get_contextual_threshold``: +0.03 / +0.02, deliberately not clamped."""
        base = self.threshold
        if high_precision_required:
            base += 0.03
        if many_candidates:
            base += 0.02
        return base


# --- recall target -----------------------------------------------------------------------


@dataclass(frozen=True)
class RecallTargetAdjuster:
    """Hold recall's lower confidence bound ≥ ``target`` at the highest threshold that allows.

    A risk-controlling update in the spirit of RCPS / Learn-then-Test (Bates et al. 2021),
    re-run on a sliding evidence window: among candidates within one bounded step of the current
    threshold, take the highest whose IPW recall lower bound (:func:`recall_curve`) meets the
    target, every candidate in between passing too. The bound is the smaller of the one over the
    whole horizon and the one over its most recent ``recent_s`` (drift shows there first).
    If the current value fails, lower to the highest passing candidate; if none in reach
    passes, to the cheapest candidate with (nearly) the best bound. Nothing changes when the
    evidence is thin: too few violations or audits — then not even a current value outside
    ``bounds`` is clamped — or so few audits that even a sample with no miss at all could not
    certify the target.
    """

    target: float = 0.95
    confidence: float = 0.9  # one-sided, of the recall lower bound
    max_step_up: float = 0.01
    max_step_down: float = 0.02
    resolution: float = 0.0025
    min_positives: int = 30
    min_audited: int = 200
    bounds: tuple[float, float] = SEED_BOUNDS
    horizon_s: float | None = None  # evidence routed earlier than now − horizon is ignored
    recent_s: float | None = None  # the drift-sensitive recent part of the horizon
    raise_margin: float = 0.0  # extra bound slack demanded before raising (hysteresis)
    flat_tolerance: float = 0.002  # bounds this close count as equal when none passes
    # Load-aware control (off by default): never propose a threshold whose estimated queue
    # share (HT: Σ_{s ≥ t} 1/π ÷ Σ 1/π over the evidence) exceeds ``max_load_share`` while the
    # recall bound there is ≥ ``floor_target`` — the target degrades to the floor, with an
    # alert in the reason and ``evidence["load_capped"]``; below the floor recall wins.
    max_load_share: float | None = None
    floor_target: float | None = None
    # Smoothing (on by default; None turns it off): when the recall *estimate* at the current
    # threshold meets the target (over the horizon and its recent part) and only the bound
    # falls short — the evidence is too thin to certify, it shows no shortfall — lower by at
    # most this per run (one grid step). A shortfall in the estimate itself still lowers by up
    # to ``max_step_down``. Measured safe in both simulations (docs/adaptive.md).
    thin_step_down: float | None = 0.0025

    @classmethod
    def for_scale(cls, scale: str, **overrides: Any) -> RecallTargetAdjuster:
        """Bounds and steps in the units of a score scale, with any field overridden."""
        steps = scale_spec(scale).adjuster
        return cls(**{**dataclasses.asdict(steps), **overrides})

    def __post_init__(self) -> None:
        if not (0.0 < self.target < 1.0 and 0.5 <= self.confidence < 1.0):
            raise ValueError("target must be in (0, 1) and confidence in [0.5, 1)")
        if not (0 < self.resolution <= min(self.max_step_up, self.max_step_down)):
            raise ValueError("resolution must be positive and no larger than either step")
        if not self.bounds[0] < self.bounds[1]:
            raise ValueError(f"bounds must be increasing, got {self.bounds}")
        if self.max_load_share is not None and not 0.0 < self.max_load_share <= 1.0:
            raise ValueError("max_load_share must be in (0, 1]")
        if self.floor_target is not None and not 0.0 < self.floor_target <= self.target:
            raise ValueError("floor_target must be in (0, target]")
        if self.thin_step_down is not None and not 0.0 <= self.thin_step_down:
            raise ValueError("thin_step_down must be ≥ 0")

    def propose(self, current: float, evidence: Evidence, *, now: float | None = None) -> Proposal:
        """The next threshold for one category from its evidence; ``now`` (seconds, the
        caller's clock) is needed when ``horizon_s`` or ``recent_s`` is set."""
        if not math.isfinite(current):
            raise ValueError(f"current threshold must be finite, got {current!r}")
        if (self.horizon_s is not None or self.recent_s is not None) and now is None:
            raise ValueError("pass `now` when the adjuster has a horizon")
        if self.horizon_s is not None:
            evidence = evidence.since(now - self.horizon_s)  # type: ignore[operator]
        info = {**evidence.summary(), "target": self.target, "confidence": self.confidence}
        thin = self._thin(evidence, info)
        if thin:  # thin evidence never moves a threshold, not even into the bounds
            return Proposal("recall_target", current, current, thin + self._outside(current), info)
        if not self.bounds[0] <= current <= self.bounds[1]:
            value = min(self.bounds[1], max(self.bounds[0], current))
            return Proposal("recall_target", current, value, "outside bounds: clamped", info)
        grid = self._grid(current)
        here = int(np.flatnonzero(grid == current)[0])
        curve = self._curve(evidence, grid)
        info |= _curve_point("at_current", curve, here)
        # Too few audits to certify the target even had none found a miss: hold — unless the
        # misses already found put the estimate itself below target.
        uncertifiable = self._uncertifiable(current, evidence, info)
        if uncertifiable and not curve.estimate[here] < self.target:
            return Proposal("recall_target", current, current, uncertifiable, info)
        lower = curve.lower
        recent = self._recent(current, evidence, now)
        estimates = [float(curve.estimate[here])]
        if recent is not None:
            recent_curve = self._curve(recent, grid)
            lower = np.fmin(lower, recent_curve.lower)
            info |= _curve_point("recent_at_current", recent_curve, here)
            info["recent"] = recent.summary()
            estimates.append(float(recent_curve.estimate[here]))
        j, reason = self._choose(lower, here)
        if self.thin_step_down is not None and j < here:
            j, reason = self._smooth(grid, here, j, reason, estimates, info)
        if self.max_load_share is not None:
            j, reason = self._cap_load(evidence, grid, lower, j, reason, info)
        value = float(grid[j])
        info |= _curve_point("at_proposed", curve, j) | self._quality_at(value, evidence)
        return Proposal("recall_target", current, value, reason, info)

    def _smooth(
        self,
        grid: NDArray[np.float64],
        here: int,
        j: int,
        reason: str,
        estimates: list[float],
        info: dict[str, Any],
    ) -> tuple[int, str]:
        """Limit a downward move to ``thin_step_down`` when no estimate (horizon, recent part)
        at the current threshold is short of target."""
        if not all(e >= self.target for e in estimates):
            return j, reason
        floor = grid[here] - self.thin_step_down - 1e-12  # type: ignore[operator]
        k = max(j, int(np.searchsorted(grid, floor, side="left")))
        if k == j:
            return j, reason
        info["smoothed"] = {"from": float(grid[j]), "estimates_at_current": estimates}
        return k, f"{reason}; estimate meets target, step limited to {self.thin_step_down:g}"

    def _cap_load(
        self,
        evidence: Evidence,
        grid: NDArray[np.float64],
        lower: NDArray[np.float64],
        j: int,
        reason: str,
        info: dict[str, Any],
    ) -> tuple[int, str]:
        """Move ``j`` up to the lowest candidate within the load cap, when recall allows."""
        share = queue_share(evidence, grid)
        info["load_share_at_chosen"] = float(share[j])
        if share[j] <= self.max_load_share:  # type: ignore[operator]
            return j, reason
        allowed = np.flatnonzero(share <= self.max_load_share)  # type: ignore[operator]
        allowed = allowed[allowed > j]
        floor = self.target if self.floor_target is None else self.floor_target
        if allowed.size == 0 or not lower[allowed[0]] >= floor:
            info["load_cap_exceeded"] = True
            return j, f"{reason} (ALERT: load share {share[j]:.3f} over cap, recall first)"
        k = int(allowed[0])
        info["load_capped"] = {"from": float(grid[j]), "share": float(share[k])}
        return k, (
            f"load cap {self.max_load_share:g}: recall bound {lower[k]:.4f} ≥ floor {floor:g} "
            f"(ALERT: target {self.target:g} degraded)"
        )

    def _outside(self, current: float) -> str:
        """A note when ``current`` lies outside the bounds (and is left there), else ""."""
        lo, hi = self.bounds
        return "" if lo <= current <= hi else f" (current {current:g} outside [{lo:g}, {hi:g}])"

    def _curve(self, evidence: Evidence, grid: NDArray[np.float64]) -> RecallCurve:
        return recall_curve(
            evidence.score,
            evidence.is_violation,
            evidence.inclusion_probability,
            grid,
            self.confidence,
        )

    def _recent(self, current: float, evidence: Evidence, now: float | None) -> Evidence | None:
        """The recent part, when set and telling: enough to certify, or already short of target
        (otherwise the whole horizon decides)."""
        if self.recent_s is None or now is None:
            return None
        recent = evidence.since(now - self.recent_s)
        info = recent.summary()
        if recent.n == evidence.n or self._thin(recent, info):
            return None
        if self._uncertifiable(current, recent, info):
            estimate = self._curve(recent, np.array([current])).estimate[0]
            return recent if estimate < self.target else None
        return recent

    def _choose(self, lower: NDArray[np.float64], here: int) -> tuple[int, str]:
        """Index of the chosen candidate (grid ascending, ``here`` = current) and why."""
        if lower[here] >= self.target:
            j = here
            while j + 1 < lower.size and lower[j + 1] >= self.target + self.raise_margin:
                j += 1
            return j, (
                "recall bound allows a higher threshold" if j > here else "recall bound holds"
            )
        passing = [k for k in range(here) if lower[k] >= self.target]
        if passing:
            return passing[-1], "recall bound below target: lower to the highest passing candidate"
        # None in reach passes: take the cheapest candidate whose bound is (nearly) the best in
        # reach. When the misses lie far below, lowering buys no recall, only reviews.
        best = float(np.nanmax(lower[: here + 1]))
        j = max(k for k in range(here + 1) if lower[k] >= best - self.flat_tolerance)
        return j, f"recall bound below target everywhere in reach: best bound {best:.4f}"

    def _thin(self, evidence: Evidence, info: Mapping[str, Any]) -> str:
        """Why there are too few violations or audits to act on, or ""."""
        if info["positives"] < self.min_positives:
            return f"thin evidence: {info['positives']} violations < {self.min_positives}"
        if info["audited"] < self.min_audited:
            return f"thin evidence: {info['audited']} audits < {self.min_audited}"
        return ""

    def _uncertifiable(self, current: float, evidence: Evidence, info: Mapping[str, Any]) -> str:
        """Non-empty when even a sample with no miss among the audits would leave the bound at
        ``current`` below target: the audits are too few to judge, which is not alarming."""
        y = evidence.is_violation & ~(evidence.sampled & (evidence.score < current))
        best = recall_curve(
            evidence.score, y, evidence.inclusion_probability, [current], self.confidence
        ).lower[0]
        if best >= self.target:
            return ""
        return (
            f"thin evidence: even with no miss among {info['audited']} audits the "
            f"recall bound would be {best:.4f} < target {self.target}"
        )

    def _grid(self, current: float) -> NDArray[np.float64]:
        lo, hi = self.bounds
        down = int(math.floor(self.max_step_down / self.resolution + 1e-9))
        up = int(math.floor(self.max_step_up / self.resolution + 1e-9))
        # rounding keeps candidates clean (0.1825, not 0.18250000000000002); the clip keeps
        # rounding from ever stretching a step
        grid = np.round(current + np.arange(-down, up + 1) * self.resolution, 10)
        grid = np.clip(grid, current - self.max_step_down, current + self.max_step_up)
        grid[down] = current
        return grid[(grid >= lo) & (grid <= hi)]

    def _quality_at(self, value: float, evidence: Evidence) -> dict[str, Any]:
        args = (evidence.score, evidence.is_violation, evidence.inclusion_probability, value)
        return {
            "precision_at_proposed": estimate_precision(*args, self.confidence).as_dict(),
            "miss_rate_below_proposed": estimate_miss_rate(*args, self.confidence).as_dict(),
        }


def queue_share(evidence: Evidence, thresholds: NDArray[np.float64]) -> NDArray[np.float64]:
    """Estimated share of all scored items at/above each threshold: Σ_{s ≥ t} 1/π ÷ Σ 1/π
    (the queue is a census, audits stand for the rest below) — the review load a threshold
    would bring, in the units of the evidence."""
    w = 1.0 / evidence.inclusion_probability
    total = float(w.sum())
    if total == 0.0:
        return np.zeros(thresholds.size)
    above = evidence.score[None, :] >= thresholds[:, None]
    return (above * w).sum(axis=1) / total


def _curve_point(prefix: str, curve: RecallCurve, j: int) -> dict[str, Any]:
    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return {
        prefix: {
            "threshold": float(curve.thresholds[j]),
            "recall_estimate": num(curve.estimate[j]),
            "recall_lower": num(curve.lower[j]),
            "recall_upper": num(curve.upper[j]),
            "caught_census": num(curve.caught_census[j]),
            "missed_census": num(curve.missed_census[j]),
            "caught_sampled_ht": num(curve.caught_sampled[j]),
            "missed_sampled_ht": num(curve.missed_sampled[j]),
        }
    }
