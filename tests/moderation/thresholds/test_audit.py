"""Audit design and sampling; IPW estimators: unbiasedness and bound coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moderation.thresholds.audit import (
    AuditBand,
    AuditDesign,
    audit_decision,
    audit_decisions,
    estimate_miss_rate,
    estimate_precision,
    estimate_recall,
    image_audit_decisions,
    image_inclusion_probability,
    recall_curve,
    weighted_proportion,
)
from moderation.thresholds.scales import UnknownScale

DESIGN = AuditDesign.for_scale("gme_cosine")


@pytest.mark.parametrize(
    ("bands", "match"),
    [
        ((), "at least one"),
        ((AuditBand("a", 0.05, 0.1),), "unbounded"),
        ((AuditBand("a", 0.05, 0.1), AuditBand("b", 0.02, 0.1)), "increasing"),
        ((AuditBand("a", math.inf, 0.0),), "rate"),
        ((AuditBand("a", math.inf, 1.5),), "rate"),
        ((AuditBand("a", 0.1, 0.1), AuditBand("a", math.inf, 0.1)), "unique"),
        ((AuditBand("above", math.inf, 0.1),), "unique"),
    ],
)
def test_design_is_validated(bands, match):
    with pytest.raises(ValueError, match=match):
        AuditDesign(bands)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.20, (False, "above", 1.0)),  # at the threshold: reviewed through the queue
        (0.35, (False, "above", 1.0)),
        (0.19, (None, "near", 0.2)),
        (0.18, (None, "near", 0.2)),  # distance exactly 0.02 belongs to the nearer band
        (0.17, (None, "mid", 0.075)),
        (0.12, (None, "far", 0.02)),
        (-0.5, (None, "rest", 0.005)),
    ],
)
def test_audit_decision_strata(score, expected):
    d = audit_decision(score, 0.20, DESIGN, np.random.default_rng(0).random())
    sampled, stratum, prob = expected
    assert (d.stratum, d.inclusion_probability) == (stratum, prob)
    if sampled is not None:
        assert d.sampled is sampled


def test_audit_decision_refuses_non_finite_input():
    rng = np.random.default_rng(0)
    for score, thr in ((math.nan, 0.2), (math.inf, 0.2), (0.1, math.nan)):
        with pytest.raises(ValueError, match="finite"):
            audit_decision(score, thr, DESIGN, 0.5)
    with pytest.raises(ValueError, match="finite"):
        audit_decisions([0.1, math.nan], 0.2, DESIGN, rng)


def test_sampling_rates_match_the_recorded_probabilities():
    rng = np.random.default_rng(1)
    scores = rng.uniform(-0.1, 0.4, 400_000)
    sampled, band, prob = audit_decisions(scores, 0.2, DESIGN, rng)
    assert not sampled[scores >= 0.2].any() and (band[scores >= 0.2] == -1).all()
    for i, b in enumerate(DESIGN.bands):
        m = band == i
        assert (prob[m] == b.rate).all()
        rate = sampled[m].mean()
        assert abs(rate - b.rate) < 4 * math.sqrt(b.rate * (1 - b.rate) / m.sum()) + 1e-9
    # the scalar and vectorised versions place items in the same bands
    for s, bi in zip(scores[:300], band[:300], strict=True):
        d = audit_decision(float(s), 0.2, DESIGN, rng.random())
        assert d.stratum == ("above" if bi < 0 else DESIGN.bands[bi].name)


def test_budget_scaling_hits_the_requested_share():
    rng = np.random.default_rng(2)
    scores = rng.normal(0.12, 0.04, 50_000)
    scaled = DESIGN.for_budget(0.03, scores, 0.2)
    assert scaled.expected_share(scores, 0.2) == pytest.approx(0.03, rel=1e-3)
    ratios = [b.rate / a.rate for a, b in zip(DESIGN.bands, scaled.bands, strict=True)]
    assert max(ratios) == pytest.approx(min(ratios))  # band proportions kept
    assert all(b.rate == 1.0 for b in DESIGN.scaled(1000).bands)
    with pytest.raises(ValueError):
        DESIGN.for_budget(0.0, scores, 0.2)


def test_weighted_proportion_basics():
    # census (π = 1): the plain share, an exact Clopper–Pearson interval around it
    est = weighted_proportion([True] * 30 + [False] * 70, [1.0] * 100)
    assert est.estimate == pytest.approx(0.3)
    assert est.lower < 0.3 < est.upper and est.n == 100 and est.weighted_total == 100
    # weights count: one item standing for 9 others
    est = weighted_proportion([True, False], [0.1, 1.0])
    assert est.estimate == pytest.approx(10 / 11)
    empty = weighted_proportion([], [])
    assert math.isnan(empty.estimate) and (empty.lower, empty.upper) == (0.0, 1.0)
    assert empty.as_dict()["estimate"] is None
    with pytest.raises(ValueError):
        weighted_proportion([True, False], [1.0])


def population(seed: int, n: int = 40_000, mu1: float = 0.26):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.03
    s = np.where(y, rng.normal(mu1, 0.045, n), rng.normal(0.12, 0.04, n))
    return s, y


def draw(s, y, threshold, rng, scale=1.0):
    sampled, _, pi = audit_decisions(s, threshold, AuditDesign.for_scale("gme_cosine", scale), rng)
    shown = (s >= threshold) | sampled
    return s[shown], y[shown], pi[shown]


def test_ipw_estimates_are_unbiased_over_many_draws():
    """A fixed population, 400 seeded audit draws: the HT total of missed violations averages
    to the truth, and so (to within its small ratio bias) does the Hájek recall."""
    s, y = population(5)
    thr = 0.22
    true_recall = (s[y] >= thr).mean()
    true_missed = (y & (s < thr)).sum()
    true_precision = y[s >= 0.20].mean()
    true_miss_rate = y[s < thr].mean()
    rng = np.random.default_rng(6)
    recalls, missed, precisions, miss_rates = [], [], [], []
    for _ in range(400):
        ds, dy, dpi = draw(s, y, thr, rng)
        curve = estimate_recall(ds, dy, dpi, thr)
        recalls.append(curve.estimate[0])
        missed.append(curve.missed_sampled[0] + curve.missed_census[0])
        precisions.append(estimate_precision(ds, dy, dpi, 0.20).estimate)
        miss_rates.append(estimate_miss_rate(ds, dy, dpi, thr).estimate)
    se = np.std(missed) / math.sqrt(len(missed))
    assert abs(np.mean(missed) - true_missed) < 3 * se
    assert abs(np.mean(recalls) - true_recall) < 0.003
    assert abs(np.mean(precisions) - true_precision) < 0.005
    assert abs(np.mean(miss_rates) - true_miss_rate) < 0.0005
    assert np.std(recalls) > 0  # the draws really differ


@pytest.mark.parametrize("confidence", [0.8, 0.9])
def test_recall_lower_bound_covers_the_truth(confidence):
    """The one-sided bound sits below the true recall in at least `confidence` of the draws,
    at the current threshold and at candidates above and below it."""
    s, y = population(7, n=60_000)
    thr = 0.20
    grid = np.array([0.18, 0.19, 0.20, 0.21, 0.22])
    truth = np.array([(s[y] >= t).mean() for t in grid])
    rng = np.random.default_rng(8)
    covered = np.zeros(grid.size)
    draws = 300
    for _ in range(draws):
        ds, dy, dpi = draw(s, y, thr, rng, scale=0.5)
        curve = recall_curve(ds, dy, dpi, grid, confidence)
        covered += curve.lower <= truth
        assert (curve.lower <= curve.estimate + 1e-12).all()
        assert (curve.estimate <= curve.upper + 1e-12).all()
    # binomial slack: 3 standard errors below the nominal level
    slack = 3 * math.sqrt(confidence * (1 - confidence) / draws)
    assert (covered / draws >= confidence - slack).all(), covered / draws


def test_recall_curve_edge_cases():
    # census only: the Clopper–Pearson bounds on recall for new data, 1 of 2 caught at 0.2
    # (lower 1 − √0.9, upper √0.9) and 0 of 2 at 0.6 (lower 0, upper 1 − √0.1)
    curve = recall_curve([0.1, 0.3, 0.5], [True, True, False], [1, 1, 1], [0.2, 0.6])
    assert curve.estimate.tolist() == [0.5, 0.0]
    assert curve.lower == pytest.approx([1 - math.sqrt(0.9), 0.0], abs=1e-12)
    assert curve.upper == pytest.approx([math.sqrt(0.9), 1 - math.sqrt(0.1)], abs=1e-12)
    # no violation reviewed: recall is undefined, not 0 or 1
    empty = recall_curve([0.1, 0.3], [False, False], [0.5, 1.0], [0.2])
    assert math.isnan(empty.estimate[0]) and math.isnan(empty.lower[0])
    with pytest.raises(ValueError):
        recall_curve([0.1], [True], [1.0], [0.2], confidence=1.0)


def test_designs_per_score_scale():
    assert AuditDesign.for_scale("gme_cosine") == DESIGN
    prob = AuditDesign.for_scale("probability")
    assert [b.rate for b in prob.bands] == [b.rate for b in DESIGN.bands]
    assert prob.bands[0].max_distance > DESIGN.bands[0].max_distance
    with pytest.raises(UnknownScale, match="logits"):
        AuditDesign.for_scale("logits")


def test_recall_curve_effective_counts_small_case():
    # 3 census catches, one audited miss at π = 0.5 and an audited non-violation: w̄ = 2 and
    # the miss's Σw²/Σw = 2, so one effective observation weighs 2 — 1.5 caught, 1 missed:
    # lower = 1 − Beta⁻¹(0.9; 2, 1.5), upper = 1 − Beta⁻¹(0.1; 1, 2.5)
    curve = recall_curve([0.3, 0.4, 0.5, 0.1, 0.12], [1, 1, 1, 1, 0], [1, 1, 1, 0.5, 0.5], [0.2])
    assert curve.estimate[0] == pytest.approx(0.6)
    assert curve.missed_sampled[0] == 2.0 and curve.caught_census[0] == 3.0
    assert curve.lower[0] == pytest.approx(0.12309925561041923, rel=1e-9)
    assert curve.upper[0] == pytest.approx(0.9587315155141827, rel=1e-9)
    # with no audited miss the missed side is still bounded by the audits' weight: 200 audits
    # at π = 0.02 (w̄ = 50), 1,000 census catches → 20 effective catches, 0 missed
    s = np.r_[np.full(1000, 0.3), np.full(200, 0.1)]
    y = np.r_[np.ones(1000, bool), np.zeros(200, bool)]
    pi = np.r_[np.ones(1000), np.full(200, 0.02)]
    lower = recall_curve(s, y, pi, [0.2], 0.9).lower[0]
    assert lower == pytest.approx(0.1 ** (1 / 20), rel=1e-9)  # CP with 0 of 20: α^(1/m)


def test_image_inclusion_probability():
    assert image_inclusion_probability([0.2, 0.5]) == pytest.approx(0.6)  # 1 − 0.8·0.5
    assert image_inclusion_probability([[0.0, 0.0], [1.0, 0.1]]).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):
        image_inclusion_probability([0.2, 1.5])


def _correlated(seed: int, n: int = 20_000, k: int = 8):
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((n, 1))
    latent = 0.6 * common + 0.8 * rng.standard_normal((n, k))
    y = latent > np.diag(np.quantile(latent, 1 - np.geomspace(0.005, 0.03, k), axis=0))
    noise = 0.6 * common + 0.8 * rng.standard_normal((n, k))
    return np.where(y, 0.23 + 0.045 * noise, 0.12 + 0.04 * noise), y


def test_per_image_design_keeps_every_category_ipw_estimate_unbiased():
    """Per-image draws (π = 1 − Π(1 − π_c), every category labelled in the one review): over
    400 seeded draws each category's HT total of missed violations and Hájek miss share
    average to the truth (within 3 standard errors), though categories are correlated and
    images are drawn because of *other* categories' bands."""
    s, y = _correlated(3)
    k = s.shape[1]
    t = np.full(k, 0.20)
    designs = [DESIGN.scaled(0.3)] * k
    below = s < t
    true_missed = (y & below).sum(axis=0)
    true_share = true_missed / below.sum(axis=0)
    rng = np.random.default_rng(4)
    draws = 400
    totals, shares = np.zeros((draws, k)), np.zeros((draws, k))
    for r in range(draws):
        sampled, pi, mask = image_audit_decisions(s, t, designs, rng)
        assert (mask == below).all()
        w = np.where(sampled, 1.0 / np.where(pi > 0, pi, 1.0), 0.0)[:, None] * below
        totals[r] = (w * y).sum(axis=0)
        shares[r] = totals[r] / w.sum(axis=0)
    se = totals.std(axis=0, ddof=1) / math.sqrt(draws)
    assert (np.abs(totals.mean(axis=0) - true_missed) < 3 * se).all()
    se_share = shares.std(axis=0, ddof=1) / math.sqrt(draws)
    assert (np.abs(shares.mean(axis=0) - true_share) < 3 * se_share + 1e-4).all()
    # one draw per image: the share of images drawn is the mean of π, and π ≥ every π_c
    assert totals.std(axis=0).min() > 0


def test_image_audit_decisions_validate_and_respect_eligibility():
    s = np.array([[0.19, 0.05], [0.30, 0.19]])
    rng = np.random.default_rng(0)
    sampled, pi, below = image_audit_decisions(s, [0.2, 0.2], [DESIGN, DESIGN], rng)
    assert below.tolist() == [[True, True], [False, True]]
    # image 0: near (0.2) and rest (0.005) → 1 − 0.8·0.995; image 1: only its near band
    assert pi == pytest.approx([1 - 0.8 * 0.995, 0.2])
    _, pi, below = image_audit_decisions(
        s, [0.2, 0.2], [DESIGN, DESIGN], rng, eligible=[[True, False], [True, True]]
    )
    assert pi == pytest.approx([0.2, 0.2]) and not below[0, 1]
    with pytest.raises(ValueError):
        image_audit_decisions(s, [0.2], [DESIGN], rng)
    with pytest.raises(ValueError):
        image_audit_decisions([[math.nan, 0.1]], [0.2, 0.2], [DESIGN, DESIGN], rng)
