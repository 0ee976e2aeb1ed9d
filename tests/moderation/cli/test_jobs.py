"""``moderation jobs``: list failures and quarantine with reasons, retry, reap."""

from __future__ import annotations

from sqlalchemy import update

from moderation.db.models import Job
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from moderation.pipeline.intake import Submission, register_submissions
from tests.fakes import png_bytes

from .test_db import run_cli


def test_failed_quarantined_show_retry_and_reap(pg_url, redis_prefix):
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        failed, quarantined = register_submissions(
            s, [Submission.from_bytes(png_bytes((1, 1, 1))), Submission.from_bytes(b"")], utcnow()
        )
        s.execute(
            update(Job)
            .where(Job.id == failed)
            .values(status=JobStatus.FAILED, error_code="truncated", error="cut short")
        )
        s.execute(
            update(Job).where(Job.id == quarantined)
            .values(status=JobStatus.QUARANTINED, error_code="delivery_failed", error="gave up")
        )  # fmt: skip
    env = {"MODERATION_DATABASE_URL": pg_url, "MODERATION_BROKER_KEY_PREFIX": redis_prefix}
    out = run_cli("jobs", "failed", env=env)
    assert out.returncode == 0 and "truncated" in out.stdout and "cut short" in out.stdout
    out = run_cli("jobs", "quarantined", env=env)
    assert "delivery_failed" in out.stdout and "gave up" in out.stdout
    assert '"status": "failed"' in run_cli("jobs", "show", str(failed), env=env).stdout
    out = run_cli("jobs", "retry", str(failed), str(quarantined), env=env)
    assert out.returncode == 0, out.stderr
    with session_scope(sessions) as s:
        rows = [s.get(Job, failed), s.get(Job, quarantined)]
        assert [(j.status, j.attempts, j.error) for j in rows] == [(JobStatus.QUEUED, 0, None)] * 2
        assert all(j.enqueued_at is not None for j in rows)
    out = run_cli("jobs", "retry", str(failed), env=env)
    assert out.returncode == 2 and "not failed/quarantined" in out.stderr
    assert "republished" in run_cli("jobs", "reap", env=env).stdout
    engine.dispose()
