"""The reaper's query: work whose broker message may be lost, handed back for publishing
(``moderation.services.requeue.reap_and_publish`` publishes it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from moderation.db.models import Job
from moderation.domain import JobStatus

__all__ = ["LostWork", "find_lost_work"]

JOBS = Job.__table__


@dataclass
class LostWork:
    republish: dict[int, list[int]] = field(default_factory=dict)  # priority → job ids
    quarantined: list[int] = field(default_factory=list)
    callbacks: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.republish.values())


def find_lost_work(
    session: Session,
    now: dt.datetime,
    *,
    stale_claim_s: float,
    max_attempts: int,
    unpublished_grace_s: float = 30,
    limit: int = 10_000,
) -> LostWork:
    """Jobs to publish again, and pending callbacks to dispatch again.

    - ``processing`` for longer than ``stale_claim_s``: its worker died with the message (e.g.
      the whole host, or Redis lost its unacked set). Back to ``queued`` — or ``quarantined``
      when it already used every attempt.
    - ``queued`` and never published (the API could not reach the broker) for
      ``unpublished_grace_s``, or published longer than ``stale_claim_s`` ago (Redis restarted
      without persistence). A duplicate message is harmless: the job is idempotent.
    """
    stale = now - dt.timedelta(seconds=stale_claim_s)
    grace = now - dt.timedelta(seconds=unpublished_grace_s)
    lost = LostWork()
    stuck = session.execute(
        select(JOBS.c.id, JOBS.c.attempts, JOBS.c.priority)
        .where(JOBS.c.status == JobStatus.PROCESSING, JOBS.c.started_at < stale)
        .limit(limit)
    ).all()
    dead = [job_id for job_id, attempts, _ in stuck if attempts >= max_attempts]
    if dead:
        session.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(dead), JOBS.c.status == JobStatus.PROCESSING)
            .values(
                status=JobStatus.QUARANTINED,
                finished_at=now,
                error_code="delivery_failed",
                error=f"gave up after {max_attempts} deliveries; last error: the worker stopped "
                f"answering for over {stale_claim_s:.0f} s while processing it",
            )
        )
    requeue = [job_id for job_id, attempts, _ in stuck if attempts < max_attempts]
    if requeue:
        session.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(requeue), JOBS.c.status == JobStatus.PROCESSING)
            .values(status=JobStatus.QUEUED)
        )
    queued = session.execute(
        select(JOBS.c.id, JOBS.c.priority)
        .where(
            JOBS.c.status == JobStatus.QUEUED,
            or_(
                and_(JOBS.c.enqueued_at.is_(None), JOBS.c.submitted_at < grace),
                JOBS.c.enqueued_at < stale,
            ),
        )
        .limit(limit)
    ).all()
    chosen = dict(queued)
    chosen.update({job_id: priority for job_id, attempts, priority in stuck if job_id in requeue})
    for job_id, priority in sorted(chosen.items()):
        lost.republish.setdefault(priority, []).append(job_id)
    lost.quarantined = dead
    lost.callbacks = list(
        session.scalars(
            select(JOBS.c.id)
            .where(JOBS.c.callback_state == "pending", JOBS.c.finished_at < stale)
            .limit(limit)
        )
    )
    return lost
