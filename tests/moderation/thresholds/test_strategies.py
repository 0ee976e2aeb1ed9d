"""Calibration math: the seed's numbers, label-based strategies, and the recall guarantee."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from moderation.thresholds.strategies import (
    InsufficientData,
    ThresholdUnavailable,
    confidence_levels,
    evaluate,
    mean_std,
    min_positives_for_recall,
    percentile,
    precision_target,
    recall_target,
    roc_optimal,
    run_strategy,
    score_summary,
)

# A small labelled sample worked by hand: violations 0.3/0.4/0.5, non-violations 0.1/0.2/0.35.
S = np.array([0.3, 0.4, 0.5, 0.1, 0.2, 0.35])
Y = np.array([1, 1, 1, 0, 0, 0], dtype=bool)


# --- the seed's strategies and constants, exactly -----------------------------------------------


def test_mean_std_is_mean_plus_half_population_std():
    r = mean_std([0.1, 0.2, 0.3])
    assert r.threshold == pytest.approx(0.2 + 0.5 * np.sqrt(0.02 / 3))
    assert (r.strategy, r.n, r.positives, r.params["k"]) == ("mean_std", 3, None, 0.5)


def test_percentile_is_the_75th_with_linear_interpolation():
    assert percentile([0.1, 0.2, 0.3, 0.4]).threshold == pytest.approx(0.325)


def test_confidence_levels_are_p80_p40_p20():
    levels = confidence_levels(np.linspace(0, 1, 11))
    assert (levels.high, levels.medium, levels.low) == pytest.approx((0.8, 0.4, 0.2))
    assert [levels.level(s) for s in (0.85, 0.8, 0.5, 0.2, 0.19)] == [
        "high", "high", "medium", "low", "none",
    ]  # fmt: skip


# --- label-based strategies ---------------------------------------------------------------------


def test_roc_optimal_maximises_youden_j_and_prefers_recall_on_ties():
    r = roc_optimal(S, Y)
    # J = 2/3 at both 0.3 (TPR 1, FPR 1/3) and 0.4 (TPR 2/3, FPR 0): recall first → 0.3
    assert r.threshold == 0.3
    assert r.params["youden_j"] == pytest.approx(2 / 3)
    assert (r.recall, r.fpr, r.precision) == pytest.approx((1.0, 1 / 3, 0.75))
    assert r.threshold != pytest.approx(np.percentile(S, 70))  # not the seed's stub


@pytest.mark.parametrize(("p", "threshold"), [(0.5, 0.1), (0.75, 0.3), (0.8, 0.4), (1.0, 0.4)])
def test_precision_target_is_the_lowest_threshold_reaching_p(p, threshold):
    r = precision_target(S, Y, p)
    assert r.threshold == threshold
    assert r.precision >= p


def test_precision_target_refuses_an_unreachable_precision():
    with pytest.raises(ThresholdUnavailable, match="no threshold reaches precision 0.9"):
        precision_target([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], 0.9)


def test_evidence_at_a_threshold():
    r = evaluate("manual", 0.35, S, Y)
    assert (r.n, r.positives, r.flagged) == (6, 3, 3)
    assert (r.precision, r.recall, r.fpr) == pytest.approx((2 / 3, 2 / 3, 1 / 3))
    assert r.as_stats()["threshold"] == 0.35


def test_score_summary_reports_both_classes():
    summary = score_summary(S, Y)
    assert summary["violations"]["n"] == 3
    assert summary["violations"]["mean"] == pytest.approx(0.4)
    assert summary["non_violations"]["std"] == pytest.approx(np.std([0.1, 0.2, 0.35]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: roc_optimal([0.1, 0.2], [1, 1]), "non-violations"),
        (lambda: roc_optimal([0.1, 0.2], [0, 0]), "violations"),
        (lambda: mean_std([]), "no scores"),
        (lambda: mean_std([0.1, float("nan")]), "finite"),
        (lambda: roc_optimal([0.1, 0.2], [1, 2]), "0/1"),
        (lambda: roc_optimal([0.1, 0.2], [1]), "2 scores but 1 labels"),
        (lambda: run_strategy("magic", [0.1], [1]), "unknown strategy"),
    ],
)
def test_bad_inputs_get_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- recall target: finite-sample guarantee -----------------------------------------------------


@pytest.mark.parametrize(
    ("r", "delta", "needed"), [(0.95, 0.05, 59), (0.9, 0.1, 22), (0.99, 0.01, 459)]
)
def test_minimum_positives_for_the_guarantee(r, delta, needed):
    assert min_positives_for_recall(r, delta) == needed
    assert r**needed <= delta < r ** (needed - 1)


def test_recall_target_refuses_too_few_positives_and_says_how_many():
    scores = np.linspace(0.1, 0.5, 58)
    with pytest.raises(InsufficientData, match="needs at least 59 labelled violations") as info:
        recall_target(scores, np.ones(58, dtype=bool), 0.95, 0.05)
    assert (info.value.needed, info.value.have) == (59, 58)
    r = recall_target(np.linspace(0.1, 0.5, 59), np.ones(59, dtype=bool), 0.95, 0.05)
    assert r.threshold == pytest.approx(0.1) and r.params["k"] == 1  # the lowest violation


def test_recall_target_result_carries_its_bound():
    rng = np.random.default_rng(7)
    scores = np.r_[rng.normal(0.25, 0.05, 200), rng.normal(0.12, 0.04, 400)]
    labels = np.r_[np.ones(200, bool), np.zeros(400, bool)]
    r = recall_target(scores, labels, 0.9, 0.1)
    k = r.params["k"]
    assert stats.binom.cdf(k - 1, 200, 0.1) <= 0.1 < stats.binom.cdf(k, 200, 0.1)
    assert r.params["miss_rate_upper"] <= 0.1
    assert "Clopper–Pearson" in r.bound and r.positives == 200 and r.n == 600
    assert r.recall >= 0.9 and r.fpr is not None and r.precision is not None


def test_recall_guarantee_holds_in_simulation_and_the_naive_quantile_fails_it():
    """Over 2,000 calibration draws the recall on fresh data — the population recall
    P(score ≥ t | violation), exact from the generating normal (an infinite fresh sample) — is
    ≥ r in ≥ 1−δ of draws; the naive empirical (1−r)-quantile of the violation scores reaches
    r only about half the time. Vectorised: one draw per row."""
    r, delta, m, draws = 0.9, 0.1, 100, 2000
    rng = np.random.default_rng(20240601)
    pos = rng.normal(0.25, 0.05, size=(draws, m))
    neg = rng.normal(0.12, 0.04, size=(draws, 3 * m))
    labels = np.r_[np.ones(m, bool), np.zeros(3 * m, bool)]
    chosen = np.array([recall_target(np.r_[p, n], labels, r, delta).threshold
                       for p, n in zip(pos, neg, strict=True)])  # fmt: skip
    naive = np.quantile(pos, 1 - r, axis=1)

    def population_recall(t: np.ndarray) -> np.ndarray:
        return stats.norm.sf(t, loc=0.25, scale=0.05)

    coverage = np.mean(population_recall(chosen) >= r)
    naive_coverage = np.mean(population_recall(naive) >= r)
    assert coverage >= 1 - delta
    assert naive_coverage < 1 - delta - 0.2  # teeth: the uncorrected threshold misses often
    # and the guarantee is exact, not loose: simulated coverage matches P(Binom(m, 1−r) ≥ k)
    k = recall_target(np.r_[pos[0], neg[0]], labels, r, delta).params["k"]
    exact = stats.binom.sf(k - 1, m, 1 - r)
    assert abs(coverage - exact) < 4 * np.sqrt(exact * (1 - exact) / draws)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    positives=st.lists(st.floats(0, 1), min_size=1, max_size=300),
    negatives=st.lists(st.floats(0, 1), max_size=50),
    r=st.tuples(st.floats(0.5, 0.995), st.floats(0.5, 0.995)).map(sorted),
    delta=st.tuples(st.floats(0.005, 0.5), st.floats(0.005, 0.5)).map(sorted),
)
def test_more_conservative_recall_targets_never_raise_the_threshold(positives, negatives, r, delta):
    scores = np.r_[positives, negatives]
    labels = np.r_[np.ones(len(positives), bool), np.zeros(len(negatives), bool)]

    def threshold(rr: float, dd: float) -> float:
        try:
            return recall_target(scores, labels, rr, dd).threshold
        except InsufficientData:
            return -np.inf  # no threshold can be certified: more conservative must refuse too

    loose = threshold(r[0], delta[1])
    assert threshold(r[1], delta[1]) <= loose  # higher recall
    assert threshold(r[0], delta[0]) <= loose  # higher confidence
    assert threshold(r[1], delta[0]) <= min(threshold(r[1], delta[1]), threshold(r[0], delta[0]))


def test_offline_and_online_recall_bounds_are_one_implementation():
    """Calibration's recall_target and the live adjuster's recall_curve call the same bound
    (``bounds.recall_lower``) and agree on the same census evidence."""
    from moderation.thresholds import audit, bounds, strategies

    assert strategies.recall_lower is bounds.recall_lower is audit.recall_lower
    rng = np.random.default_rng(5)
    scores = np.r_[rng.normal(0.3, 0.05, 400), rng.normal(0.1, 0.04, 2000)]
    labels = np.r_[np.ones(400, bool), np.zeros(2000, bool)]
    result = strategies.recall_target(scores, labels, r=0.95, delta=0.1)
    k = int(result.params["k"])
    # online, on the same labels as census evidence (π = 1), at the chosen threshold
    curve = audit.recall_curve(scores, labels, np.ones(scores.size), [result.threshold], 0.9)
    assert curve.missed_census[0] == k - 1
    assert curve.lower[0] == pytest.approx(1.0 - result.params["miss_rate_upper"], abs=1e-12)
    assert curve.lower[0] >= 0.95
    # one step higher (one more miss) the shared bound fails the target, both ways
    above = np.sort(scores[labels])[k]
    assert audit.recall_curve(scores, labels, np.ones(scores.size), [above], 0.9).lower[0] < 0.95


# --- weighted labels (decided appeals: MODERATION_APPEAL_EVIDENCE_WEIGHT) --------------------


def test_unit_weights_change_nothing():
    rng = np.random.default_rng(5)
    s = rng.uniform(0, 1, 300)
    y = rng.uniform(0, 1, 300) < s
    ones = np.ones(s.size)
    cases = (
        ("recall_target", {"recall": 0.9, "delta": 0.1}),
        ("precision_target", {"precision": 0.8}),
        ("roc_optimal", {}),
    )
    for name, params in cases:
        plain, weighted = (
            run_strategy(name, s, y, **params),
            run_strategy(name, s, y, ones, **params),
        )
        assert (weighted.threshold, weighted.precision, weighted.recall, weighted.fpr) == (
            plain.threshold, plain.precision, plain.recall, plain.fpr
        ), name  # fmt: skip
        assert weighted.params == plain.params


def test_a_half_weight_violation_counts_half_a_miss_in_the_recall_bound():
    """30 violations at 0.01 … 0.30 (r = 0.9, δ = 0.1 allows no miss: k = 1, threshold 0.01)
    and one appealed violation at 0.005. At weight 1 it must be caught: threshold 0.005. At
    weight 0.5 missing it is half a miss of 30.5: recall_lower(30, 0.5, 0.9) = 0.9018 ≥ 0.9,
    so the threshold stays 0.01 (k = 2), with weighted recall 30 / 30.5."""
    s = np.r_[np.arange(1, 31) / 100, 0.005]
    y = np.ones(31, dtype=bool)
    assert recall_target(s, y, 0.9, 0.1).threshold == 0.005
    half = recall_target(s, y, 0.9, 0.1, weights=np.r_[np.ones(30), 0.5])
    assert (half.threshold, half.params["k"]) == (0.01, 2)
    assert half.recall == pytest.approx(30 / 30.5, abs=1e-12)
    assert half.params["miss_rate_upper"] == pytest.approx(0.0981814762, abs=1e-9)
    assert "30.5 violations' worth" in half.bound


def test_weighted_precision_target_and_bad_weights():
    # a non-violation at 0.83 weighted 0.5 (an overturned appeal) moves the lowest threshold
    # with precision ≥ 0.75 from 0.5 (4 / 5 = 0.8) to 0.6 (3 / 3.5 = 6/7; at 0.5: 4 / 5.5)
    s = np.array([0.5, 0.6, 0.7, 0.8, 0.1, 0.2, 0.3, 0.55, 0.83])
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    w = np.r_[np.ones(8), 0.5]
    assert precision_target(s[:8], y[:8], 0.75).threshold == 0.5
    r = precision_target(s, y, 0.75, weights=w)
    assert (r.threshold, r.precision, r.recall, r.fpr) == (0.6, 3 / 3.5, 0.75, 0.5 / 4.5)
    for bad, msg in ((np.ones(3), "weights"), (np.r_[np.ones(8), -1], "≥ 0")):
        with pytest.raises(ValueError, match=msg):
            precision_target(s, y, 0.75, weights=bad)
