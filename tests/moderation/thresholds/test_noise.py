"""Reviewer noise from double reviews and the symmetric-noise recall correction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moderation.thresholds.evidence import ReviewRecord
from moderation.thresholds.noise import (
    corrected_recall,
    error_from_disagreement,
    noise_corrected_recall,
    reviewer_noise,
)


def test_error_from_disagreement_exact():
    assert error_from_disagreement(0.0) == 0.0
    assert error_from_disagreement(0.08) == pytest.approx((1 - math.sqrt(0.84)) / 2)
    e = 0.05
    assert error_from_disagreement(2 * e * (1 - e)) == pytest.approx(e)
    assert error_from_disagreement(0.9) == 0.5  # beyond chance: no information
    with pytest.raises(ValueError):
        error_from_disagreement(-0.1)


def test_reviewer_noise_small_case():
    # 4 double-reviewed items, 1 disagreement; a superseded vote is replaced; one single review
    reviews = [
        ReviewRecord(1, True, "a", 1.0),
        ReviewRecord(1, True, "b", 1.0),
        ReviewRecord(2, False, "a", 1.0),
        ReviewRecord(2, True, "b", 1.0),
        ReviewRecord(3, True, "a", 1.0),
        ReviewRecord(3, False, "a", 2.0),  # a's later review wins
        ReviewRecord(3, False, "b", 1.0),
        ReviewRecord(4, False, "a", 1.0),
        ReviewRecord(4, False, "b", 1.0),
        ReviewRecord(5, True, "c", 1.0),
    ]
    noise = reviewer_noise(reviews)
    assert (noise.pairs, noise.disagreements) == (4, 1)
    assert noise.error == pytest.approx(error_from_disagreement(0.25))
    assert noise.lower <= noise.error <= noise.upper
    assert set(noise.per_reviewer) == {"a", "b"}
    assert math.isnan(reviewer_noise([ReviewRecord(1, True, "a")]).error)


def test_corrected_recall_small_case():
    # census: 10 observed positives of 12 above; below 100 items (π = 0.1 → 1,000), 50 observed
    # positives (weight 500); e = 0.04: above T = (10 − 0.48)/0.92, below (500 − 40)/0.92
    s = np.r_[np.full(12, 0.3), np.full(100, 0.1)]
    y = np.r_[np.ones(10, bool), np.zeros(2, bool), np.ones(50, bool), np.zeros(50, bool)]
    pi = np.r_[np.ones(12), np.full(100, 0.1)]
    got = corrected_recall(s, y, pi, 0.2, 0.04)
    assert got == pytest.approx(9.52 / (9.52 + 460.0))
    assert corrected_recall(s, y, pi, 0.2, 0.0) == pytest.approx(10 / 510)


def test_noise_estimate_and_corrected_recall_by_simulation():
    """Seeded: reviewers err 4 %; 2,000 items get a second opinion. The error estimate covers
    the truth and the corrected recall is near the true recall where the naive one is not."""
    rng = np.random.default_rng(11)
    n = 200_000
    y = rng.random(n) < 0.02
    s = np.where(y, rng.normal(0.28, 0.045, n), rng.normal(0.12, 0.04, n))
    t, err = 0.21, 0.04
    true_recall = float((s[y] >= t).mean())
    # the queue is a census; below, a uniform 5 % audit
    shown = (s >= t) | (rng.random(n) < 0.05)
    pi = np.where(s >= t, 1.0, 0.05)[shown]
    first = y[shown] ^ (rng.random(shown.sum()) < err)
    second = y[shown] ^ (rng.random(shown.sum()) < err)
    double = rng.choice(shown.sum(), 2000, replace=False)
    reviews = [ReviewRecord(i, bool(first[i]), "r1") for i in range(shown.sum())]
    reviews += [ReviewRecord(int(i), bool(second[i]), "r2") for i in double]
    noise = reviewer_noise(reviews)
    assert noise.lower <= err <= noise.upper
    assert noise.per_reviewer["r1"] == pytest.approx(err, abs=0.03)
    naive = corrected_recall(s[shown], first, pi, t, 0.0)
    est, lo, hi = noise_corrected_recall(s[shown], first, pi, t, noise)
    assert naive < true_recall - 0.3  # 4 % flips of the benign audits look like misses
    assert lo <= true_recall <= hi
    assert abs(est - true_recall) < abs(naive - true_recall)
