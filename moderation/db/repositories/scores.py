"""Read side of scores: the stored score behind a label (calibration) and tier counts of a set
of jobs (``moderation scan``'s report)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation.db.models import Decision, Image, Job, Score
from moderation.domain import JobStatus

__all__ = [
    "JobOutcomes",
    "ScoredJob",
    "StoredScore",
    "job_outcomes",
    "jobs_by_id",
    "newest_scored_jobs",
    "scores_of",
]


@dataclass(frozen=True)
class ScoredJob:
    id: int
    scorer: str | None  # the scorer's model id that scored it


@dataclass(frozen=True)
class StoredScore:
    job_id: int
    category: str
    score: float
    threshold_version_id: int | None  # the version its tier was set with


def jobs_by_id(session: Session, job_ids: Iterable[int]) -> dict[int, ScoredJob]:
    """The jobs among ``job_ids`` that exist (any status)."""
    ids = set(job_ids)
    if not ids:
        return {}
    rows = session.execute(select(Job.id, Job.scorer).where(Job.id.in_(ids))).all()
    return {job_id: ScoredJob(job_id, scorer) for job_id, scorer in rows}


def newest_scored_jobs(session: Session, sha256s: Iterable[str]) -> dict[str, ScoredJob]:
    """Per image sha256, its newest scored job (images without one are absent)."""
    shas = set(sha256s)
    if not shas:
        return {}
    query = (
        select(Image.sha256, Job.id, Job.scorer)
        .join(Job, Job.image_id == Image.id)
        .where(Image.sha256.in_(shas), Job.status == JobStatus.SCORED)
        .order_by(Job.id)
    )
    # ordered by id: the newest wins
    return {sha: ScoredJob(job_id, scorer) for sha, job_id, scorer in session.execute(query)}


def scores_of(session: Session, job_ids: Iterable[int]) -> dict[tuple[int, str], StoredScore]:
    """Every stored score of ``job_ids`` by (job id, category)."""
    ids = set(job_ids)
    if not ids:
        return {}
    query = select(Score.job_id, Score.category, Score.score, Score.threshold_version_id).where(
        Score.job_id.in_(ids)
    )
    return {(row[0], row[1]): StoredScore(*row) for row in session.execute(query)}


@dataclass(frozen=True)
class JobOutcomes:
    """Counts over a set of jobs: scores per (category, tier), decisions per overall tier, and
    the failed or quarantined jobs with their reason."""

    score_tiers: list[tuple[str, str, int]]  # category, tier, jobs
    decision_tiers: list[tuple[str, int]]  # tier, jobs
    failures: list[tuple[str | None, str | None, str | None]]  # external id, code, reason


def job_outcomes(session: Session, job_ids: Sequence[int]) -> JobOutcomes:
    """``JobOutcomes`` of ``job_ids`` (the caller bounds how many ids one call gets)."""
    ids = list(job_ids)
    score_tiers = session.execute(
        select(Score.category, Score.tier, func.count())
        .where(Score.job_id.in_(ids))
        .group_by(Score.category, Score.tier)
    ).all()
    decision_tiers = session.execute(
        select(Decision.tier, func.count()).where(Decision.job_id.in_(ids)).group_by(Decision.tier)
    ).all()
    failures = session.execute(
        select(Job.external_id, Job.error_code, Job.error)
        .where(Job.id.in_(ids), Job.status.in_((JobStatus.FAILED, JobStatus.QUARANTINED)))
        .order_by(Job.id)
    ).all()
    return JobOutcomes(
        score_tiers=[(c, str(t), int(n)) for c, t, n in score_tiers],
        decision_tiers=[(str(t), int(n)) for t, n in decision_tiers],
        failures=[(p, c, e) for p, c, e in failures],
    )
