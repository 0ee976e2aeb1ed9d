"""Reviewer noise from double reviews and the symmetric-noise recall correction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moderation.thresholds.evidence import Evidence, ReviewRecord
from moderation.thresholds.noise import (
    corrected_recall,
    error_from_disagreement,
    label_noise_report,
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


def test_label_noise_report_small_case():
    # above 0.3: 10 census items, 9 labelled violations; below: 10 audits at π 0.5, 2 labelled
    # violations. Items 0–3 have a second review, one disagrees: d = 1/4, e = (1 − √0.5)/2.
    s = np.r_[np.full(10, 0.5), np.full(10, 0.1)]
    y = np.r_[np.ones(9, bool), False, True, True, np.zeros(8, bool)]
    pi = np.r_[np.ones(10), np.full(10, 0.5)]
    evidence = Evidence.from_arrays(s, y, pi)
    reviews = [ReviewRecord(i, bool(y[i]), "a") for i in range(20)]
    reviews += [ReviewRecord(i, bool(y[i]) ^ (i == 3), "b") for i in range(4)]
    report = label_noise_report(evidence, reviews, 0.3)
    e = (1 - math.sqrt(0.5)) / 2
    assert e == pytest.approx(0.1464466)
    caught = (9 - 10 * e) / (1 - 2 * e)  # 10.6569
    missed = (4 - 20 * e) / (1 - 2 * e)  # HT: 2 × 1/0.5 seen of 20; 1.5147
    assert (report["pairs"], report["disagreements"], report["threshold"]) == (4, 1, 0.3)
    assert report["reviewer_error"] == pytest.approx(0.146447)
    assert report["recall_corrected"] == 0.875553
    assert report["recall_corrected"] == pytest.approx(caught / (caught + missed), abs=1e-6)
    # 4 pairs say little: e ∈ [0.0064, 0.5] (90 %), so the corrected recall spans [0.70, 1]
    assert report["reviewer_error_interval"] == [0.006412, 0.5]
    assert report["recall_corrected_interval"] == [0.697699, 1.0]
    # per reviewer: each disagrees on 1 of their 4 pairs, (1/4 − e)/(1 − 2e) = e
    assert report["per_reviewer_error"] == {"a": 0.146447, "b": 0.146447}
    # naive (uncorrected) recall would be 9 / 13; the correction moves it up
    assert report["recall_corrected"] > 9 / 13
    # no double review: nothing is corrected, and it says so
    single = label_noise_report(evidence, reviews[:20], 0.3)
    assert single == {
        "threshold": 0.3,
        "pairs": 0,
        "disagreements": 0,
        "note": "no double reviews: reviewer error unknown, recall not corrected",
    }
