"""Dashboard login through the one identity (static and DB tokens), sessions, start-up refusal.

Against SQLite and PostgreSQL: DB tokens live in the database under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest
from fastapi.testclient import TestClient

from moderation.db import make_engine, make_sessionmaker
from moderation.db.session import session_scope
from moderation.services.tokens import create_token, revoke_token
from moderation.web.app import NoViewerCredential
from tests.dashboard_auth import DashboardClient, csrf_of, log_in
from tests.dashboard_seed import NOW

ANA = "ana-reviewer-secret-00000000000000000001"
ROOT = "root-admin-secret-000000000000000000000002"
PIPE = "pipe-submitter-secret-0000000000000000003"
TOKENS = [f"ana:reviewer:{ANA}", f"root:admin:{ROOT}", f"pipe:submitter:{PIPE}"]


def db_token(db_url: str, name: str, role: str) -> str:
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            return create_token(s, name, role)
    finally:
        engine.dispose()


def revoke(db_url: str, name: str) -> None:
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            assert revoke_token(s, name, NOW)
    finally:
        engine.dispose()


@pytest.fixture
def client(db_url, dashboard_factory):
    with DashboardClient(dashboard_factory(db_url, api_tokens=TOKENS)) as client:
        yield client


def test_pages_send_the_browser_to_the_login_form(client):
    for path in ("/", "/overview", "/review", "/thresholds?hours=2", "/matcher"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=%2F"), path
    assert client.get("/review/items/1/image", follow_redirects=False).status_code == 303
    assert client.post("/review/claim").status_code == 401  # not a page: no redirect
    form = client.get("/overview")  # followed: the login form
    assert form.url.path == "/login" and 'type="password" name="token"' in form.text
    assert "www-authenticate" not in form.headers  # no HTTP Basic any more


@pytest.mark.parametrize("secret, name", [(ANA, "ana"), (ROOT, "root")])
def test_reviewers_and_admins_log_in_and_are_named(client, secret, name):
    response = log_in(client, secret)
    assert response.status_code == 303 and response.headers["location"] == "/"
    page = client.get("/overview")
    assert page.status_code == 200 and f'<span class="viewer">{name}</span>' in page.text


def test_the_session_cookie_is_signed_httponly_and_samesite_strict(client):
    response = log_in(client, ANA)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("moderation_session=")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert ANA not in cookie  # the secret never rides in the cookie
    payload, signed_at, signature = client.cookies["moderation_session"].split(".")
    session = json.loads(base64.b64decode(payload))
    assert session["who"] == "ana" and session["src"] == "static"
    forged = base64.b64encode(json.dumps({**session, "who": "root"}).encode()).decode()
    client.cookies.clear()
    client.cookies.set("moderation_session", f"{forged}.{signed_at}.{signature}")
    assert client.get("/overview", follow_redirects=False).status_code == 303  # not signed
    client.cookies.clear()
    client.cookies.set("moderation_session", f"{payload}.{signed_at}.{signature}")
    assert client.get("/overview", follow_redirects=False).status_code == 200


def test_wrong_and_submitter_tokens_are_refused_with_reasons(client):
    wrong = log_in(client, "x" * 40)
    assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
    submitter = log_in(client, PIPE)
    assert submitter.status_code == 403
    assert "only reviewer and admin tokens may log in" in submitter.text
    assert client.get("/overview", follow_redirects=False).status_code == 303


def test_db_tokens_log_in_and_revoking_one_ends_its_sessions(db_url, client):
    """Finding: DB tokens (`moderation tokens add`) could never log in to the dashboard."""
    secret = db_token(db_url, "dora", "reviewer")
    assert log_in(client, secret).status_code == 303
    assert '<span class="viewer">dora</span>' in client.get("/overview").text
    revoke(db_url, "dora")
    assert client.get("/overview", follow_redirects=False).status_code == 303  # at once
    assert log_in(client, secret).status_code == 401


def test_a_db_submitter_token_may_not_log_in(db_url, client):
    assert log_in(client, db_token(db_url, "uploader", "submitter")).status_code == 403


def test_logout_ends_the_session(client):
    log_in(client, ANA)
    page = client.get("/overview").text
    assert 'action="/logout"' in page
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/overview", follow_redirects=False).status_code == 303


def test_a_login_expires_after_session_max_age(db_url, dashboard_factory):
    now = [NOW]
    app = dashboard_factory(db_url, api_tokens=TOKENS, session_max_age_s=3600, clock=lambda: now[0])
    with DashboardClient(app) as client:
        log_in(client, ANA)
        now[0] = NOW + dt.timedelta(minutes=59)
        assert client.get("/overview").status_code == 200
        now[0] = NOW + dt.timedelta(minutes=61)
        assert client.get("/overview", follow_redirects=False).status_code == 303


def test_login_goes_back_to_the_page_asked_for_but_never_off_site(client):
    token = csrf_of(client, "/login?next=/thresholds")
    back = client.post("/login", data={"token": ANA, "csrf_token": token, "next": "/thresholds"},
                       follow_redirects=False)  # fmt: skip
    assert back.headers["location"] == "/thresholds"
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        client.cookies.clear()
        token = csrf_of(client, "/login")
        away = client.post("/login", data={"token": ANA, "csrf_token": token, "next": evil},
                           follow_redirects=False)  # fmt: skip
        assert away.headers["location"] == "/", evil


def test_the_login_form_needs_its_csrf_token(db_url, dashboard_factory):
    with TestClient(dashboard_factory(db_url, api_tokens=TOKENS)) as client:
        assert client.post("/login", data={"token": ANA}).status_code == 403
        assert client.post("/login", data={"token": ANA, "csrf_token": "x"}).status_code == 403


def test_failed_logins_are_limited_per_address(db_url, dashboard_factory):
    """Finding: no limit on failed logins. Beyond auth_max_failures: 429 with Retry-After."""
    app = dashboard_factory(db_url, api_tokens=TOKENS, auth_max_failures=3)
    with DashboardClient(app) as client:
        assert [log_in(client, "y" * 40).status_code for _ in range(3)] == [401] * 3
        limited = log_in(client, ANA)  # even the right token waits
        assert limited.status_code == 429 and "too many failed logins" in limited.text
        assert 1 <= int(limited.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    "tokens",
    [[], [f"pipe:submitter:{PIPE}"]],
    ids=["no-tokens (the compose default)", "submitters-only"],
)
def test_without_a_reviewer_or_admin_token_the_dashboard_refuses_to_start(
    db_url, dashboard_factory, tokens
):
    """Finding: with no (or only submitter) tokens, anyone reaching the port was let in."""
    app = dashboard_factory(db_url, api_tokens=tokens, no_auth=False)
    with pytest.raises(NoViewerCredential, match="--no-auth"), TestClient(app):
        pass
    db_token(db_url, "sub", "submitter")
    with pytest.raises(NoViewerCredential), TestClient(app):
        pass
    secret = db_token(db_url, "rev", "reviewer")  # a DB reviewer token is enough
    with DashboardClient(dashboard_factory(db_url, api_tokens=tokens, no_auth=False)) as client:
        assert client.get("/overview", follow_redirects=False).status_code == 303
        assert log_in(client, secret).status_code == 303
        assert client.get("/overview").status_code == 200


def test_no_auth_mode_asks_nobody(db_url, dashboard_factory):
    with DashboardClient(dashboard_factory(db_url, no_auth=True)) as client:
        assert client.get("/overview").status_code == 200
        assert client.get("/login", follow_redirects=False).headers["location"] == "/"
        assert not re.search(r'class="viewer"', client.get("/overview").text)
