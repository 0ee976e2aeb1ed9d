"""Collating routed items and reviews: one safe, resolved label per item."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moderation.domain import ReviewLabel
from moderation.thresholds.adjusters import RecallTargetAdjuster
from moderation.thresholds.evidence import (
    AUDIT,
    QUEUE,
    Evidence,
    ItemRecord,
    ReviewRecord,
    collate,
    label_is_violation,
)


def test_label_mapping():
    assert label_is_violation(ReviewLabel.VIOLATION)
    assert label_is_violation("violation")
    assert not label_is_violation(ReviewLabel.NOT_VIOLATION)
    assert not label_is_violation(ReviewLabel.OTHER_CATEGORY)  # someone else's violation
    with pytest.raises(ValueError):
        label_is_violation("maybe")


def test_collate_joins_items_and_orders_by_last_review():
    items = [ItemRecord("a", 0.3), ItemRecord("b", 0.1, 0.25, "near"), ItemRecord("c", 0.4)]
    reviews = [
        ReviewRecord("c", True, "r1", 5.0),
        ReviewRecord("a", False, "r1", 1.0),
        ReviewRecord("b", True, "r1", 3.0),
    ]
    ev = collate(items, reviews)
    assert ev.item_ids == ("a", "b", "c")
    assert ev.is_violation.tolist() == [False, True, True]
    assert ev.inclusion_probability.tolist() == [1.0, 0.25, 1.0]
    assert ev.sampled.tolist() == [False, True, False]
    assert ev.summary() == {
        "n": 3,
        "positives": 2,
        "audited": 1,
        "audited_positives": 1,
        "data_quality": {},
    }
    assert [f.score for f in ev.feedback()] == [0.3, 0.1, 0.4]


@pytest.mark.parametrize(
    ("votes", "expected", "contested"),
    [
        ([("r1", True)], True, 0),
        ([("r1", True), ("r2", False)], True, 1),  # tie: recall first
        ([("r1", False), ("r2", False), ("r3", True)], False, 1),  # majority
        ([("r1", True), ("r2", True), ("r3", False)], True, 1),
        ([("r1", False), ("r1", True)], True, 0),  # the same reviewer changed their mind
        ([("r1", True), ("r1", False)], False, 0),
    ],
)
def test_votes_resolve_per_reviewer_then_by_majority(votes, expected, contested):
    reviews = [ReviewRecord("x", v, r, float(i)) for i, (r, v) in enumerate(votes)]
    ev = collate([ItemRecord("x", 0.2)], reviews)
    assert ev.is_violation.tolist() == [expected]
    assert ev.quality.get("contested_items", 0) == contested


def test_a_late_review_arriving_first_still_wins():
    reviews = [ReviewRecord("x", True, "r1", 9.0), ReviewRecord("x", False, "r1", 2.0)]
    ev = collate([ItemRecord("x", 0.2)], reviews)
    assert ev.is_violation.tolist() == [True]
    assert ev.reviewed_at.tolist() == [9.0]
    assert ev.quality["superseded_reviews"] == 1


def test_bad_rows_are_dropped_and_counted():
    items = [
        ItemRecord("ok", 0.2),
        ItemRecord("nan", math.nan),
        ItemRecord("inf", -math.inf),
        ItemRecord("str", "0.3"),  # type: ignore[arg-type]
        ItemRecord("bool", True),  # type: ignore[arg-type]
        ItemRecord("pi0", 0.1, 0.0),
        ItemRecord("pi2", 0.1, 2.0),
        ItemRecord("t", 0.1, 0.5, "near", math.nan),
        ItemRecord("ok", 0.9),  # duplicate id: the first record stands
    ]
    reviews = [ReviewRecord(i.item_id, True, "r", 1.0) for i in items] + [
        ReviewRecord("ghost", True, "r", 1.0),
        ReviewRecord("ok", True, "r2", math.nan),
    ]
    ev = collate(items, reviews)
    assert ev.item_ids == ("ok",) and ev.score.tolist() == [0.2]
    assert ev.quality["invalid_items"] == 7
    assert ev.quality["duplicate_items"] == 1
    assert ev.quality["unknown_reviews"] == 8  # reviews of dropped items and of "ghost"
    assert ev.quality["invalid_reviews"] == 1


def test_pending_audits_are_nonresponse_and_pending_queue_items_are_counted():
    items = [ItemRecord(f"a{i}", 0.1, 0.2, "near") for i in range(10)]
    items += [ItemRecord(f"q{i}", 0.3) for i in range(4)]
    reviews = [ReviewRecord(f"a{i}", False, "r", 1.0) for i in range(4)]  # 4 of 10 audits
    reviews += [ReviewRecord("q0", True, "r", 1.0)]
    ev = collate(items, reviews)
    audits = ev.inclusion_probability[ev.sampled]
    assert audits == pytest.approx([0.2 * 4 / 10] * 4)  # each answered audit stands for 2.5
    assert ev.quality["pending_audit"] == 6 and ev.quality["pending_queue"] == 3


def test_horizon_ignores_older_items_and_their_reviews():
    items = [ItemRecord("old", 0.3, at=10.0), ItemRecord("new", 0.3, at=100.0)]
    reviews = [ReviewRecord("old", True, "r", 200.0), ReviewRecord("new", True, "r", 200.0)]
    ev = collate(items, reviews, since=50.0)
    assert ev.item_ids == ("new",)
    assert "unknown_reviews" not in ev.quality
    assert ev.since(150.0).n == 0 and ev.since(100.0).n == 1


def test_from_arrays_and_since():
    ev = Evidence.from_arrays([0.1, 0.2, 0.3], [True, False, True], [0.5, 1, 1], [0, 1, 2])
    assert ev.n == 3 and ev.positives == 2
    recent = ev.since(1)
    assert recent.score.tolist() == [0.2, 0.3] and recent.item_ids == (1, 2)
    assert np.array_equal(recent.routed_at, [1.0, 2.0])


def test_audits_drawn_with_certainty_count_as_audits_not_census():
    # 30 reviewed misses audited in the near band at π = 1 (a high audit fraction) and 300
    # queue items: the audit count is how they were drawn, not their probability
    items = [ItemRecord(f"a{i}", 0.17, 1.0, "near", drawn=AUDIT) for i in range(30)]
    items += [ItemRecord(f"q{i}", 0.3, 1.0, drawn=QUEUE) for i in range(300)]
    items += [ItemRecord(f"r{i}", 0.05, 0.01, "rest") for i in range(4)]  # derived: audit
    reviews = [ReviewRecord(f"a{i}", True, "r1", 1.0) for i in range(30)]
    reviews += [ReviewRecord(f"q{i}", i % 2 == 0, "r1", 2.0) for i in range(300)]
    reviews += [ReviewRecord(f"r{i}", True, "r1", 3.0) for i in range(4)]
    ev = collate(items, reviews)
    summary = ev.summary()
    assert summary["audited"] == 34 and summary["audited_positives"] == 34
    assert summary["n"] == 334 and summary["positives"] == 184
    # the window keeps the draw kind
    assert int(ev.since(0.0).sampled.sum()) == 34
    # the "≥ min_audited audits" gate counts those 34 audits (not the 4 with π < 1)
    gate = RecallTargetAdjuster(min_audited=35).propose(0.18, ev)
    assert gate.reason == "thin evidence: 34 audits < 35"
    assert RecallTargetAdjuster(min_audited=34).propose(0.18, ev).reason != gate.reason
    # a queue item is never an audit, an appeal (another kind) neither
    appeal = collate(
        [ItemRecord("p", 0.1, 0.5, "appeal", drawn="appeal")], [ReviewRecord("p", True)]
    )
    assert appeal.summary()["audited"] == 0 and appeal.inclusion_probability.tolist() == [0.5]


def test_pending_audits_drawn_with_certainty_are_nonresponse_adjusted():
    items = [ItemRecord(f"a{i}", 0.17, 1.0, "near", drawn=AUDIT) for i in range(4)]
    ev = collate(items, [ReviewRecord("a0", True), ReviewRecord("a1", False)])
    assert ev.inclusion_probability.tolist() == [0.5, 0.5]
    assert ev.quality == {"pending_audit": 2}
    assert Evidence.from_arrays(
        [0.1, 0.2], [1, 0], [1.0, 0.5], audited=[True, False]
    ).sampled.tolist() == [True, False]


def test_per_image_audits_with_nearby_pi_share_a_nonresponse_class():
    # per-image π is continuous: 0.30 and 0.32 (within 2^¼) form one class, 0.05 another
    items = [
        ItemRecord("a", 0.1, 0.30, "near", drawn=AUDIT),
        ItemRecord("b", 0.1, 0.32, "near", drawn=AUDIT),
        ItemRecord("c", 0.1, 0.05, "near", drawn=AUDIT),
    ]
    ev = collate(items, [ReviewRecord("a", True), ReviewRecord("c", False)])
    assert ev.inclusion_probability.tolist() == pytest.approx([0.15, 0.05])
    assert ev.quality == {"pending_audit": 1}
