"""Read side of scores: the stored score behind a label (calibration) and the outcome of each
of a set of jobs (``moderation scan``'s report)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.db.models import Decision, Image, Job, Score
from moderation.domain import JobStatus

__all__ = [
    "JobResult",
    "ScoredJob",
    "StoredScore",
    "job_results",
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
class JobResult:
    """One job's outcome: its status, the overall decision tier, (score, tier) per category,
    or the failure code and reason."""

    id: int
    status: str
    decision_tier: str | None
    categories: dict[str, tuple[float, str]]  # category → (score, tier)
    error_code: str | None
    error: str | None


def job_results(session: Session, job_ids: Sequence[int]) -> dict[int, JobResult]:
    """``JobResult`` per job id (the caller bounds how many ids one call gets)."""
    ids = list(job_ids)
    if not ids:
        return {}
    categories: dict[int, dict[str, tuple[float, str]]] = {}
    for job_id, category, score, tier in session.execute(
        select(Score.job_id, Score.category, Score.score, Score.tier).where(Score.job_id.in_(ids))
    ):
        categories.setdefault(job_id, {})[category] = (float(score), str(tier))
    rows = session.execute(
        select(Job.id, Job.status, Decision.tier, Job.error_code, Job.error)
        .outerjoin(Decision, Decision.job_id == Job.id)
        .where(Job.id.in_(ids))
    ).all()
    return {
        job_id: JobResult(
            id=job_id,
            status=str(status),
            decision_tier=None if tier is None else str(tier),
            categories=categories.get(job_id, {}),
            error_code=code,
            error=error,
        )
        for job_id, status, tier, code, error in rows
    }
