"""Audit design: per-(image, category) draws (v1) vs per-image draws (v2), side by side.

One seeded window of uploads with 8 categories whose scores and violations are correlated
(Gaussian copula). Each category has its threshold; the queue (score ≥ threshold) is a census;
below it, audits are drawn

- **v1, per (image, category)**: every category draws on its own with its band rate (the
  design rescaled to ``--fraction`` of its below-threshold items); a drawn image is one review
  (as the router does), but each category only uses the labels of the images drawn *for it*;
- **v2, per image**: one draw per image with π = 1 − Π(1 − π_c) over its categories' band
  rates; the one review labels every category, each category weighing the image by 1/π.

Reported: audit reviews per 1,000 uploads and each category's recall CI width (one-sided 90 %
upper − lower bound of ``recall_curve`` at its threshold, mean over ``--draws`` audit draws).
v2 is shown at v1's rates and at the smallest rate scale whose CI width is no wider than v1's
for every category (bisected): the audit reviews saved at equal CI width.

    .venv/bin/python benchmarks/audit_design.py --seed 7
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from moderation.thresholds.audit import (
    AuditDesign,
    audit_decisions,
    image_audit_decisions,
    recall_curve,
)

__all__ = ["DesignRun", "Population", "main", "make_population", "run_design"]


@dataclass(frozen=True)
class Population:
    scores: NDArray[np.float64]  # (images, categories)
    labels: NDArray[np.bool_]
    thresholds: NDArray[np.float64]


def make_population(
    seed: int, uploads: int = 100_000, categories: int = 8, rho: float = 0.4
) -> Population:
    """Correlated categories: a shared latent factor drives both which categories an image
    violates (prevalence 0.4–3 %) and its scores (non-violations N(0.12, 0.04), violations
    N(0.28, 0.045), GME-cosine-like); every category's threshold is 0.20."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((uploads, 1))
    latent = np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.standard_normal((uploads, categories))
    prevalence = np.geomspace(0.004, 0.03, categories)
    from scipy.stats import norm

    labels = latent > norm.ppf(1 - prevalence)[None, :]
    noise = np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.standard_normal((uploads, categories))
    scores = np.where(labels, 0.28 + 0.045 * noise, 0.12 + 0.04 * noise)
    return Population(np.clip(scores, -1, 1), labels, np.full(categories, 0.20))


@dataclass(frozen=True)
class DesignRun:
    name: str
    reviews_per_1000: float  # audit reviews (images drawn) per 1,000 uploads
    width: NDArray[np.float64]  # per category: mean recall CI width
    recall_estimate: NDArray[np.float64]  # per category: mean Hájek recall estimate


def _designs(pop: Population, fraction: float) -> list[AuditDesign]:
    base = AuditDesign.for_scale("gme_cosine")
    return [
        base.for_budget(fraction, pop.scores[:, c], pop.thresholds[c])
        for c in range(pop.scores.shape[1])
    ]


def _widths(
    pop: Population, c: int, drawn: NDArray[np.bool_], pi: NDArray[np.float64]
) -> tuple[float, float]:
    s, y, t = pop.scores[:, c], pop.labels[:, c], pop.thresholds[c]
    keep = (s >= t) | drawn
    p = np.where(s >= t, 1.0, pi)[keep]
    curve = recall_curve(s[keep], y[keep], p, [t], 0.9)
    return float(curve.upper[0] - curve.lower[0]), float(curve.estimate[0])


def run_design(
    pop: Population,
    designs: Sequence[AuditDesign],
    per_image: bool,
    draws: int,
    seed: int,
    scale: float = 1.0,
) -> DesignRun:
    """Mean reviews and CI widths over ``draws`` audit draws of one design."""
    rng = np.random.default_rng([seed, 99])
    designs = [d.scaled(scale) for d in designs] if scale != 1.0 else list(designs)
    n, k = pop.scores.shape
    widths, estimates, reviews = np.zeros((draws, k)), np.zeros((draws, k)), np.zeros(draws)
    queued = (pop.scores >= pop.thresholds[None, :]).any(axis=1)
    for r in range(draws):
        if per_image:
            sampled, pi, below = image_audit_decisions(pop.scores, pop.thresholds, designs, rng)
            drawn = sampled[:, None] & below
            pis = np.repeat(pi[:, None], k, axis=1)
        else:
            cols = [
                audit_decisions(pop.scores[:, c], pop.thresholds[c], designs[c], rng)
                for c in range(k)
            ]
            drawn = np.stack([col[0] for col in cols], axis=1)
            pis = np.stack([col[2] for col in cols], axis=1)
        # one review per drawn image that the queue does not already show a reviewer
        reviews[r] = (drawn.any(axis=1) & ~queued).sum() * 1000.0 / n
        for c in range(k):
            widths[r, c], estimates[r, c] = _widths(pop, c, drawn[:, c], pis[:, c])
    name = "per image" if per_image else "per (image, category)"
    return DesignRun(name, float(reviews.mean()), widths.mean(0), estimates.mean(0))


def equal_width_scale(
    pop: Population, designs: Sequence[AuditDesign], target: NDArray[np.float64], draws: int,
    seed: int, steps: int = 8,
) -> tuple[float, DesignRun]:  # fmt: skip
    """The smallest rate scale (bisected on a log scale in [0.02, 1]) at which the per-image
    design's CI width is ≤ ``target`` for every category."""
    lo, hi = 0.02, 1.0
    best = run_design(pop, designs, True, draws, seed, hi)
    for _ in range(steps):
        mid = float(np.sqrt(lo * hi))
        run = run_design(pop, designs, True, draws, seed, mid)
        if (run.width <= target).all():
            hi, best = mid, run
        else:
            lo = mid
    return hi, best


def compare(seed: int, uploads: int, fraction: float, draws: int) -> dict[str, float]:
    pop = make_population(seed, uploads)
    designs = _designs(pop, fraction)
    old = run_design(pop, designs, False, draws, seed)
    same = run_design(pop, designs, True, draws, seed)
    scale, equal = equal_width_scale(pop, designs, old.width, draws, seed)
    print(f"seed {seed}: {uploads} uploads, 8 categories, audit fraction {fraction:g}")
    print(
        f"{'category':>8} {'prev':>6} {'recall':>7} | CI width: {'v1 per pair':>11} "
        f"{'v2 same rates':>13} {f'v2 ×{scale:.3f}':>11}"
    )
    for c in range(pop.scores.shape[1]):
        y = pop.labels[:, c]
        recall = float((pop.scores[y, c] >= pop.thresholds[c]).mean())
        print(
            f"{c:>8} {y.mean():6.4f} {recall:7.4f} | {'':10}{old.width[c]:11.4f} "
            f"{same.width[c]:13.4f} {equal.width[c]:11.4f}"
        )
    ratio = equal.reviews_per_1000 / old.reviews_per_1000
    print(
        f"audit reviews / 1000 uploads: v1 {old.reviews_per_1000:.1f} | v2 same rates "
        f"{same.reviews_per_1000:.1f} | v2 at equal CI width {equal.reviews_per_1000:.1f} "
        f"({ratio:.3f}× v1)"
    )
    return {
        "v1_reviews_per_1000": old.reviews_per_1000,
        "v2_same_rates_reviews_per_1000": same.reviews_per_1000,
        "v2_equal_width_reviews_per_1000": equal.reviews_per_1000,
        "v2_equal_width_review_ratio": ratio,
        "v2_equal_width_scale": scale,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--uploads", type=int, default=100_000)
    ap.add_argument("--fraction", type=float, default=0.02, help="MODERATION_AUDIT_FRACTION")
    ap.add_argument("--draws", type=int, default=20, help="audit draws averaged per design")
    args = ap.parse_args(argv)
    for seed in range(args.seed, args.seed + args.seeds):
        compare(seed, args.uploads, args.fraction, args.draws)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
