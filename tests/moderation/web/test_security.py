"""Cross-site requests, framing, Host checks and CSRF tokens on every state-changing route.

Each test names the audit finding it covers (issue 15); SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from moderation.db import make_engine, make_sessionmaker
from moderation.web.security import cross_site_reason
from tests.dashboard_auth import DashboardClient, csrf_of, log_in
from tests.moderation.web.pages.test_review import item_status
from tests.review_seed import seed_review_queue

RITA = "rita-reviewer-secret-0000000000000000003"
TOKENS = [f"rita:reviewer:{RITA}"]


@pytest.fixture
def queue(db_url, tmp_path):
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            ids = seed_review_queue(session, tmp_path)
    finally:
        engine.dispose()
    return db_url, ids


@pytest.fixture
def rita(queue, dashboard_factory):
    """Logged in as rita, holding the top item (the extreme one)."""
    with DashboardClient(dashboard_factory(queue[0], api_tokens=TOKENS)) as client:
        assert log_in(client, RITA).status_code == 303
        client.post("/review/claim")
        yield client


def decide(client: TestClient, item: int, *, csrf: str | None, **headers: str):
    data = {"label:weapons": "violation"}
    if csrf is not None:
        data["csrf_token"] = csrf
    return TestClient.post(client, f"/review/items/{item}", data=data, headers=headers,
                           follow_redirects=False)  # fmt: skip


def test_origin_null_is_refused_even_with_the_csrf_token(queue, rita):
    """Finding: `POST /review/items/{id}` was accepted with `Origin: null`."""
    db_url, ids = queue
    token = csrf_of(rita)
    assert decide(rita, ids["extreme"], csrf=token, Origin="null").status_code == 403
    assert item_status(db_url, ids["extreme"]) == ("claimed", "rita")  # nothing recorded


def test_neither_origin_nor_sec_fetch_site_needs_the_csrf_token(queue, rita):
    """Finding: accepted with neither `Origin` nor `Sec-Fetch-Site` (and no token)."""
    db_url, ids = queue
    assert decide(rita, ids["extreme"], csrf=None).status_code == 403
    assert decide(rita, ids["extreme"], csrf="forged").status_code == 403
    assert item_status(db_url, ids["extreme"]) == ("claimed", "rita")
    ok = decide(rita, ids["extreme"], csrf=csrf_of(rita))  # a script with the token: fine
    assert ok.status_code == 303
    assert item_status(db_url, ids["extreme"])[0] == "done"


def test_cross_site_fetch_metadata_and_foreign_origins_are_refused(queue, rita):
    _, ids = queue
    token = csrf_of(rita)
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver:8050"},  # another port is another origin
    ):
        assert decide(rita, ids["extreme"], csrf=token, **headers).status_code == 403, headers
    same = decide(
        rita,
        ids["extreme"],
        csrf=token,
        Origin="http://testserver",
        **{"Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 303


def test_dns_rebinding_a_forged_host_with_a_matching_origin_is_refused(queue, rita):
    """Finding: a forged `Host` + matching `Origin` (DNS rebinding) was accepted."""
    _, ids = queue
    token = csrf_of(rita)
    rebound = decide(rita, ids["extreme"], csrf=token, Host="evil.example:8050",
                     Origin="http://evil.example:8050")  # fmt: skip
    assert rebound.status_code == 400
    assert rita.get("/overview", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_default_hosts_are_loopback_names_and_the_bound_address(queue, dashboard_factory):
    app = dashboard_factory(queue[0], allowed_hosts=[], dashboard_host="192.0.2.7")
    with TestClient(app, base_url="http://localhost:8050") as client:
        for host in ("localhost:8050", "127.0.0.1:8050", "[::1]:8050", "192.0.2.7:8050"):
            assert client.get("/overview", headers={"Host": host}).status_code == 200, host
        for host in ("testserver", "evil.example:8050", "[::2]:8050", "0.0.0.0:8050"):
            assert client.get("/overview", headers={"Host": host}).status_code == 400, host
    wildcard = dashboard_factory(queue[0], allowed_hosts=[], dashboard_host="0.0.0.0")
    with TestClient(wildcard, base_url="http://localhost:8050") as client:
        assert client.get("/overview", headers={"Host": "0.0.0.0:8050"}).status_code == 400


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_allowed_hosts_come_from_settings(queue, dashboard_factory):
    app = dashboard_factory(queue[0], allowed_hosts=["dash.example.org"])
    with TestClient(app, base_url="http://dash.example.org") as client:
        assert client.get("/overview").status_code == 200
        assert client.get("/overview", headers={"Host": "localhost"}).status_code == 400


def test_every_page_refuses_framing(queue, rita):
    """Finding: no page sent X-Frame-Options or CSP frame-ancestors."""
    _, ids = queue
    responses = [
        rita.get(path)
        for path in ("/overview", "/review", "/thresholds?hours=2", "/matcher", "/login",
                     "/static/dashboard.css", "/nowhere")
    ]  # fmt: skip
    responses.append(rita.get("/", follow_redirects=False))
    responses.append(decide(rita, ids["extreme"], csrf=None))
    responses.append(TestClient.get(rita, "/overview", headers={"Host": "evil.example"}))
    for response in responses:
        assert response.headers["x-frame-options"] == "DENY", response.url
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, response.url
    image = rita.get(f"/review/items/{ids['extreme']}/image")
    assert image.headers["content-security-policy"] == "default-src 'none'; sandbox"


def test_a_get_of_the_review_page_claims_nothing(queue, dashboard_factory):
    """Finding: `GET /review` claimed an item (a cross-site GET changed state)."""
    db_url, ids = queue
    with DashboardClient(dashboard_factory(db_url, api_tokens=TOKENS)) as client:
        log_in(client, RITA)
        page = client.get("/review", headers={"Sec-Fetch-Site": "cross-site"})
        assert page.status_code == 200 and 'action="/review/claim"' in page.text
        assert item_status(db_url, ids["extreme"]) == ("open", None)


def test_pages_build_no_url_from_the_host_header(queue, rita):
    """Finding: the `Host` header was echoed into `<script src>`."""
    page = rita.get("/review", headers={"Host": "127.0.0.1:8050"})
    assert page.status_code == 200
    assert '<script src="/static/review.js"' in page.text
    assert "127.0.0.1:8050" not in page.text and "http://" not in page.text
    assert "testserver" not in rita.get("/overview").text


def test_every_state_changing_route_needs_the_csrf_token(queue, rita):
    """All POST routes there are (review, claim, matcher, login, logout): none acts without
    the session's token; a new POST route is covered by this test automatically."""
    posts = sorted(
        route.path.replace("{item_id}", "1").replace("{appeal_id}", "1")
        for route in _routes(rita.app.routes)  # type: ignore[attr-defined]
        if isinstance(route, APIRoute) and "POST" in route.methods
    )
    assert posts == [
        "/appeals/1/decide", "/appeals/claim", "/callbacks/resend", "/login", "/logout",
        "/matcher", "/review/claim", "/review/items/1",
    ]  # fmt: skip
    for path in posts:
        response = TestClient.post(rita, path, data={"token": RITA}, follow_redirects=False)
        assert response.status_code == 403, path
        assert "CSRF" in response.text, path
    assert rita.get("/overview").status_code == 200  # still logged in: logout was refused


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Routes, included routers unfolded (FastAPI ≥ 0.165 keeps them as one entry each;
    the dashboard includes them without a prefix)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from _routes(original.routes)
        else:
            yield route


@pytest.mark.parametrize(
    "method, headers, refused",
    [
        ("GET", {"origin": "null", "sec-fetch-site": "cross-site"}, False),
        ("POST", {}, False),
        ("POST", {"origin": "null"}, True),
        ("POST", {"origin": "http://a.test", "host": "a.test"}, False),
        ("POST", {"origin": "http://a.test", "host": "b.test"}, True),
        ("POST", {"origin": "not a url", "host": "a.test"}, True),
        ("POST", {"sec-fetch-site": "same-origin"}, False),
        ("POST", {"sec-fetch-site": "none"}, True),
        ("DELETE", {"sec-fetch-site": "cross-site"}, True),
    ],
)
def test_cross_site_reason(method, headers, refused):
    assert (cross_site_reason(method, Headers(headers)) is not None) is refused


def test_csrf_tokens_differ_per_session(queue, dashboard_factory):
    app = dashboard_factory(queue[0], api_tokens=TOKENS)
    with DashboardClient(app) as one, DashboardClient(app) as two:
        assert csrf_of(one) != csrf_of(two)
        before = csrf_of(one)
        log_in(one, RITA)
        assert csrf_of(one) != before  # a login starts a fresh session
        assert re.fullmatch(r"[\w-]{40,}", csrf_of(one))
