"""Reviewer noise from double reviews, and recall corrected for it (symmetric-noise model).

Model: every reviewer flips the true label with probability e (the same for violations and
non-violations — *symmetric* noise), independently across reviewers and items. Two reviewers
of one item then disagree with probability d = 2e(1 − e), so e = (1 − √(1 − 2d)) / 2 from the
share of disagreeing pairs among double-reviewed items (the second-opinion flow). A reviewer's
own rate follows from their disagreement rate d_r against the others (error ē):
e_r = (d_r − ē) / (1 − 2ē).

Corrected recall: an observed-positive (HT) total over N items is E = T(1 − e) + (N − T)e, so
the true total is T = (E − eN) / (1 − 2e), above and below the threshold alike. Audits of a
mostly benign below-threshold population make this correction sensitive to e (eN is large next
to the true misses), which is why the reported interval carries e's uncertainty: the recall
corrected at e's lower and upper confidence bounds (noise uncertainty only; the sampling bound
is ``recall_curve``'s). Pure functions; reviews in, numbers out.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from moderation.thresholds.bounds import miss_share_lower, miss_share_upper
from moderation.thresholds.evidence import Evidence, ReviewRecord

__all__ = [
    "NoiseEstimate",
    "corrected_recall",
    "error_from_disagreement",
    "label_noise_report",
    "noise_corrected_recall",
    "reviewer_noise",
]


def error_from_disagreement(d: float) -> float:
    """Per-review flip probability e ∈ [0, 0.5] from the pair disagreement rate d = 2e(1−e)."""
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"disagreement rate must be in [0, 1], got {d}")
    return 0.5 * (1.0 - math.sqrt(max(0.0, 1.0 - 2.0 * d)))


@dataclass(frozen=True)
class NoiseEstimate:
    error: float  # pooled per-review flip probability
    lower: float  # two-sided ``confidence`` interval (Clopper–Pearson on the pairs, mapped)
    upper: float
    pairs: int  # reviewer pairs on double-reviewed items
    disagreements: int
    per_reviewer: dict[str, float] = field(default_factory=dict)


def reviewer_noise(reviews: Iterable[ReviewRecord], confidence: float = 0.9) -> NoiseEstimate:
    """Reviewer error from items with ≥ 2 reviewers (a reviewer's latest review counts). Each
    unordered pair of reviewers of one item is one comparison; pairs of one item are treated as
    independent (with ≤ 3 reviewers per item the interval is slightly optimistic)."""
    votes: dict[Hashable, dict[str, tuple[float, bool]]] = defaultdict(dict)
    for r in reviews:
        previous = votes[r.item_id].get(r.reviewer)
        if previous is None or previous[0] <= r.at:
            votes[r.item_id][r.reviewer] = (r.at, bool(r.is_violation))
    pairs = disagree = 0
    mine: Counter[str] = Counter()
    mine_dis: Counter[str] = Counter()
    for by_reviewer in votes.values():
        items = sorted(by_reviewer.items())
        for i, (a, (_, va)) in enumerate(items):
            for b, (_, vb) in items[i + 1 :]:
                pairs += 1
                differ = va != vb
                disagree += differ
                for who in (a, b):
                    mine[who] += 1
                    mine_dis[who] += differ
    if pairs == 0:
        return NoiseEstimate(math.nan, 0.0, 0.5, 0, 0)
    level = 0.5 + confidence / 2.0  # two one-sided bounds make a two-sided interval
    d = disagree / pairs
    e = error_from_disagreement(d)
    lo = error_from_disagreement(min(0.5, float(miss_share_lower(disagree, pairs, level))))
    hi = error_from_disagreement(min(0.5, float(miss_share_upper(disagree, pairs, level))))
    per = {
        who: float(np.clip((mine_dis[who] / n - e) / (1.0 - 2.0 * e), 0.0, 0.5))
        for who, n in sorted(mine.items())
    }
    return NoiseEstimate(e, lo, hi, pairs, disagree, per)


def corrected_recall(
    scores: ArrayLike,
    observed: ArrayLike,
    inclusion_probability: ArrayLike,
    threshold: float,
    error: float,
) -> float:
    """Recall at ``threshold`` with observed labels corrected for symmetric noise ``error``
    (HT totals, T = (E − eN)/(1 − 2e) above and below, each floored at 0); NaN when no
    violation is left."""
    if not 0.0 <= error < 0.5:
        raise ValueError(f"error must be in [0, 0.5), got {error}")
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(observed, dtype=bool)
    w = 1.0 / np.asarray(inclusion_probability, dtype=np.float64)
    above = s >= threshold

    def true_total(mask: np.ndarray) -> float:
        seen, n = float((w * y)[mask].sum()), float(w[mask].sum())
        return max(0.0, (seen - error * n) / (1.0 - 2.0 * error))

    caught, missed = true_total(above), true_total(~above)
    return caught / (caught + missed) if caught + missed > 0 else math.nan


def noise_corrected_recall(
    scores: ArrayLike,
    observed: ArrayLike,
    inclusion_probability: ArrayLike,
    threshold: float,
    noise: NoiseEstimate,
) -> tuple[float, float, float]:
    """(estimate, lower, upper): recall corrected at the estimated error, and its range over
    e's interval (21 points) — the uncertainty from not knowing the reviewers' error exactly."""
    if math.isnan(noise.error):
        raise ValueError("no double reviews: the reviewer error is unknown")
    args = (scores, observed, inclusion_probability, threshold)
    grid = np.minimum(np.linspace(noise.lower, noise.upper, 21), 0.4999)
    values = [v for v in (corrected_recall(*args, float(e)) for e in grid) if not math.isnan(v)]
    estimate = corrected_recall(*args, min(noise.error, 0.4999))
    if not values:
        return estimate, math.nan, math.nan
    return estimate, min(values), max(values)


def label_noise_report(
    evidence: Evidence,
    reviews: Iterable[ReviewRecord],
    threshold: float,
    confidence: float = 0.9,
) -> dict[str, Any]:
    """What the adjuster records as ``label_noise`` (its evidence: the version's stats, the
    dashboard's "Adjuster evidence", ``moderation thresholds adjust``): the reviewers' error
    from the double reviews among ``reviews`` and recall at ``threshold`` corrected for it,
    each with its ``confidence`` interval. Without double reviews the error is unknown and
    nothing is corrected (``pairs`` 0 and a note). JSON-safe; numbers rounded to 6 places."""
    noise = reviewer_noise(reviews, confidence)
    out: dict[str, Any] = {
        "threshold": threshold,
        "pairs": noise.pairs,
        "disagreements": noise.disagreements,
    }
    if noise.pairs == 0:
        out["note"] = "no double reviews: reviewer error unknown, recall not corrected"
        return out
    est, lo, hi = noise_corrected_recall(
        evidence.score, evidence.is_violation, evidence.inclusion_probability, threshold, noise
    )

    def num(x: float) -> float | None:
        return round(float(x), 6) if math.isfinite(x) else None

    out |= {
        "reviewer_error": num(noise.error),
        "reviewer_error_interval": [num(noise.lower), num(noise.upper)],
        "per_reviewer_error": {who: num(e) for who, e in noise.per_reviewer.items()},
        "recall_corrected": num(est),
        "recall_corrected_interval": [num(lo), num(hi)],
        "confidence": confidence,
    }
    return out
