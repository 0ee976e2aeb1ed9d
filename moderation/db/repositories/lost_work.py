"""The reaper's queries: work whose broker message may be lost, handed back for publishing
(``moderation.services.requeue`` asks the broker which jobs still have a message and
publishes the others)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from moderation.db.models import Job
from moderation.domain import JobStatus

__all__ = [
    "Candidate",
    "LostWork",
    "find_candidates",
    "find_lost_work",
    "open_jobs",
    "pending_callbacks",
    "processing_claims",
    "requeue_claims",
    "settle_lost",
]

JOBS = Job.__table__


@dataclass
class LostWork:
    republish: dict[int, list[int]] = field(default_factory=dict)  # priority → job ids
    quarantined: list[int] = field(default_factory=list)
    callbacks: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.republish.values())


@dataclass(frozen=True)
class Candidate:
    """An open job old enough that its message may be lost."""

    job_id: int
    priority: int
    attempts: int
    processing: bool
    published: bool = True  # False: queued, and no publish ever succeeded


def find_candidates(
    session: Session,
    now: dt.datetime,
    *,
    stale_claim_s: float,
    unpublished_grace_s: float = 30,
    after_id: int = 0,
    limit: int = 10_000,
) -> dict[int, Candidate]:
    """Open jobs whose message may be lost, in id order from ``after_id`` (page on with the
    largest id returned):

    - ``processing`` since longer than ``stale_claim_s``;
    - ``queued`` and never published (the API could not reach the broker) for
      ``unpublished_grace_s``, or published longer than ``stale_claim_s`` ago.

    Nothing is changed: the caller asks the broker which of them still have a message
    (``moderation.pipeline.broker.held_jobs``) and settles the others (``settle_lost``).
    """
    stale = now - dt.timedelta(seconds=stale_claim_s)
    grace = now - dt.timedelta(seconds=unpublished_grace_s)
    rows = session.execute(
        select(JOBS.c.id, JOBS.c.priority, JOBS.c.attempts, JOBS.c.status, JOBS.c.enqueued_at)
        .where(
            JOBS.c.id > after_id,
            or_(
                and_(JOBS.c.status == JobStatus.PROCESSING, JOBS.c.started_at < stale),
                and_(
                    JOBS.c.status == JobStatus.QUEUED,
                    or_(
                        and_(JOBS.c.enqueued_at.is_(None), JOBS.c.submitted_at < grace),
                        JOBS.c.enqueued_at < stale,
                    ),
                ),
            ),
        )
        .order_by(JOBS.c.id)
        .limit(limit)
    ).all()
    return {
        job_id: Candidate(
            job_id,
            priority,
            attempts,
            processing=status == JobStatus.PROCESSING,
            published=enqueued_at is not None,
        )
        for job_id, priority, attempts, status, enqueued_at in rows
    }


def pending_callbacks(
    session: Session, now: dt.datetime, *, stale_claim_s: float, limit: int = 10_000
) -> list[int]:
    """Pending callbacks due for a dispatch: their retry time has come (durable callbacks,
    ``moderation.db.repositories.callbacks``), or, with no retry time recorded, their job
    finished more than ``stale_claim_s`` ago."""
    stale = now - dt.timedelta(seconds=stale_claim_s)
    return list(
        session.scalars(
            select(JOBS.c.id)
            .where(
                JOBS.c.callback_state == "pending",
                or_(
                    JOBS.c.callback_next_at <= now,
                    and_(JOBS.c.callback_next_at.is_(None), JOBS.c.finished_at < stale),
                ),
            )
            .order_by(JOBS.c.callback_next_at)
            .limit(limit)
        )
    )


def settle_lost(
    session: Session,
    candidates: Mapping[int, Candidate],
    missing: Collection[int],
    now: dt.datetime,
    *,
    max_attempts: int,
    stale_claim_s: float,
) -> LostWork:
    """The candidates among ``missing`` (no message carries them): a claim back to ``queued``
    — or ``quarantined`` when it used every attempt — and every one of them to publish again.

    Guarded by state: a job that moved on since ``find_candidates`` is left alone."""
    lost = LostWork()
    gone = [candidates[j] for j in sorted(set(missing)) if j in candidates]
    dead = [c.job_id for c in gone if c.processing and c.attempts >= max_attempts]
    if dead:
        lost.quarantined = list(
            session.scalars(
                update(JOBS)
                .where(JOBS.c.id.in_(dead), JOBS.c.status == JobStatus.PROCESSING)
                .values(
                    status=JobStatus.QUARANTINED,
                    finished_at=now,
                    error_code="delivery_failed",
                    error=f"gave up after {max_attempts} deliveries; last error: the worker "
                    f"stopped answering for over {stale_claim_s:.0f} s while processing it",
                )
                .returning(JOBS.c.id)
            )
        )
    claims = [c.job_id for c in gone if c.processing and c.attempts < max_attempts]
    requeued = set(requeue_claims(session, claims, before=now)) if claims else set()
    waiting = [c.job_id for c in gone if not c.processing]
    still = set(
        session.scalars(
            select(JOBS.c.id).where(JOBS.c.id.in_(waiting), JOBS.c.status == JobStatus.QUEUED)
        )
    ) if waiting else set()  # fmt: skip
    for c in gone:
        if c.job_id in requeued or c.job_id in still:
            lost.republish.setdefault(c.priority, []).append(c.job_id)
    return lost


def find_lost_work(
    session: Session,
    now: dt.datetime,
    *,
    stale_claim_s: float,
    max_attempts: int,
    held: Collection[int] = (),
    unpublished_grace_s: float = 30,
    limit: int = 10_000,
) -> LostWork:
    """``find_candidates`` and ``settle_lost`` in one transaction: every candidate not in
    ``held`` (the job ids some message in Redis still carries) counts as lost."""
    candidates = find_candidates(
        session,
        now,
        stale_claim_s=stale_claim_s,
        unpublished_grace_s=unpublished_grace_s,
        limit=limit,
    )
    held_ids = set(held)
    lost = settle_lost(
        session,
        candidates,
        [j for j in candidates if j not in held_ids],
        now,
        max_attempts=max_attempts,
        stale_claim_s=stale_claim_s,
    )
    lost.callbacks = pending_callbacks(session, now, stale_claim_s=stale_claim_s, limit=limit)
    return lost


def processing_claims(session: Session, before: dt.datetime, limit: int = 10_000) -> list[int]:
    """Jobs claimed (``processing``) at or before ``before``."""
    return list(
        session.scalars(
            select(JOBS.c.id)
            .where(JOBS.c.status == JobStatus.PROCESSING, JOBS.c.started_at <= before)
            .limit(limit)
        )
    )


def requeue_claims(session: Session, job_ids: Sequence[int], *, before: dt.datetime) -> list[int]:
    """Claims whose message went back to the broker (redelivered) or was lost: ``processing``
    → ``queued``, so ``processing`` counts only jobs a worker is working on. A claim made
    after ``before`` (a new delivery) is left alone. Returns the ids changed."""
    if not job_ids:
        return []
    stmt = (
        update(JOBS)
        .where(
            JOBS.c.id.in_(list(job_ids)),
            JOBS.c.status == JobStatus.PROCESSING,
            JOBS.c.started_at <= before,
        )
        .values(status=JobStatus.QUEUED)
        .returning(JOBS.c.id)
    )
    return sorted(session.execute(stmt).scalars())


def open_jobs(
    session: Session, *, published_before: dt.datetime, after_id: int = 0, limit: int = 10_000
) -> dict[int, int]:
    """Queued jobs (id → priority) published — or submitted, if never published — before
    ``published_before``, in id order from ``after_id`` (the broker watch pages through them
    after Redis lost its lists)."""
    rows = session.execute(
        select(JOBS.c.id, JOBS.c.priority)
        .where(
            JOBS.c.id > after_id,
            JOBS.c.status == JobStatus.QUEUED,
            or_(
                JOBS.c.enqueued_at <= published_before,
                and_(JOBS.c.enqueued_at.is_(None), JOBS.c.submitted_at <= published_before),
            ),
        )
        .order_by(JOBS.c.id)
        .limit(limit)
    ).all()
    return {int(job_id): int(priority) for job_id, priority in rows}
