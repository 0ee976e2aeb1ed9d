"""The API's side of the one identity: static and DB tokens, failed-auth limits (PostgreSQL)."""

from __future__ import annotations

from moderation.db import make_engine, make_sessionmaker
from moderation.db.session import session_scope
from moderation.db.types import utcnow
from moderation.services.tokens import create_token, revoke_token


def test_db_tokens_work_and_static_names_are_theirs(api):
    engine = make_engine(api.settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            secret = create_token(s, "dbrev", "reviewer")
    finally:
        engine.dispose()
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/v1/jobs", headers=headers).status_code == 200
    assert api.client.get("/v1/jobs", headers=api.headers("rita")).status_code == 200


def test_wrong_tokens_from_one_address_get_429_with_retry_after(api_factory):
    """Finding: no limit on failed logins. 10 wrong tokens a minute, then 429."""
    api = api_factory(auth_max_failures=10, auth_failure_window_s=60)
    wrong = {"Authorization": "Bearer " + "w" * 40}
    statuses = [api.client.get("/v1/jobs", headers=wrong).status_code for _ in range(10)]
    assert statuses == [401] * 10
    limited = api.client.get("/v1/jobs", headers=wrong)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # the address is refused even with a good token until the window passes
    assert api.client.get("/v1/jobs", headers=api.headers("rita")).status_code == 429
    # a missing token is not a guess: it is not counted (health checks, misconfigured clients)
    fresh = api_factory(auth_max_failures=2)
    for _ in range(5):
        assert fresh.client.get("/v1/jobs").status_code == 401
    assert fresh.client.get("/v1/jobs", headers=fresh.headers("rita")).status_code == 200


def test_a_revoked_db_token_stops_working(api_factory):
    api = api_factory()
    engine = make_engine(api.settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        with session_scope(sessions) as s:
            secret = create_token(s, "short-lived", "submitter")
        with session_scope(sessions) as s:
            revoke_token(s, "short-lived", utcnow())
    finally:
        engine.dispose()
    assert (
        api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    )
