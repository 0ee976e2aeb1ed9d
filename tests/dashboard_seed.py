"""A small hand-made database state whose dashboard numbers are worked out in the comments.

``NOW`` is 2026-11-20 12:30 UTC; the expected values in tests/moderation/db/test_views.py and
the page tests follow from the rows below.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy.orm import Session

from moderation.db.models import (
    AuditSample,
    Decision,
    Image,
    Job,
    Review,
    ReviewItem,
    Score,
    ThresholdVersion,
)
from moderation.domain import (
    JobStatus,
    ReviewItemKind,
    ReviewItemStatus,
    ReviewLabel,
    RiskTier,
    ScoreSource,
)

NOW = dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)


def at(hh: int, mm: int, ss: int = 0, day: int = 20) -> dt.datetime:
    return dt.datetime(2026, 11, day, hh, mm, ss, tzinfo=dt.UTC)


# name: (status, submitted, finished, error_code)
JOBS: dict[str, tuple[JobStatus, dt.datetime, dt.datetime | None, str | None]] = {
    "j1": (JobStatus.SCORED, at(12, 0, 0), at(12, 0, 10), None),  # 12:00, 10 s
    "j2": (JobStatus.SCORED, at(12, 0, 20), at(12, 0, 50), None),  # 12:00, 30 s
    "j3": (JobStatus.FAILED, at(12, 1, 0), at(12, 1, 1), "undecodable"),  # 12:01, 1 s
    "j4": (JobStatus.QUARANTINED, at(11, 10), at(11, 20), "worker_crash"),  # 11:20, 600 s
    "j5": (JobStatus.SCORED, at(9, 0, 0), at(9, 0, 5), None),  # before the 2 h window
    "j6": (JobStatus.QUEUED, at(12, 20), None, None),
    "j7": (JobStatus.QUEUED, at(12, 25), None, None),
    "j8": (JobStatus.PROCESSING, at(12, 28), None, None),
    "j9": (JobStatus.FAILED, at(11, 29), at(11, 30), "undecodable"),  # 11:30, 60 s
    "j10": (JobStatus.SCORED, at(12, 9, 30), at(12, 10, 0), None),  # 12:10, 30 s
    "j11": (JobStatus.SCORED, at(11, 14, 50), at(11, 15, 0), None),  # 11:15, 10 s
    "j12": (JobStatus.SCORED, at(11, 49), at(11, 50), None),  # 11:50, 60 s
}

# job: (decision tier, deciding category, {category: (score, tier)})
VERDICTS: dict[str, tuple[RiskTier, str | None, dict[str, tuple[float, RiskTier]]]] = {
    "j1": (
        RiskTier.EXTREME,
        "weapons",
        {"weapons": (0.35, RiskTier.EXTREME), "sexual": (0.05, RiskTier.CLEAR)},
    ),  # noqa: E501
    "j2": (
        RiskTier.CLEAR,
        None,
        {"weapons": (0.05, RiskTier.CLEAR), "sexual": (0.10, RiskTier.CLEAR)},
    ),  # noqa: E501
    "j5": (RiskTier.MEDIUM, "sexual", {"sexual": (0.7, RiskTier.MEDIUM)}),
    "j10": (RiskTier.HIGH, "weapons", {"weapons": (0.25, RiskTier.HIGH)}),
    "j11": (RiskTier.CLEAR, None, {"weapons": (0.02, RiskTier.CLEAR)}),
    "j12": (RiskTier.CLEAR, None, {"weapons": (0.03, RiskTier.CLEAR)}),
}

# item: (job, kind, category, inclusion probability, status, created)
REVIEW_ITEMS: dict[str, tuple[str, ReviewItemKind, str, float, ReviewItemStatus, dt.datetime]] = {
    "ri1": ("j1", ReviewItemKind.QUEUE, "weapons", 1.0, ReviewItemStatus.DONE, at(12, 0, 10)),
    "ri2": ("j10", ReviewItemKind.QUEUE, "weapons", 1.0, ReviewItemStatus.DONE, at(12, 10)),
    "ri3": ("j2", ReviewItemKind.AUDIT, "weapons", 0.25, ReviewItemStatus.DONE, at(12, 1)),
    "ri4": ("j11", ReviewItemKind.AUDIT, "weapons", 0.5, ReviewItemStatus.DONE, at(11, 15)),
    "ri5": ("j5", ReviewItemKind.QUEUE, "sexual", 1.0, ReviewItemStatus.OPEN, at(9, 0, 5)),
    "ri6": ("j12", ReviewItemKind.AUDIT, "weapons", 0.5, ReviewItemStatus.CLAIMED, at(11, 50)),
}

# (item, reviewer, label, at): waits 300, 600 | 600, 660 | 600 | 1500 seconds
REVIEWS = [
    ("ri1", "alice", ReviewLabel.VIOLATION, at(12, 5, 10)),
    ("ri1", "bob", ReviewLabel.VIOLATION, at(12, 10, 10)),
    ("ri2", "alice", ReviewLabel.NOT_VIOLATION, at(12, 20)),
    ("ri2", "bob", ReviewLabel.VIOLATION, at(12, 21)),
    ("ri3", "carol", ReviewLabel.VIOLATION, at(12, 11)),
    ("ri4", "carol", ReviewLabel.NOT_VIOLATION, at(11, 40)),
]

WEAPONS_CUTOFFS = {"warning": 0.12, "medium": 0.18, "high": 0.22, "extreme": 0.30}
# (category, value, strategy, created_by, stats, created)
THRESHOLDS: list[tuple[str, float, str, str, dict[str, Any], dt.datetime]] = [
    ("weapons", 0.18, "preset", "preset", {}, at(8, 0, day=18)),
    ("sexual", 0.5, "preset", "preset", {}, at(8, 0, day=18)),
    ("weapons", 0.20, "youden", "ops", {"youden_j": 0.61, "labelled": 180}, at(10, 0, day=19)),
    ("weapons", 0.21, "recall_target", "adjuster", {"fn_rate": 0.05, "window": 100}, at(9, 0)),
]


def seed_dashboard(session: Session) -> dict[str, int]:
    """Insert the rows above; returns the ids of jobs and review items by name."""
    ids: dict[str, int] = {}
    for name, (status, submitted, finished, error_code) in JOBS.items():
        image = Image(sha256=hashlib.sha256(name.encode()).hexdigest(), byte_size=100)
        session.add(image)
        session.flush()
        job = Job(
            image_id=image.id, status=status, submitted_at=submitted, finished_at=finished,
            started_at=submitted if finished or status is JobStatus.PROCESSING else None,
            error_code=error_code,
        )  # fmt: skip
        session.add(job)
        session.flush()
        ids[name] = job.id
    _seed_verdicts(session, ids)
    _seed_reviews(session, ids)
    for category, value, strategy, created_by, stats, created in THRESHOLDS:
        cutoffs = {k: v - 0.18 + value for k, v in WEAPONS_CUTOFFS.items()}
        session.add(
            ThresholdVersion(
                category=category,
                policy="content_safety",
                value=value,
                cutoffs=cutoffs,
                scale="gme_cosine" if category == "weapons" else "probability",
                strategy=strategy,
                reason=f"{strategy} for {category}",
                stats=stats,
                created_by=created_by,
                created_at=created,
            )  # fmt: skip
        )
    session.flush()
    return ids


def _seed_verdicts(session: Session, ids: dict[str, int]) -> None:
    for name, (tier, category, scores) in VERDICTS.items():
        finished = JOBS[name][2]
        assert finished is not None
        session.add(
            Decision(
                job_id=ids[name],
                tier=tier,
                action="act",
                category=category,
                policy="content_safety",
                threshold_versions={},
                decided_at=finished,
            )  # fmt: skip
        )
        for cat, (score, cat_tier) in scores.items():
            session.add(
                Score(
                    job_id=ids[name],
                    category=cat,
                    score=score,
                    source=ScoreSource.EMBEDDING,
                    tier=cat_tier,
                )  # fmt: skip
            )


def _seed_reviews(session: Session, ids: dict[str, int]) -> None:
    for name, (job, kind, category, probability, status, created) in REVIEW_ITEMS.items():
        score, tier = VERDICTS[job][2][category]
        item = ReviewItem(
            job_id=ids[job], kind=kind, category=category, score=score, tier=tier,
            inclusion_probability=probability, status=status, created_at=created,
        )  # fmt: skip
        session.add(item)
        session.flush()
        ids[name] = item.id
        if kind is ReviewItemKind.AUDIT:
            session.add(
                AuditSample(
                    job_id=ids[job],
                    category=category,
                    stratum="clear",
                    score=score,
                    inclusion_probability=probability,
                    sampled_at=created,
                )  # fmt: skip
            )
    for item, reviewer, label, created in REVIEWS:
        job = REVIEW_ITEMS[item][0]
        session.add(
            Review(
                job_id=ids[job],
                review_item_id=ids[item],
                reviewer=reviewer,
                category=REVIEW_ITEMS[item][2],
                label=label,
                created_at=created,
            )  # fmt: skip
        )
    session.flush()
