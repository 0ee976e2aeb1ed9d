"""The dashboard's Appeals page on both backends: rates per category, the queue, and the
claim/decide forms — the reviewer who reviewed the job is never offered its appeal."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Decision, Job
from moderation.db.types import utcnow
from moderation.pipeline.intake import Submission, register_submissions
from moderation.services.appeals import submit_appeal
from tests.dashboard_auth import csrf_of, log_in
from tests.moderation.api.routes.test_appeals import _decide

ADMIN = "adam-admin-secret-000000000000000000004"
REVIEWER = "rita-reviewer-secret-000000000000000003"
TOKENS = [f"adam:admin:{ADMIN}", f"rita:reviewer:{REVIEWER}"]


def test_appeals_are_judged_from_the_page_by_another_reviewer(db_url, dashboard_factory):
    from tests.fakes import png_bytes

    engine = make_engine(db_url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions.begin() as s:
            sub = Submission.from_bytes(png_bytes((5, 6, 7)), submitted_by="alice")
            [job_id] = register_submissions(s, [sub], utcnow())
        _decide(db_url, job_id, reviewer="rita")
        with sessions.begin() as s:
            appeal = submit_appeal(s, job_id, submitter="alice", reason="fine", now=utcnow())
    finally:
        engine.dispose()
    app = dashboard_factory(db_url, api_tokens=TOKENS, clock=utcnow)
    with TestClient(app) as rita:
        log_in(rita, REVIEWER)
        form = {"csrf_token": csrf_of(rita, "/appeals")}
        r = rita.post("/appeals/claim", data=form, follow_redirects=False)
        assert r.headers["location"] == "/appeals?error=none"  # she reviewed the job
        form = {"outcome": "upheld", "csrf_token": csrf_of(rita, "/appeals")}
        r = rita.post(f"/appeals/{appeal.id}/decide", data=form, follow_redirects=False)
        assert r.status_code == 403
    with TestClient(app) as adam:
        log_in(adam, ADMIN)
        r = adam.post("/appeals/claim", data={"csrf_token": csrf_of(adam, "/appeals")},
                      follow_redirects=False)  # fmt: skip
        assert r.headers["location"] == "/appeals"
        page = adam.get("/appeals").text
        assert f"Appeal <strong>#{appeal.id}</strong>" in page
        form = {"outcome": "overturned", "tier": "warning", "csrf_token": csrf_of(adam, "/appeals")}
        r = adam.post(f"/appeals/{appeal.id}/decide", data=form, follow_redirects=False)
        assert r.status_code == 303
        page = adam.get("/appeals").text
        assert 'class="appeal-rate">100.0 %' in page and 'class="overturn-rate">100.0 %' in page
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            tier, version = s.execute(
                select(Decision.tier, Decision.version).where(Decision.job_id == job_id)
            ).one()
            assert (str(tier), version) == ("warning", 2)
            assert s.get(Job, job_id).callback_state == "sent"  # no callback URL: untouched
    finally:
        engine.dispose()
