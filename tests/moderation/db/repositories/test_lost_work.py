"""The reaper finds lost work on both databases."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from moderation.db.models import Job
from moderation.db.repositories.lost_work import find_lost_work
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from moderation.pipeline.intake import Submission, register_submissions
from tests.fakes import png_bytes


def test_reaper_requeues_stale_claims_publishes_lost_messages_and_quarantines(engine):
    sessions = make_sessionmaker(engine)
    now = utcnow()
    old = now - dt.timedelta(seconds=3600)
    with session_scope(sessions) as s:
        ids = register_submissions(
            s, [Submission.from_bytes(png_bytes((i, 0, 0)), priority=i % 2) for i in range(6)], old
        )
        fresh_unpublished, stale_claim, dead_claim, old_published, fresh_published, done = ids

        def set_(job_id: int, **values: object) -> None:
            s.execute(update(Job).where(Job.id == job_id).values(**values))

        set_(fresh_unpublished, submitted_at=now)  # still within the API's publish grace
        set_(stale_claim, status=JobStatus.PROCESSING, attempts=1, started_at=old)
        set_(dead_claim, status=JobStatus.PROCESSING, attempts=3, started_at=old)
        set_(old_published, enqueued_at=old)
        set_(fresh_published, enqueued_at=now)
        set_(done, status=JobStatus.SCORED, finished_at=old, callback_state="pending")
    with session_scope(sessions) as s:
        lost = find_lost_work(s, now, stale_claim_s=600, max_attempts=3)
    republished = sorted(j for group in lost.republish.values() for j in group)
    assert republished == sorted([stale_claim, old_published])
    assert lost.quarantined == [dead_claim] and lost.callbacks == [done]
    with session_scope(sessions) as s:
        assert s.get(Job, stale_claim).status == JobStatus.QUEUED
        dead = s.get(Job, dead_claim)
        assert dead.status == JobStatus.QUARANTINED and "gave up after 3" in dead.error
        assert s.get(Job, fresh_unpublished).status == JobStatus.QUEUED


def test_never_published_jobs_are_published_after_the_grace(engine):
    sessions = make_sessionmaker(engine)
    now = utcnow()
    with session_scope(sessions) as s:
        (job_id,) = register_submissions(
            s, [Submission.from_bytes(png_bytes())], now - dt.timedelta(seconds=60)
        )
    with session_scope(sessions) as s:
        lost = find_lost_work(s, now, stale_claim_s=600, max_attempts=3)
    assert lost.republish == {0: [job_id]}
