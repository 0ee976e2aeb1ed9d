"""Jobs: creation, claiming with delivery counting, terminal transitions, retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from moderation.db.models import Job
from moderation.db.types import utcnow
from moderation.domain import JobStatus

from ._upsert import in_values, insert_returning_ids

__all__ = [
    "Claim",
    "ClaimResult",
    "JobFailure",
    "NewJob",
    "claim_jobs",
    "create_jobs",
    "delivery_counts",
    "finish_failed",
    "finish_scored",
    "mark_enqueued",
    "record_transient_error",
    "retry_jobs",
    "set_callback_state",
]

OPEN = (JobStatus.QUEUED, JobStatus.PROCESSING)  # states a delivery may still act on
JOBS = Job.__table__


@dataclass(frozen=True)
class NewJob:
    image_id: int
    source: str = "api"
    external_id: str | None = None
    submitted_by: str | None = None
    priority: int = 0
    callback_url: str | None = None
    intake_key: str | None = None  # unique; a job with a known key is not inserted again
    match_text: str | None = None  # the seed's scenarios (``thresholds.scenarios.JobOptions``)
    want_tags: bool | None = None
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class JobFailure:
    """Why a job failed for good (bad input) — ``code`` is stable, ``message`` for humans."""

    code: str
    message: str


@dataclass(frozen=True)
class Claim:
    attempt: int  # delivery number of this claim (1 = first)
    callback_url: str | None
    match_text: str | None = None
    want_tags: bool | None = None
    context: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ClaimResult:
    claimed: dict[int, Claim]
    quarantined: list[int]  # gave up: more deliveries than max_attempts
    skipped: list[int]  # already terminal (a redelivery) or unknown: nothing to do


def create_jobs(
    session: Session, jobs: Sequence[NewJob], now: dt.datetime, *, publishing: bool = False
) -> list[int]:
    """Insert queued jobs; ids in input order.

    A job whose ``intake_key`` already exists is not inserted again: its existing id is
    returned. That makes a transaction re-run after an unknown COMMIT outcome harmless (the
    API keys every submission before its first attempt).

    ``publishing``: the caller publishes right after the commit, so ``enqueued_at`` is set now
    (saving an UPDATE per job); if that publish fails it must be reset to NULL.
    """
    keys = [j.intake_key for j in jobs if j.intake_key is not None]
    known: dict[str | None, int] = {}
    if keys:
        query = select(JOBS.c.intake_key, JOBS.c.id).where(
            in_values(session, JOBS.c.intake_key, keys)
        )
        known = dict(session.execute(query).all())  # type: ignore[arg-type]
    fresh = [j for j in jobs if j.intake_key not in known]
    # Core rows, not ORM objects: a batch submission inserts hundreds of jobs in one statement
    new_ids = iter(
        insert_returning_ids(
            session,
            JOBS,
            [
                {
                    "image_id": j.image_id,
                    "source": j.source,
                    "external_id": j.external_id,
                    "intake_key": j.intake_key,
                    "submitted_by": j.submitted_by,
                    "priority": j.priority,
                    "callback_url": j.callback_url,
                    "match_text": j.match_text,
                    "want_tags": j.want_tags,
                    "context": dict(j.context) if j.context is not None else None,
                    "status": JobStatus.QUEUED,
                    "attempts": 0,
                    "submitted_at": now,
                    "enqueued_at": now if publishing else None,
                }
                for j in fresh
            ],
        )
    )
    return [known[j.intake_key] if j.intake_key in known else next(new_ids) for j in jobs]


def mark_enqueued(session: Session, job_ids: Sequence[int], now: dt.datetime | None) -> None:
    """Record that a broker message for these jobs was published (None: it was not)."""
    if job_ids:
        session.execute(update(JOBS).where(JOBS.c.id.in_(list(job_ids))).values(enqueued_at=now))


def delivery_counts(session: Session, job_ids: Sequence[int]) -> dict[int, int]:
    """Attempts so far of the still-open jobs among ``job_ids`` (terminal/unknown: absent)."""
    query = select(JOBS.c.id, JOBS.c.attempts).where(
        in_values(session, JOBS.c.id, job_ids), JOBS.c.status.in_(OPEN)
    )
    return dict(session.execute(query).all())


def claim_jobs(
    session: Session,
    job_ids: Sequence[int],
    *,
    worker: str,
    now: dt.datetime,
    max_attempts: int,
    fresh_only: bool = False,
) -> ClaimResult:
    """Count one delivery for each open job; quarantine those past ``max_attempts``.

    The attempt is counted *before* any work, so a job whose image kills the worker still
    reaches quarantine: its deliveries are counted even though none of them finished.
    ``fresh_only`` claims only never-delivered jobs; the others land in ``skipped``.
    """
    condition = [in_values(session, JOBS.c.id, job_ids), JOBS.c.status.in_(OPEN)]
    if fresh_only:
        condition.append(JOBS.c.attempts == 0)
    stmt = (
        update(JOBS)
        .where(*condition)
        .values(
            status=JobStatus.PROCESSING,
            attempts=JOBS.c.attempts + 1,
            worker=worker,
            started_at=now,
        )
        .returning(
            JOBS.c.id,
            JOBS.c.attempts,
            JOBS.c.error,
            JOBS.c.callback_url,
            JOBS.c.match_text,
            JOBS.c.want_tags,
            JOBS.c.context,
        )
    )
    claimed: dict[int, Claim] = {}
    give_up: dict[int, str | None] = {}
    for job_id, attempts, error, callback_url, *options in session.execute(stmt).all():
        if attempts > max_attempts:
            give_up[job_id] = error
        else:
            claimed[job_id] = Claim(attempts, callback_url, *options)
    for job_id, error in give_up.items():
        last = error or "the worker died or hit its time limit while processing it"
        session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(
                status=JobStatus.QUARANTINED,
                attempts=max_attempts,
                finished_at=now,
                error_code="delivery_failed",
                error=f"gave up after {max_attempts} deliveries; last error: {last}",
            )
        )
    skipped = [j for j in job_ids if j not in claimed and j not in give_up]
    return ClaimResult(claimed, sorted(give_up), skipped)


def finish_scored(
    session: Session,
    job_ids: Sequence[int],
    *,
    scorer: str,
    catalog_version: str,
    now: dt.datetime,
) -> list[int]:
    """Mark open jobs scored; returns the ids *this* call transitioned.

    Only those get score rows: when two deliveries of one job race, the row lock (Postgres) or
    the write lock (SQLite) lets exactly one of them through this UPDATE.
    """
    if not job_ids:
        return []
    stmt = (
        update(JOBS)
        .where(in_values(session, JOBS.c.id, job_ids), JOBS.c.status.in_(OPEN))
        .values(
            status=JobStatus.SCORED,
            finished_at=now,
            scorer=scorer,
            catalog_version=catalog_version,
            error_code=None,
            error=None,
        )
        .returning(JOBS.c.id)
    )
    return list(session.execute(stmt).scalars())


def finish_failed(
    session: Session, failures: Mapping[int, JobFailure], now: dt.datetime
) -> list[int]:
    """Mark open jobs failed with their reason; returns the ids this call transitioned."""
    if not failures:
        return []
    stmt = (
        update(JOBS)
        .where(in_values(session, JOBS.c.id, list(failures)), JOBS.c.status.in_(OPEN))
        .values(status=JobStatus.FAILED, finished_at=now)
        .returning(JOBS.c.id)
    )
    done = list(session.execute(stmt).scalars())
    if done:
        session.connection().execute(
            update(JOBS)
            .where(JOBS.c.id == bindparam("b_id"))
            .values(error_code=bindparam("b_code"), error=bindparam("b_error")),
            [{"b_id": j, "b_code": failures[j].code, "b_error": failures[j].message} for j in done],
        )
    return done


def record_transient_error(
    session: Session, job_ids: Sequence[int], code: str, message: str
) -> None:
    """Note why a delivery failed without ending the job: back to ``queued`` (its message is
    rejected and delivered again; ``processing`` counts only jobs being worked on)."""
    if job_ids:
        session.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(list(job_ids)), JOBS.c.status.in_(OPEN))
            .values(status=JobStatus.QUEUED, error_code=code, error=message[:2000])
        )


def set_callback_state(session: Session, job_ids: Sequence[int], state: str) -> None:
    """``pending`` starts a fresh delivery (due now, no attempts yet: the durable retry state
    of ``moderation.db.repositories.callbacks``)."""
    if job_ids:
        values: dict[str, Any] = {"callback_state": state}
        if state == "pending":
            now = utcnow()
            values.update(
                callback_attempts=0,
                callback_next_at=now,
                callback_since=now,
                callback_last_error=None,
            )
        session.execute(update(JOBS).where(in_values(session, JOBS.c.id, job_ids)).values(**values))


def retry_jobs(session: Session, job_ids: Sequence[int]) -> list[int]:
    """Put failed/quarantined jobs back to ``queued`` with a fresh delivery count."""
    stmt = (
        update(JOBS)
        .where(
            JOBS.c.id.in_(list(job_ids)),
            JOBS.c.status.in_((JobStatus.FAILED, JobStatus.QUARANTINED)),
        )
        .values(
            status=JobStatus.QUEUED,
            attempts=0,
            error_code=None,
            error=None,
            finished_at=None,
            started_at=None,
            enqueued_at=None,
        )
        .returning(JOBS.c.id)
    )
    return sorted(session.execute(stmt).scalars())


def count_by_status(session: Session, statuses: Sequence[str]) -> dict[str, int]:
    """Jobs per status among ``statuses`` (the metrics gauge asks for the non-terminal ones,
    which the ``jobs(status, submitted_at)`` index answers without a table scan)."""
    stmt = (
        select(JOBS.c.status, func.count())
        .where(JOBS.c.status.in_([JobStatus(s) for s in statuses]))
        .group_by(JOBS.c.status)
    )
    return {JobStatus(status).value: int(n) for status, n in session.execute(stmt)}


def oldest_by_status(session: Session, statuses: Sequence[str]) -> dict[str, dt.datetime]:
    """When the oldest job in each of ``statuses`` was submitted (statuses with no job are
    left out); one ``min`` per status, which the ``jobs(status, submitted_at)`` index answers."""
    stmt = (
        select(JOBS.c.status, func.min(JOBS.c.submitted_at))
        .where(JOBS.c.status.in_([JobStatus(s) for s in statuses]))
        .group_by(JOBS.c.status)
    )
    return {JobStatus(status).value: oldest for status, oldest in session.execute(stmt)}
