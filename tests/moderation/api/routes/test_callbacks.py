"""The callbacks admin API (real Postgres, real Redis): admins only, dead letters listed and
resent (audit-logged), hostile input gets 4xx."""

from __future__ import annotations

from sqlalchemy import select, update

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import AuditLogEntry, Job
from moderation.db.session import session_scope
from moderation.db.types import utcnow
from moderation.pipeline.intake import Submission, register_submissions
from tests.fakes import png_bytes


def _dead_letter(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            [job_id] = register_submissions(
                s, [Submission.from_bytes(png_bytes((3, 3, 3)),
                                          callback_url="https://user:pw@example.com/h")], utcnow()
            )  # fmt: skip
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(callback_state="dead", callback_attempts=7, callback_last_error="HTTP 503")
            )
        return job_id
    finally:
        engine.dispose()


def test_admins_list_and_resend_dead_letters(api):
    job_id = _dead_letter(api.settings.database_url)
    for who in ("alice", "rita"):
        assert api.client.get("/v1/callbacks", headers=api.headers(who)).status_code == 403
        r = api.client.post("/v1/callbacks/resend", json={"all_dead": True},
                            headers=api.headers(who))  # fmt: skip
        assert r.status_code == 403
    assert api.client.get("/v1/callbacks").status_code == 401
    admin = api.headers("adam")
    [row] = api.client.get("/v1/callbacks?status=dead", headers=admin).json()
    assert row["job_id"] == job_id and row["attempts"] == 7 and row["last_error"] == "HTTP 503"
    assert row["url"] == "https://example.com/h"  # no userinfo
    assert api.client.post("/v1/callbacks/resend", json={}, headers=admin).status_code == 422
    r = api.client.post("/v1/callbacks/resend", json={"job_ids": [0]}, headers=admin)
    assert r.status_code == 422
    r = api.client.post("/v1/callbacks/resend", json={"all_dead": True}, headers=admin)
    assert r.json() == {"resent": [job_id], "not_resendable": []}
    r = api.client.post("/v1/callbacks/resend", json={"job_ids": [job_id]}, headers=admin)
    assert r.json() == {"resent": [], "not_resendable": [job_id]}  # pending now
    assert api.client.get("/v1/callbacks?status=dead", headers=admin).json() == []
    engine = make_engine(api.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            job = s.get(Job, job_id)
            assert job.callback_state == "pending" and job.callback_attempts == 0
            actions = s.scalars(select(AuditLogEntry.action)).all()
            assert "callbacks.resend" in actions
    finally:
        engine.dispose()
