"""Appeals: storage of the submitter's contest of a decision, its queue and its outcome."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from moderation.db.models import Appeal, Decision, Job, Review, Score
from moderation.domain import JobStatus, RiskTier

from .results import locked_decision, supersede

__all__ = [
    "AppealRow",
    "AppealTarget",
    "CategoryAppeals",
    "appeal_of_job",
    "appeal_rates",
    "close",
    "decided_appeal_labels",
    "deciders_of",
    "enforcement_detail_of",
    "get_appeal",
    "insert_appeal",
    "job_callback_url",
    "list_appeals",
    "lock_appeal",
    "next_claimable",
    "open_appeal_job_ids",
    "redecide",
    "take",
    "target_of",
]


@dataclass(frozen=True)
class AppealRow:
    id: int
    job_id: int
    submitted_by: str
    reason: str
    status: str
    tier: str
    category: str | None
    decision_version: int
    claimed_by: str | None
    claim_expires_at: dt.datetime | None
    outcome: str | None
    new_tier: str | None
    decided_by: str | None
    note: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None


def _row(a: Appeal) -> AppealRow:
    return AppealRow(
        a.id, a.job_id, a.submitted_by, a.reason, a.status, a.tier, a.category,
        a.decision_version, a.claimed_by, a.claim_expires_at, a.outcome, a.new_tier,
        a.decided_by, a.note, a.created_at, a.decided_at,
    )  # fmt: skip


@dataclass(frozen=True)
class AppealTarget:
    """What an appeal needs of its job: the owner, whether it is decided, its decision."""

    job_id: int
    submitted_by: str | None
    status: JobStatus
    tier: str | None
    category: str | None
    version: int | None


def target_of(session: Session, job_id: int) -> AppealTarget | None:
    row = session.execute(
        select(Job.id, Job.submitted_by, Job.status, Decision.tier, Decision.category,
               Decision.version)
        .outerjoin(Decision, Decision.job_id == Job.id)
        .where(Job.id == job_id)
    ).first()  # fmt: skip
    if row is None:
        return None
    job, owner, status, tier, category, version = row
    return AppealTarget(job, owner, JobStatus(status), tier and str(tier), category, version)


def appeal_of_job(session: Session, job_id: int) -> AppealRow | None:
    found = session.scalars(select(Appeal).where(Appeal.job_id == job_id)).one_or_none()
    return _row(found) if found is not None else None


def insert_appeal(
    session: Session, target: AppealTarget, *, submitted_by: str, reason: str, now: dt.datetime
) -> AppealRow:
    appeal = Appeal(
        job_id=target.job_id, submitted_by=submitted_by, reason=reason, status="open",
        tier=target.tier, category=target.category, decision_version=target.version or 1,
        created_at=now,
    )  # fmt: skip
    session.add(appeal)
    session.flush()
    return _row(appeal)


def open_appeal_job_ids(session: Session) -> set[int]:
    """Jobs whose appeal is still open (retention keeps their bytes)."""
    return set(session.scalars(select(Appeal.job_id).where(Appeal.status == "open")))


def get_appeal(session: Session, appeal_id: int) -> AppealRow | None:
    found = session.get(Appeal, appeal_id)
    return _row(found) if found is not None else None


def lock_appeal(session: Session, appeal_id: int) -> Appeal | None:
    return session.scalars(
        select(Appeal).where(Appeal.id == appeal_id).with_for_update()
    ).one_or_none()


def take(appeal: Appeal, reviewer: str, until: dt.datetime) -> AppealRow:
    """Give ``appeal`` (locked by the caller) to ``reviewer`` until ``until``."""
    appeal.claimed_by = reviewer
    appeal.claim_expires_at = until
    return _row(appeal)


def close(
    appeal: Appeal, *, outcome: str, new_tier: str, reviewer: str, note: str | None,
    now: dt.datetime,
) -> AppealRow:  # fmt: skip
    appeal.status = "decided"
    appeal.outcome = outcome
    appeal.new_tier = new_tier
    appeal.decided_by = reviewer
    appeal.note = note
    appeal.decided_at = now
    appeal.claim_expires_at = None
    return _row(appeal)


def job_callback_url(session: Session, job_id: int) -> str | None:
    return session.scalar(select(Job.callback_url).where(Job.id == job_id))


def deciders_of(session: Session, job_id: int) -> set[str]:
    """The reviewers who reviewed the job (any category): they may not judge its appeal."""
    return set(session.scalars(select(Review.reviewer).where(Review.job_id == job_id)))


def next_claimable(session: Session, reviewer: str, now: dt.datetime) -> Appeal | None:
    """The oldest open appeal ``reviewer`` may take (unclaimed, claim expired, or their own),
    skipping jobs they reviewed; locked for the caller."""
    reviewed = select(Review.job_id).where(Review.reviewer == reviewer)
    query = (
        select(Appeal)
        .where(
            Appeal.status == "open",
            or_(
                Appeal.claimed_by.is_(None),
                Appeal.claimed_by == reviewer,
                Appeal.claim_expires_at < now,
            ),
            Appeal.job_id.not_in(reviewed),
        )
        .order_by(Appeal.created_at, Appeal.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).first()


def list_appeals(
    session: Session, *, status: str | None = None, limit: int = 100, before_id: int | None = None
) -> list[AppealRow]:
    query = select(Appeal)
    if status is not None:
        query = query.where(Appeal.status == status)
    if before_id is not None:
        query = query.where(Appeal.id < before_id)
    return [_row(a) for a in session.scalars(query.order_by(Appeal.id.desc()).limit(limit))]


def enforcement_detail_of(session: Session, job_id: int) -> dict[str, Any] | None:
    """The job's current enforcement detail (the action rules' per-category verdicts)."""
    return session.scalar(select(Decision.enforcement_detail).where(Decision.job_id == job_id))


def redecide(
    session: Session,
    job_id: int,
    *,
    tier: RiskTier,
    action: str,
    reason: str,
    now: dt.datetime,
    enforcement: str | None = None,
    enforcement_detail: Mapping[str, Any] | None = None,
) -> int:
    """Keep the job's current decision in ``decision_history`` and write the next version
    (``results.supersede``, as retro-matching does); returns the new version."""
    decision = locked_decision(session, job_id)
    if decision is None:
        raise LookupError(f"job {job_id} has no decision")
    supersede(session, decision, reason=reason, now=now)
    decision.tier = tier
    decision.action = action
    if enforcement is not None:
        decision.enforcement = enforcement
        decision.enforcement_detail = dict(enforcement_detail or {})
    session.flush()
    return decision.version


@dataclass(frozen=True)
class CategoryAppeals:
    category: str
    decisions: int  # decisions naming the category in the window
    appeals: int  # appeals of those
    decided: int
    overturned: int

    @property
    def appeal_rate(self) -> float | None:
        return self.appeals / self.decisions if self.decisions else None

    @property
    def overturn_rate(self) -> float | None:
        return self.overturned / self.decided if self.decided else None


def appeal_rates(session: Session, since: dt.datetime) -> list[CategoryAppeals]:
    """Per category, of the decisions made since ``since``: how many were appealed, how many
    appeals were decided and how many overturned."""
    decided = dict(
        session.execute(
            select(Decision.category, func.count())
            .where(Decision.decided_at >= since, Decision.category.is_not(None))
            .group_by(Decision.category)
        ).all()
    )
    rows = session.execute(
        select(
            Appeal.category,
            func.count(),
            func.count(Appeal.decided_at),
            func.count().filter(Appeal.outcome == "overturned"),
        )
        .where(Appeal.created_at >= since, Appeal.category.is_not(None))
        .group_by(Appeal.category)
    ).all()
    appeals = {c: (int(n), int(d), int(o)) for c, n, d, o in rows}
    return [
        CategoryAppeals(c, int(decided.get(c, 0)), *appeals.get(c, (0, 0, 0)))
        for c in sorted(set(decided) | set(appeals))
    ]


def decided_appeal_labels(
    session: Session, *, category: str | None = None, since: dt.datetime | None = None
) -> list[tuple[int, str, float, bool]]:
    """Decided appeals as labels: (job_id, category, the job's score for it, whether the
    final decision is a violation) — an overturned flag is a negative, an upheld one a
    positive (and the other way round for an overturned clear)."""
    query = (
        select(Appeal.job_id, Appeal.category, Score.score, Appeal.outcome, Appeal.tier,
               Appeal.new_tier)
        .join(Score, and_(Score.job_id == Appeal.job_id, Score.category == Appeal.category))
        .where(Appeal.status == "decided", Appeal.category.is_not(None))
    )  # fmt: skip
    if category is not None:
        query = query.where(Appeal.category == category)
    if since is not None:
        query = query.where(Appeal.decided_at >= since)
    out = []
    for job_id, cat, score, outcome, tier, new_tier in session.execute(query.order_by(Appeal.id)):
        final = RiskTier(new_tier if outcome == "overturned" and new_tier else tier)
        out.append((int(job_id), str(cat), float(score), final.is_violation))
    return out
