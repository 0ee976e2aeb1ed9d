"""Adjusters: the seed's exact numbers, recall-target bounds and evidence rules, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from moderation.thresholds.adjusters import (
    CONTENT_SAFETY_BASE,
    RecallTargetAdjuster,
    SeedAdjuster,
    seed_proposal,
)
from moderation.thresholds.audit import AuditDesign, audit_decisions
from moderation.thresholds.evidence import Evidence, Feedback, ItemRecord, ReviewRecord, collate
from moderation.thresholds.scales import UnknownScale


class SeedReference:
    """The seed's AdaptiveThresholdSystem transcribed line by line (seed/000_…txt §6.3), with
    ``time.time()`` replaced by a passed timestamp and the prints dropped."""

    def __init__(self, initial_threshold=0.28):
        self.threshold = initial_threshold
        self.feedback_history = []
        self.adjustment_factor = 0.01

    def add_feedback(self, score, is_correct_match, timestamp):
        self.feedback_history.append(
            {"score": score, "is_correct": is_correct_match, "timestamp": timestamp}
        )
        if len(self.feedback_history) > 1000:
            self.feedback_history = self.feedback_history[-1000:]

    def adjust_threshold(self):
        if len(self.feedback_history) < 50:
            return
        recent_feedback = self.feedback_history[-100:]
        false_positives = [
            f for f in recent_feedback if f["score"] >= self.threshold and not f["is_correct"]
        ]
        false_negatives = [
            f for f in recent_feedback if f["score"] < self.threshold and f["is_correct"]
        ]
        fp_rate = len(false_positives) / len(recent_feedback)
        fn_rate = len(false_negatives) / len(recent_feedback)
        if fp_rate > 0.1:
            self.threshold += self.adjustment_factor
        elif fn_rate > 0.15:
            self.threshold -= self.adjustment_factor
        self.threshold = max(0.1, min(0.5, self.threshold))


def fb(score: float, violation: bool, n: int) -> list[Feedback]:
    return [Feedback(score, violation, 0.0)] * n


# (start, feedback, expected threshold) — every number follows from the seed's rule
SEED_CASES = [
    pytest.param(0.28, fb(0.30, False, 49), 0.28, id="49 items: too few, no change"),
    pytest.param(0.28, fb(0.30, False, 50), 0.28 + 0.01, id="50 false positives: raise"),
    pytest.param(
        0.28, fb(0.30, False, 10) + fb(0.20, False, 90), 0.28, id="FP rate exactly 0.10: hold"
    ),
    pytest.param(0.28, fb(0.30, False, 11) + fb(0.20, False, 89), 0.29, id="FP 0.11: raise"),
    pytest.param(0.28, fb(0.20, True, 15) + fb(0.20, False, 85), 0.28, id="FN exactly 0.15: hold"),
    pytest.param(0.28, fb(0.20, True, 16) + fb(0.20, False, 84), 0.27, id="FN 0.16: lower"),
    pytest.param(
        0.28, fb(0.30, False, 11) + fb(0.20, True, 89), 0.29, id="FP beats FN: raise first"
    ),
    pytest.param(
        # 10 shown items, all false positives: 100 % of what was shown, but the seed divides
        # by the whole window (10/100 = 0.10), so it does not move.
        0.28,
        fb(0.30, False, 10) + fb(0.10, False, 90),
        0.28,
        id="rates divide by the window, not by the items above the threshold",
    ),
    pytest.param(
        0.28, fb(0.30, False, 900) + fb(0.10, False, 100), 0.28, id="only the last 100 count"
    ),
    pytest.param(0.5, fb(0.6, False, 60), 0.5, id="clamped at 0.5"),
    pytest.param(0.1, fb(0.05, True, 60), 0.1, id="clamped at 0.1"),
    pytest.param(0.7, fb(0.6, False, 49), 0.7, id="out of bounds, too few: not even clamped"),
    pytest.param(0.7, fb(0.1, False, 50), 0.5, id="out of bounds: clamped once it adjusts"),
    pytest.param(
        CONTENT_SAFETY_BASE, fb(0.15, True, 16) + fb(0.1, False, 84), 0.17, id="safety base 0.18"
    ),
]


@pytest.mark.parametrize(("start", "feedback", "expected"), SEED_CASES)
def test_seed_proposal_exact_numbers(start, feedback, expected):
    assert seed_proposal(start, feedback).value == pytest.approx(expected, abs=1e-12)
    ref = SeedReference(start)
    for f in feedback:
        ref.add_feedback(f.score, f.is_violation, f.timestamp)
    ref.adjust_threshold()
    assert seed_proposal(start, feedback).value == ref.threshold  # bit for bit


def test_seed_evidence_names_its_rates():
    p = seed_proposal(0.28, fb(0.30, False, 11) + fb(0.20, True, 89))
    assert p.evidence == {
        "history": 100,
        "window": 100,
        "false_positives": 11,
        "false_negatives": 89,
        "fp_rate": 0.11,
        "fn_rate": 0.89,
        "rate_denominator": "window",
    }
    assert p.changed and "raise" in p.reason


def test_seed_adjuster_matches_the_seed_on_random_streams():
    rng = np.random.default_rng(3)
    for start in (0.28, CONTENT_SAFETY_BASE):
        ours, ref = SeedAdjuster(start), SeedReference(start)
        for step in range(300):
            for _ in range(int(rng.integers(0, 40))):
                s, y = float(rng.normal(0.25, 0.08)), bool(rng.random() < 0.4)
                ours.add_feedback(s, y, float(step))
                ref.add_feedback(s, y, float(step))
            ours.adjust()
            ref.adjust_threshold()
            assert ours.threshold == ref.threshold
        assert len(ours.history) == len(ref.feedback_history) == 1000


def test_seed_steps_accumulate_floating_point_like_the_seed():
    seed = SeedAdjuster()
    for _ in range(60):
        seed.add_feedback(0.45, False, 0.0)
    expected = 0.28
    for _ in range(5):
        seed.adjust()
        expected += 0.01
    assert seed.threshold == expected  # 0.33000000000000007, not 0.33


def test_seed_context_and_defaults():
    assert SeedAdjuster().threshold == 0.28
    assert SeedAdjuster.content_safety().threshold == 0.18
    seed = SeedAdjuster(0.5)
    assert seed.contextual_threshold() == 0.5
    assert seed.contextual_threshold(high_precision_required=True) == 0.5 + 0.03
    assert seed.contextual_threshold(many_candidates=True) == 0.5 + 0.02
    # the seed does not clamp its contextual threshold
    assert seed.contextual_threshold(high_precision_required=True, many_candidates=True) == (
        0.5 + 0.03 + 0.02
    )


def test_seed_refuses_non_finite_scores():
    seed = SeedAdjuster()
    assert not seed.add_feedback(math.nan, True, 0.0)
    assert not seed.add_feedback(math.inf, False, 0.0)
    assert seed.add_feedback(0.3, False, 0.0)
    assert seed.rejected == 2 and len(seed.history) == 1


# --- recall target -----------------------------------------------------------------------


def synthetic_evidence(
    threshold: float,
    *,
    n: int = 200_000,
    prevalence: float = 0.02,
    mu1: float = 0.30,
    seed: int = 0,
    scale: float = 1.0,
) -> Evidence:
    """Reviewed items of one stream at a fixed threshold: the queue plus audit samples."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < prevalence
    s = np.where(y, rng.normal(mu1, 0.045, n), rng.normal(0.12, 0.04, n))
    sampled, _, pi = audit_decisions(s, threshold, AuditDesign.for_scale("gme_cosine", scale), rng)
    shown = (s >= threshold) | sampled
    return Evidence.from_arrays(s[shown], y[shown], pi[shown])


def test_thin_evidence_changes_nothing():
    adj = RecallTargetAdjuster()
    ev = synthetic_evidence(0.18, n=1000)
    p = adj.propose(0.18, ev)
    assert not p.changed and p.reason.startswith("thin evidence: ") and "violations <" in p.reason
    few_audits = RecallTargetAdjuster(min_audited=10**6).propose(0.18, synthetic_evidence(0.18))
    assert not few_audits.changed and "audits" in few_audits.reason
    # Enough audits to pass the count rules, too few to certify 0.95 even with no miss at all
    sparse = synthetic_evidence(0.18, n=20_000, scale=0.2)
    p = RecallTargetAdjuster(min_positives=1, min_audited=1).propose(0.18, sparse)
    assert not p.changed and "even with no miss" in p.reason


def test_raises_by_at_most_one_step_when_the_bound_comfortably_allows():
    # violations score ~0.30, the threshold 0.15 is far below: recall is ~1 even at 0.16
    ev = synthetic_evidence(0.15, mu1=0.32)
    adj = RecallTargetAdjuster()
    p = adj.propose(0.15, ev)
    assert p.value == pytest.approx(0.15 + adj.max_step_up)
    assert p.evidence["at_proposed"]["recall_lower"] >= adj.target
    assert "higher" in p.reason


def test_lowers_by_at_most_one_step_when_misses_are_seen():
    # violations around the threshold: true recall at 0.26 is ~0.8
    ev = synthetic_evidence(0.26, mu1=0.30)
    adj = RecallTargetAdjuster()
    p = adj.propose(0.26, ev)
    assert 0.26 - adj.max_step_down - 1e-12 <= p.value < 0.26
    assert p.evidence["at_current"]["recall_lower"] < adj.target


def test_holds_while_raising_is_not_comfortable():
    ev = synthetic_evidence(0.15, mu1=0.32)
    hold = RecallTargetAdjuster(raise_margin=0.049).propose(0.15, ev)
    assert not hold.changed and hold.reason == "recall bound holds"


@pytest.mark.parametrize("seed", range(12))
def test_proposals_stay_inside_steps_and_bounds(seed):
    rng = np.random.default_rng(seed)
    current = float(rng.uniform(0.1, 0.5))
    adj = RecallTargetAdjuster(max_step_up=0.005, max_step_down=0.015, bounds=(0.1, 0.5))
    ev = synthetic_evidence(current, mu1=float(rng.uniform(0.15, 0.4)), seed=seed)
    p = adj.propose(current, ev)
    assert current - 0.015 - 1e-12 <= p.value <= current + 0.005 + 1e-12
    assert 0.1 <= p.value <= 0.5
    json.dumps(p.evidence, allow_nan=False)  # goes into threshold_versions.stats as is


def test_out_of_bounds_threshold_is_clamped():
    adj = RecallTargetAdjuster(bounds=(0.1, 0.5))
    assert adj.propose(0.7, synthetic_evidence(0.3)).value == 0.5
    assert adj.propose(0.02, synthetic_evidence(0.3)).value == 0.1
    with pytest.raises(ValueError, match="finite"):
        adj.propose(math.nan, synthetic_evidence(0.3))


@pytest.mark.parametrize("current", [0.02, 0.7, 0.3])
def test_thin_evidence_never_moves_a_threshold_even_outside_the_bounds(current):
    adj = RecallTargetAdjuster(bounds=(0.1, 0.5))
    empty = Evidence.from_arrays([], [], [])
    p = adj.propose(current, empty)
    assert p.value == current and not p.changed
    assert p.reason.startswith("thin evidence: 0 violations < 30")
    assert ("outside [0.1, 0.5]" in p.reason) == (current != 0.3)
    few_audits = synthetic_evidence(0.3, n=20_000, scale=0.05)  # violations, hardly any audit
    q = RecallTargetAdjuster(bounds=(0.1, 0.5), min_positives=1).propose(current, few_audits)
    assert not q.changed and "audits <" in q.reason


def test_seed_says_why_thin_feedback_changes_nothing():
    p = seed_proposal(0.7, fb(0.6, False, 12))
    assert (p.value, p.changed) == (0.7, False)
    assert p.reason == "thin evidence: 12 feedback items < 50"


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError):
        RecallTargetAdjuster(target=1.0)
    with pytest.raises(ValueError):
        RecallTargetAdjuster(resolution=0.05)
    with pytest.raises(ValueError):
        RecallTargetAdjuster(bounds=(0.5, 0.1))
    with pytest.raises(ValueError, match="now"):
        RecallTargetAdjuster(horizon_s=3600).propose(0.2, synthetic_evidence(0.2))


def test_horizon_and_recent_window_catch_drift():
    """Old evidence says recall is fine; the recent part (violations drifted down) does not."""
    old = synthetic_evidence(0.20, mu1=0.34, n=400_000, seed=1)
    new = synthetic_evidence(0.20, mu1=0.26, n=200_000, seed=2)
    merged = Evidence.from_arrays(
        np.concatenate([old.score, new.score]),
        np.concatenate([old.is_violation, new.is_violation]),
        np.concatenate([old.inclusion_probability, new.inclusion_probability]),
        np.concatenate([np.full(old.n, 0.0), np.full(new.n, 10.0)]),
    )
    whole = RecallTargetAdjuster(horizon_s=100.0).propose(0.20, merged, now=11.0)
    recent = RecallTargetAdjuster(horizon_s=100.0, recent_s=5.0).propose(0.20, merged, now=11.0)
    assert recent.value < 0.20 <= whole.value
    assert recent.evidence["recent"]["n"] == new.n
    only_new = RecallTargetAdjuster(horizon_s=5.0).propose(0.20, merged, now=11.0)
    assert only_new.evidence["n"] == new.n


def _items_and_reviews(ev: Evidence) -> tuple[list[ItemRecord], list[ReviewRecord]]:
    items = [
        ItemRecord(i, float(s), float(p), "above" if p >= 1 else f"band{p}", 0.0)
        for i, (s, p) in enumerate(zip(ev.score, ev.inclusion_probability, strict=True))
    ]
    reviews = [ReviewRecord(i, bool(y), "r1", 1.0) for i, y in enumerate(ev.is_violation)]
    return items, reviews


def test_bad_input_through_collate_is_safe():
    ev = synthetic_evidence(0.20, mu1=0.30, n=150_000)
    items, reviews = _items_and_reviews(ev)
    clean = RecallTargetAdjuster().propose(0.20, collate(items, reviews))
    noisy_items = items + [
        ItemRecord("nan", math.nan, 1.0),
        ItemRecord("inf", math.inf, 0.2),
        ItemRecord("none", None, 1.0),  # type: ignore[arg-type]
        ItemRecord(0, 0.99, 1.0),  # duplicate id: the first record is kept
    ]
    noisy_reviews = reviews + [
        ReviewRecord("ghost", True, "r1", 2.0),  # unknown item
        ReviewRecord(1, ev.is_violation[1], "r1", 0.5),  # older duplicate by the same reviewer
        ReviewRecord(1, ev.is_violation[1], "r1", 3.0),  # identical re-review
    ]
    noisy = collate(noisy_items, noisy_reviews)
    p = RecallTargetAdjuster().propose(0.20, noisy)
    assert p.value == clean.value
    q = p.evidence["data_quality"]
    assert q["invalid_items"] == 3 and q["duplicate_items"] == 1
    assert q["unknown_reviews"] == 1 and q["superseded_reviews"] == 2


def test_contradictory_reviews_count_as_violations_and_never_crash():
    ev = synthetic_evidence(0.20, mu1=0.30, n=150_000)
    items, reviews = _items_and_reviews(ev)
    # a second reviewer contradicts every audited item: ties resolve to "violation"
    audited = [i for i, p in enumerate(ev.inclusion_probability) if p < 1]
    contra = [ReviewRecord(i, not ev.is_violation[i], "r2", 2.0) for i in audited]
    evidence = collate(items, reviews + contra)
    assert evidence.quality["contested_items"] == len(audited)
    assert evidence.is_violation[np.isin(np.array(evidence.item_ids), audited)].all()
    adj = RecallTargetAdjuster()
    p = adj.propose(0.20, evidence)
    # every audit now looks like a miss: recall collapses, the step down stays bounded
    assert 0.20 - adj.max_step_down - 1e-12 <= p.value < 0.20


@pytest.mark.parametrize("label", [True, False])
def test_a_burst_of_one_label_moves_at_most_one_step(label):
    ev = synthetic_evidence(0.20, mu1=0.30, n=150_000)
    items, _ = _items_and_reviews(ev)
    burst = [ReviewRecord(it.item_id, label, "bot", 5.0) for it in items]
    adj = RecallTargetAdjuster()
    p = adj.propose(0.20, collate(items, burst))
    assert 0.20 - adj.max_step_down - 1e-12 <= p.value <= 0.20 + adj.max_step_up + 1e-12
    if not label:  # no violation at all: nothing to estimate recall from
        assert not p.changed and "thin evidence" in p.reason
    seed_burst = seed_proposal(0.20, collate(items, burst).feedback())
    assert abs(seed_burst.value - 0.20) <= 0.01 + 1e-12


def test_presets_per_score_scale():
    prob = RecallTargetAdjuster.for_scale("probability", target=0.9)
    assert prob.bounds == (0.05, 0.95) and prob.target == 0.9
    assert RecallTargetAdjuster.for_scale("gme_cosine") == RecallTargetAdjuster()
    with pytest.raises(UnknownScale, match="logits"):
        RecallTargetAdjuster.for_scale("logits")


def test_load_cap_degrades_to_the_floor_with_an_alert_and_never_below_it():
    from moderation.thresholds.adjusters import queue_share

    # 2,000 violations far above; 150 violations and 10,000 benign items at 0.205 (queued at
    # 0.20 and 0.205, not at 0.2075); 4,000 benign audits at π = 0.1 stand for 40,000 below
    s = np.r_[np.full(2000, 0.30), np.full(150, 0.205), np.full(10000, 0.205), np.full(4000, 0.05)]
    y = np.r_[np.ones(2150, bool), np.zeros(14000, bool)]
    pi = np.r_[np.ones(12150), np.full(4000, 0.1)]
    ev = Evidence.from_arrays(s, y, pi)
    assert queue_share(ev, np.array([0.20, 0.21])) == pytest.approx([12150 / 52150, 2000 / 52150])
    plain = RecallTargetAdjuster().propose(0.20, ev)
    assert plain.value == 0.205 and "ALERT" not in plain.reason
    capped = RecallTargetAdjuster(max_load_share=0.1, floor_target=0.85).propose(0.20, ev)
    assert capped.value == 0.2075
    assert capped.reason.startswith("load cap 0.1: recall bound 0.9024 ≥ floor 0.85 (ALERT")
    assert capped.evidence["load_capped"] == {"from": 0.205, "share": pytest.approx(2000 / 52150)}
    # the floor is above what the capped threshold can certify: recall first, with an alert
    held = RecallTargetAdjuster(max_load_share=0.1, floor_target=0.95).propose(0.20, ev)
    assert held.value == 0.205 and "over cap, recall first" in held.reason
    assert held.evidence["load_cap_exceeded"] is True
    with pytest.raises(ValueError):
        RecallTargetAdjuster(max_load_share=0.1, floor_target=0.99)


def test_thin_step_down_slows_a_fall_the_estimate_does_not_call_for():
    # 400 violations queued at 0.30; 300 benign audits at 0.15 and ``misses`` violations at 0.17
    # audited, all at π = 0.5. At 0.18 with 8 misses the estimate is 400/416 = 0.9615 ≥ 0.95
    # but the bound (effective counts ÷ 2) is below; 0.17 catches them all and passes.
    def ev(misses: int) -> Evidence:
        s = np.r_[np.full(400, 0.30), np.full(300, 0.15), np.full(misses, 0.17)]
        y = np.r_[np.ones(400, bool), np.zeros(300, bool), np.ones(misses, bool)]
        pi = np.r_[np.ones(400), np.full(300 + misses, 0.5)]
        return Evidence.from_arrays(s, y, pi)

    plain = RecallTargetAdjuster(thin_step_down=None).propose(0.18, ev(8))
    assert plain.value == 0.17 and plain.evidence["at_current"]["recall_estimate"] == 400 / 416
    assert plain.evidence["at_current"]["recall_lower"] < 0.95 and "smoothed" not in plain.evidence
    # smoothing is the default (0.0025 on the GME scale, one grid step; 0.005 on probabilities)
    assert RecallTargetAdjuster().thin_step_down == 0.0025
    assert RecallTargetAdjuster.for_scale("probability").thin_step_down == 0.005
    smooth = RecallTargetAdjuster().propose(0.18, ev(8))
    assert smooth.value == 0.1775 and smooth.reason.endswith("step limited to 0.0025")
    assert smooth.evidence["smoothed"] == {"from": 0.17, "estimates_at_current": [400 / 416]}
    assert RecallTargetAdjuster.for_scale("gme_cosine").propose(0.18, ev(8)) == smooth
    # 12 misses: the estimate 400/424 = 0.943 is itself short, so the full step is taken
    short = RecallTargetAdjuster().propose(0.18, ev(12))
    assert short.value == 0.17 and "smoothed" not in short.evidence
    with pytest.raises(ValueError):
        RecallTargetAdjuster(thin_step_down=-0.01)
