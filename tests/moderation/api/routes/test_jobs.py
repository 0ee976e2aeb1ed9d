"""``/v1/jobs`` through the real app, Postgres and Redis (no worker: jobs stay queued)."""

from __future__ import annotations

import base64
import re

from sqlalchemy import select

from moderation.db.models import Job
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import JobStatus
from moderation.services.tokens import create_token
from tests.fakes import png_bytes

IMG = png_bytes((200, 10, 10))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jobs_in_db(api) -> dict[int, Job]:
    engine = make_engine(api.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            return {j.id: j for j in s.scalars(select(Job))}
    finally:
        engine.dispose()


def test_multipart_submission_is_queued_published_and_owned(api):
    r = api.client.post(
        "/v1/jobs",
        files={"file": ("a.png", IMG, "image/png")},
        data={"external_id": "up-1", "priority": "5"},
        headers=api.headers("alice"),
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/v1/jobs/{body['id']}" and body["status"] == "queued"
    job = jobs_in_db(api)[body["id"]]
    assert (job.submitted_by, job.external_id, job.priority) == ("alice", "up-1", 5)
    assert job.enqueued_at is not None and api.queued_messages() == 1


def test_json_batch_makes_one_job_per_image_and_few_messages(api):
    payload = {"jobs": [{"image_base64": b64(png_bytes((i, 0, 0)))} for i in range(20)]}
    r = api.client.post("/v1/jobs/batch", json=payload, headers=api.headers("alice"))
    assert r.status_code == 202, r.text
    assert len({j["id"] for j in r.json()}) == 20
    assert api.queued_messages() == 2  # 20 jobs in messages of batch_size=16
    # every submission is keyed before its insert transaction (a re-run finds, not duplicates)
    keys = [job.intake_key for job in jobs_in_db(api).values()]
    assert len(set(keys)) == 20 and all(k and len(k) == 32 for k in keys)


def test_bad_requests_get_clear_errors(api):
    h = api.headers("alice")
    assert api.client.post("/v1/jobs", json={"image_base64": "!!"}, headers=h).status_code == 422
    assert api.client.post("/v1/jobs", json={"nope": 1}, headers=h).status_code == 422
    assert api.client.post("/v1/jobs", content=b"x", headers=h).status_code == 415
    r = api.client.post("/v1/jobs", files={"other": ("a", IMG)}, headers=h)
    assert r.status_code == 422 and "file" in r.text
    assert api.client.get("/v1/jobs/999999", headers=h).status_code == 404


def test_bad_image_bytes_are_accepted_for_the_worker_to_fail(api):
    r = api.client.post("/v1/jobs", json={"image_base64": b64(b"")}, headers=api.headers("bob"))
    assert r.status_code == 202  # recorded and failed by the worker with a reason, not lost


def test_size_limits(api_factory):
    api = api_factory(max_request_bytes=4096, max_upload_bytes=2048)
    h = api.headers("alice")
    big = bytes(3000)
    r = api.client.post("/v1/jobs", files={"file": ("a", bytes(5000))}, headers=h)
    assert r.status_code == 413
    r = api.client.post("/v1/jobs", json={"image_base64": b64(big)}, headers=h)
    assert r.status_code == 413 and "2048" in r.text
    assert jobs_in_db(api) == {}


def test_callback_urls_must_be_public_unless_allow_listed(api_factory):
    api = api_factory(callback_allowlist=["10.0.0.0/8"])
    h = api.headers("alice")
    for url in ("http://127.0.0.1/hook", "http://169.254.169.254/", "file:///etc/passwd"):
        r = api.client.post(
            "/v1/jobs", json={"image_base64": b64(IMG), "callback_url": url}, headers=h
        )
        assert r.status_code == 422, url
    r = api.client.post(
        "/v1/jobs", json={"image_base64": b64(IMG), "callback_url": "http://10.1.2.3/h"}, headers=h
    )
    assert r.status_code == 202


def test_authentication_and_roles(api):
    assert api.client.get("/v1/jobs").status_code == 401
    bad = {"Authorization": "Bearer not-a-token-at-all"}
    assert api.client.get("/v1/jobs", headers=bad).status_code == 401
    mine = api.client.post(
        "/v1/jobs", json={"image_base64": b64(IMG)}, headers=api.headers("alice")
    )
    job_id = mine.json()["id"]
    theirs = api.client.post(
        "/v1/jobs", json={"image_base64": b64(IMG)}, headers=api.headers("bob")
    )
    # a submitter sees only its own jobs
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.headers("bob")).status_code == 404
    listed = api.client.get("/v1/jobs", headers=api.headers("bob")).json()["jobs"]
    assert [j["id"] for j in listed] == [theirs.json()["id"]]
    # reviewers and admins see every job
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.headers("rita")).status_code == 200
    assert len(api.client.get("/v1/jobs", headers=api.headers("adam")).json()["jobs"]) == 2
    # admin-only action: submitter and reviewer get 403
    for who in ("alice", "rita"):
        assert (
            api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers(who)).status_code == 403
        )
    assert (
        api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers("adam")).status_code == 409
    )


def test_every_reviewer_or_admin_route_refuses_a_submitter(api):
    """Covers routes other features add (review queue, thresholds): each declares its role."""
    from fastapi.routing import APIRoute

    def roles(dependant) -> set[str]:
        found = {getattr(dependant.call, "required_role", None)}
        for sub in dependant.dependencies:
            found |= roles(sub)
        return found - {None}

    def api_routes(routes) -> list[APIRoute]:
        out = []
        for r in routes:
            if isinstance(r, APIRoute):
                out.append(r)
            elif hasattr(r, "original_router"):  # FastAPI's lazily included routers
                out += api_routes(r.original_router.routes)
        return out

    routes = api_routes(api.client.app.routes)
    guarded = [r for r in routes if roles(r.dependant) & {"reviewer", "admin"}]
    assert guarded, "expected at least the admin retry route"
    for route in guarded:
        path = re.sub(r"\{[^}]*\}", "1", route.path)  # {job_id:int} too
        for method in route.methods:
            r = api.client.request(method, path, headers=api.headers("alice"))
            assert r.status_code == 403, (method, path, r.status_code)


def test_admin_retry_requeues_a_failed_job(api):
    r = api.client.post("/v1/jobs", json={"image_base64": b64(IMG)}, headers=api.headers("alice"))
    job_id = r.json()["id"]
    engine = make_engine(api.settings.database_url)
    with session_scope(make_sessionmaker(engine)) as s:
        job = s.get(Job, job_id)
        job.status, job.attempts, job.error_code = JobStatus.QUARANTINED, 3, "delivery_failed"
    engine.dispose()
    r = api.client.post(f"/v1/jobs/{job_id}/retry", headers=api.headers("adam"))
    assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["attempts"] == 0


def test_tokens_from_the_database(api):
    engine = make_engine(api.settings.database_url)
    with session_scope(make_sessionmaker(engine)) as s:
        secret = create_token(s, "pipeline-7", "submitter")
    engine.dispose()
    r = api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200


def test_list_filters_by_status_and_since_and_pages(api):
    h = api.headers("adam")
    for i in range(3):
        api.client.post("/v1/jobs", json={"image_base64": b64(png_bytes((i, 1, 1)))}, headers=h)
    page = api.client.get("/v1/jobs?limit=2", headers=h).json()
    assert len(page["jobs"]) == 2 and page["next_after_id"] == page["jobs"][-1]["id"]
    rest = api.client.get(f"/v1/jobs?after_id={page['next_after_id']}", headers=h).json()
    assert len(rest["jobs"]) == 1 and rest["next_after_id"] is None
    assert api.client.get("/v1/jobs?status=scored", headers=h).json()["jobs"] == []
    assert len(api.client.get("/v1/jobs?since=2000-01-01T00:00:00", headers=h).json()["jobs"]) == 3
    assert api.client.get("/v1/jobs?status=bogus", headers=h).status_code == 422
