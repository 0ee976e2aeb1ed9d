"""Dashboard views return the numbers worked out by hand for tests/dashboard_seed.py."""

from __future__ import annotations

import datetime as dt

import pytest

from moderation.db import make_sessionmaker
from moderation.db import views as v
from moderation.domain import RiskTier
from tests.dashboard_seed import NOW, at, seed_dashboard

WINDOW = v.TimeWindow.last(2, NOW)  # 10:30–12:30, read from the 10:00 hour bucket on


@pytest.fixture
def session(engine):
    factory = make_sessionmaker(engine)
    with factory.begin() as s:
        seed_dashboard(s)
    with factory() as s:
        yield s


def test_throughput_per_minute(session):
    points = v.throughput_per_minute(session, WINDOW)
    assert [(p.minute, p.finished, p.scored, p.failed, p.quarantined) for p in points] == [
        (at(11, 15), 1, 1, 0, 0),
        (at(11, 20), 1, 0, 0, 1),
        (at(11, 30), 1, 0, 1, 0),
        (at(11, 50), 1, 1, 0, 0),
        (at(12, 0), 2, 2, 0, 0),
        (at(12, 1), 1, 0, 1, 0),
        (at(12, 10), 1, 1, 0, 0),
    ]
    turnaround = [p.mean_turnaround_s for p in points]
    assert turnaround == pytest.approx([10, 600, 60, 60, 20, 1, 30], abs=1e-3)


def test_throughput_window_edges_are_minute_buckets(session):
    window = v.TimeWindow(at(12, 0, 30), at(12, 1, 0))
    assert [p.minute for p in v.throughput_per_minute(session, window)] == [at(12, 0)]


def test_tier_mix_hourly(session):
    mix = {(p.hour, p.category, p.tier): p.jobs for p in v.tier_mix_hourly(session, WINDOW)}
    assert mix == {
        (at(11, 0), None, RiskTier.CLEAR): 2,
        (at(12, 0), None, RiskTier.CLEAR): 1,
        (at(12, 0), "weapons", RiskTier.EXTREME): 1,
        (at(12, 0), "weapons", RiskTier.HIGH): 1,
    }
    whole_day = v.TimeWindow(at(0, 0), NOW)
    assert (at(9, 0), "sexual", RiskTier.MEDIUM) in {
        (p.hour, p.category, p.tier) for p in v.tier_mix_hourly(session, whole_day)
    }


def test_backlog(session):
    entries = {(e.queue, e.status): e for e in v.backlog(session, NOW)}
    assert set(entries) == {
        ("jobs", "queued"), ("jobs", "processing"), ("review_queue", "open"),
        ("review_audit", "claimed"),
    }  # fmt: skip
    queued = entries[("jobs", "queued")]
    assert (queued.items, queued.oldest_at, queued.oldest_age_s) == (2, at(12, 20), 600)
    assert entries[("jobs", "processing")].oldest_age_s == 120
    assert entries[("review_queue", "open")].oldest_at == at(9, 0, 5)
    assert entries[("review_audit", "claimed")].oldest_age_s == 2400


def test_failures_by_reason(session):
    reasons = v.failures_by_reason(session, WINDOW)
    assert [(r.status, r.error_code, r.jobs, r.last_at) for r in reasons] == [
        ("failed", "undecodable", 2, at(12, 1, 1)),
        ("quarantined", "worker_crash", 1, at(11, 20)),
    ]


def test_review_latency(session):
    points = {(p.hour, p.kind): p for p in v.review_latency(session, WINDOW)}
    assert set(points) == {(at(11, 0), "audit"), (at(12, 0), "audit"), (at(12, 0), "queue")}
    queue = points[(at(12, 0), "queue")]
    assert queue.reviews == 4
    assert queue.mean_wait_s == pytest.approx((300 + 600 + 600 + 660) / 4, abs=1e-3)
    assert queue.max_wait_s == pytest.approx(660, abs=1e-3)
    assert points[(at(11, 0), "audit")].mean_wait_s == pytest.approx(1500, abs=1e-3)


def test_reviewer_agreement(session):
    rows = {a.reviewer: a for a in v.reviewer_agreement(session, WINDOW)}
    assert {r: (a.category, a.reviews, a.compared, a.agreed) for r, a in rows.items()} == {
        "alice": ("weapons", 2, 2, 1),
        "bob": ("weapons", 2, 2, 1),
        "carol": ("weapons", 2, 0, 0),
    }
    assert rows["alice"].rate == 0.5
    assert rows["carol"].rate is None


def test_review_estimates_weight_audits_by_inverse_inclusion_probability(session):
    (weapons,) = v.review_estimates(session, WINDOW)
    assert (weapons.category, weapons.reviews) == ("weapons", 6)
    assert (weapons.flagged_reviews, weapons.audit_reviews) == (4, 2)
    # ri1: two reviewers agree (0.5 + 0.5 tp); ri2: split (0.5 tp, 0.5 fp);
    # ri3: audit π=0.25 says violation (4 fn); ri4: audit π=0.5 says fine (2 tn)
    assert (weapons.tp, weapons.fp, weapons.fn, weapons.tn) == pytest.approx((1.5, 0.5, 4, 2))
    assert weapons.precision == pytest.approx(0.75)
    assert weapons.recall == pytest.approx(1.5 / 5.5)


def test_recall_is_unknown_without_below_threshold_reviews():
    estimate = v.CategoryEstimate("x", 2, 2, 0, tp=1.0, fp=1.0, fn=0.0, tn=0.0)
    assert estimate.precision == 0.5 and estimate.recall is None


def test_threshold_history(session):
    history = v.threshold_history(session)
    assert [(h.category, h.value, h.is_active) for h in history] == [
        ("weapons", 0.21, True),
        ("weapons", 0.20, False),
        ("sexual", 0.5, True),
        ("weapons", 0.18, False),
    ]
    newest = history[0]
    assert newest.previous_value == pytest.approx(0.20)
    assert newest.delta == pytest.approx(0.01)
    assert newest.kind == "adjuster" and history[1].kind == "calibration"
    assert history[1].stats == {"youden_j": 0.61, "labelled": 180}
    assert newest.cutoffs["medium"] == pytest.approx(0.21)
    assert history[3].previous_value is None
    assert [h.id for h in v.threshold_history(session, "sexual")] == [history[2].id]


@pytest.mark.parametrize(
    ("created_by", "strategy", "restored", "kind"),
    [("adjuster", "anything", None, "adjuster"), ("beat", "recall_target", None, "adjuster"),
     ("ops", "seed", None, "adjuster"), ("ops", "youden", None, "calibration"),
     ("ops", "youden", 3, "rollback")],
)  # fmt: skip
def test_threshold_version_kind(created_by, strategy, restored, kind):
    entry = v.ThresholdHistoryEntry(
        1, "c", "p", 0.2, None, None, {}, "gme_cosine", strategy, "r", {}, created_by, restored,
        NOW, True,
    )  # fmt: skip
    assert entry.kind == kind


def test_time_window_rejects_naive_and_empty_ranges():
    with pytest.raises(ValueError):
        v.TimeWindow(dt.datetime(2026, 1, 1), NOW)
    with pytest.raises(ValueError):
        v.TimeWindow(NOW, NOW)


def test_audit_load_per_1000_uploads(session):
    # 10:30–12:30: scored j1, j2, j10, j11, j12; audit items ri3 (j2), ri4 (j11), ri6 (j12)
    load = v.audit_load(session, v.TimeWindow.last(2, NOW))
    assert load == v.AuditLoad(uploads=5, audit_items=3, audited_images=3)
    assert (load.items_per_1000, load.images_per_1000) == (600.0, 600.0)
    # 11:30–12:30: j1, j2, j10, j12 scored; ri3 and ri6
    assert v.audit_load(session, v.TimeWindow(at(11, 30), NOW)).items_per_1000 == 500.0
    assert v.audit_load(session, v.TimeWindow(at(5, 0), at(6, 0))).items_per_1000 is None
