"""Bulk insert-or-ignore and bulk update behave the same on both databases and both paths."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from moderation.db.models import Decision, Image, Score
from moderation.db.repositories._upsert import insert_ignore, update_many
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import RiskTier, ScoreSource
from moderation.pipeline.intake import Submission, register_submissions
from tests.fakes import png_bytes


@pytest.mark.parametrize("n_jobs", [3, 40])  # below and above the one-statement threshold
def test_insert_ignore_keeps_first_rows_and_all_types(engine, n_jobs):
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        ids = register_submissions(
            s, [Submission.from_bytes(png_bytes((i, 0, 0))) for i in range(n_jobs)], utcnow()
        )
    rows = [
        {
            "job_id": j,
            "category": c,
            "score": 0.25,
            "source": ScoreSource.EMBEDDING,
            "tier": RiskTier.HIGH,
            "phrasing": "a photo of 'quoted' \"things\"",
            "threshold_version_id": None,
            "details": {"nested": [1, 2], "why": "ok"},
        }
        for j in ids
        for c in ("sexual", "weapons")
    ]
    with session_scope(sessions) as s:
        insert_ignore(s, Score.__table__, rows, ["job_id", "category"])
        again = [{**r, "score": 0.99} for r in rows]
        insert_ignore(s, Score.__table__, again, ["job_id", "category"])  # all conflicts
        decisions = [
            {"job_id": j, "tier": RiskTier.CLEAR, "action": "allow", "category": None,
             "priority": 0.0, "policy": "content_safety", "threshold_versions": {"sexual": None},
             "matched_bank_entry_id": None, "match_distance": None}
            for j in ids
        ]  # fmt: skip
        insert_ignore(s, Decision.__table__, decisions, ["job_id"])
    with session_scope(sessions) as s:
        scores = s.scalars(select(Score)).all()
        assert len(scores) == 2 * n_jobs and {x.score for x in scores} == {0.25}
        assert {x.tier for x in scores} == {RiskTier.HIGH}
        assert scores[0].details == {"nested": [1, 2], "why": "ok"}
        assert scores[0].phrasing == "a photo of 'quoted' \"things\""
        stored = s.scalars(select(Decision)).all()
        assert len(stored) == n_jobs and all(d.decided_at is not None for d in stored)
        assert stored[0].threshold_versions == {"sexual": None}


def test_update_many_with_a_null_guard(engine):
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        register_submissions(
            s, [Submission.from_bytes(png_bytes((i, 1, 1))) for i in range(3)], utcnow()
        )
        ids = list(s.scalars(select(Image.id).order_by(Image.id)))
        s.get(Image, ids[0]).width = 7
    with session_scope(sessions) as s:
        update_many(
            s, Image.__table__, "id",
            [{"id": i, "width": 16, "height": 16, "format": "PNG"} for i in ids],
            where_null="width",
        )  # fmt: skip
    with session_scope(sessions) as s:
        rows = s.execute(select(Image.width, Image.format).order_by(Image.id)).all()
    assert [tuple(r) for r in rows] == [(7, None), (16, "PNG"), (16, "PNG")]


def test_jobs_of_a_batch_get_ids_in_submission_order_with_every_field(engine):
    """``create_jobs`` inserts with one statement (Postgres): ids come back in input order and
    every field lands, JSON context and timestamps included; a known intake key is not
    inserted again."""
    from moderation.db.models import Job
    from moderation.db.repositories.jobs import NewJob, create_jobs
    from moderation.domain import JobStatus

    sessions = make_sessionmaker(engine)
    now = utcnow()
    with session_scope(sessions) as s:
        image = register_submissions(s, [Submission.from_bytes(png_bytes((1, 2, 3)))], now)[0]
        image_id = s.get(Job, image).image_id
    jobs = [
        NewJob(
            image_id=image_id,
            external_id=f"ext-{i}",
            submitted_by="tenant",
            priority=i % 10,
            callback_url=None if i % 3 else f"https://example.test/{i}",
            intake_key=f"key-{i}",
            match_text="a 'quoted' title" if i == 7 else None,
            want_tags=True if i == 8 else None,
            context={"surface": "listing", "n": i} if i % 2 else None,
        )
        for i in range(40)
    ]
    with session_scope(sessions) as s:
        ids = create_jobs(s, jobs, now, publishing=True)
    assert ids == sorted(ids) and len(set(ids)) == 40
    with session_scope(sessions) as s:
        again = create_jobs(s, [jobs[5], NewJob(image_id=image_id, intake_key="new")], now)
        assert again[0] == ids[5] and again[1] not in ids
        rows = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(ids)))}
        for i, job_id in enumerate(ids):
            job = rows[job_id]
            assert (job.external_id, job.intake_key, job.priority) == (
                f"ext-{i}",
                f"key-{i}",
                i % 10,
            )
            assert job.callback_url == (None if i % 3 else f"https://example.test/{i}")
            assert job.context == ({"surface": "listing", "n": i} if i % 2 else None)
            assert job.status is JobStatus.QUEUED and job.attempts == 0
            assert job.submitted_at == now and job.enqueued_at == now
            assert job.callback_attempts == 0 and job.source == "api"
        assert rows[ids[7]].match_text == "a 'quoted' title" and rows[ids[8]].want_tags is True


def test_in_values_matches_in_on_both_databases(engine):
    from moderation.db.repositories._upsert import in_values

    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        register_submissions(
            s, [Submission.from_bytes(png_bytes((i, 9, 9))) for i in range(5)], utcnow()
        )
    with session_scope(sessions) as s:
        shas = list(s.scalars(select(Image.sha256)))
        wanted = [*shas[:3], "0" * 64]
        found = s.scalars(select(Image.sha256).where(in_values(s, Image.sha256, wanted))).all()
        assert sorted(found) == sorted(shas[:3])
        assert s.scalars(select(Image.id).where(in_values(s, Image.id, []))).all() == []
