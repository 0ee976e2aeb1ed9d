"""ORM rows behave the same on SQLite and Postgres: constraints, enums, UTC timestamps."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from moderation.db import make_sessionmaker
from moderation.db.models import Decision, Image, ImageBlob, Job, Score
from moderation.domain import JobStatus, RiskTier, ScoreSource


def _image(data: bytes = b"img") -> Image:
    return Image(sha256=hashlib.sha256(data).hexdigest(), byte_size=len(data))


def test_job_round_trip_keeps_enum_and_utc(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        img = _image()
        img.blob = ImageBlob(data=b"img")
        s.add(img)
        s.flush()
        s.add(Job(image_id=img.id, source="test"))
    with Session() as s:
        job = s.scalars(select(Job)).one()
        assert job.status is JobStatus.QUEUED
        assert job.attempts == 0
        assert job.submitted_at.tzinfo is not None
        assert abs(job.submitted_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
        raw = s.execute(text("SELECT status FROM jobs")).scalar_one()
        assert raw == "queued"  # stored as the value, readable by dashboards/SQL


def test_sha256_is_unique(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        s.add(_image(b"same"))
    with pytest.raises(IntegrityError), Session.begin() as s:
        s.add(_image(b"same"))


def test_one_score_per_job_and_category(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        img = _image()
        s.add(img)
        s.flush()
        job = Job(image_id=img.id)
        s.add(job)
        s.flush()
        s.add(
            Score(
                job_id=job.id, category="weapons", score=0.2, source=ScoreSource.EMBEDDING,
                tier=RiskTier.MEDIUM,
            )
        )  # fmt: skip
        job_id = job.id
    with pytest.raises(IntegrityError), Session.begin() as s:
        s.add(
            Score(
                job_id=job_id, category="weapons", score=0.3, source=ScoreSource.EMBEDDING,
                tier=RiskTier.EXTREME,
            )
        )  # fmt: skip


def test_check_constraint_rejects_unknown_status(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        img = _image()
        s.add(img)
        s.flush()
        image_id = img.id
    with pytest.raises(IntegrityError), Session.begin() as s:
        s.execute(
            text("INSERT INTO jobs (image_id, source, priority, status, attempts, submitted_at) "
                 "VALUES (:i, 'x', 0, 'exploded', 0, CURRENT_TIMESTAMP)"),
            {"i": image_id},
        )  # fmt: skip


def test_deleting_a_job_cascades_to_scores_and_decision(engine):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        img = _image()
        s.add(img)
        s.flush()
        job = Job(image_id=img.id)
        s.add(job)
        s.flush()
        s.add(Score(job_id=job.id, category="sexual", score=0.9, source=ScoreSource.CLASSIFIER,
                    tier=RiskTier.EXTREME))  # fmt: skip
        s.add(Decision(job_id=job.id, tier=RiskTier.EXTREME, action="review_now",
                       policy="content_safety", threshold_versions={}))  # fmt: skip
    with Session.begin() as s:
        s.execute(text("DELETE FROM jobs"))
    with Session() as s:
        assert s.execute(text("SELECT count(*) FROM scores")).scalar_one() == 0
        assert s.execute(text("SELECT count(*) FROM decisions")).scalar_one() == 0


def test_naive_datetimes_are_refused(engine):
    Session = make_sessionmaker(engine)
    with pytest.raises(Exception, match="naive datetime"), Session.begin() as s:
        img = _image()
        img.created_at = dt.datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
        s.add(img)
