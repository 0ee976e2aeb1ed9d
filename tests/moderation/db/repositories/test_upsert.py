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
