"""The dashboard's Callbacks page on both backends: counts per state, the dead letters, and
resend — admins only, with the session's CSRF token."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Job
from moderation.db.types import utcnow
from moderation.pipeline.intake import Submission, register_submissions
from tests.dashboard_auth import csrf_of, log_in
from tests.fakes import png_bytes

ADMIN = "adam-admin-secret-000000000000000000004"
REVIEWER = "rita-reviewer-secret-000000000000000003"
TOKENS = [f"adam:admin:{ADMIN}", f"rita:reviewer:{REVIEWER}"]


def _dead_letter(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as s:
            sub = Submission.from_bytes(png_bytes((4, 4, 4)), callback_url="https://x.example/h")
            [job_id] = register_submissions(s, [sub], utcnow())
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(callback_state="dead", callback_attempts=9, callback_last_error="HTTP 502")
            )
        return job_id
    finally:
        engine.dispose()


def test_dead_letters_are_listed_and_resent_by_admins_only(db_url, dashboard_factory):
    job_id = _dead_letter(db_url)
    app = dashboard_factory(db_url, api_tokens=TOKENS)
    with TestClient(app) as rita:
        log_in(rita, REVIEWER)
        page = rita.get("/callbacks")
        assert page.status_code == 200 and f"#{job_id}" in page.text and "HTTP 502" in page.text
        assert "Resend" not in page.text  # reviewers see, admins resend
        form = {"job_id": str(job_id), "csrf_token": csrf_of(rita, "/callbacks")}
        r = rita.post("/callbacks/resend", data=form)
        assert r.status_code == 403
    with TestClient(app) as adam:
        log_in(adam, ADMIN)
        r = adam.post("/callbacks/resend", data={"job_id": str(job_id)}, follow_redirects=False)
        assert r.status_code == 403  # no CSRF token
        form = {"job_id": str(job_id), "csrf_token": csrf_of(adam, "/callbacks")}
        r = adam.post("/callbacks/resend", data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/callbacks?resent=1"
        page = adam.get("/callbacks?state=pending")
        assert f"#{job_id}" in page.text and 'class="count-dead">0<' in page.text
