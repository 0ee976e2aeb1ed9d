"""Dashboard login: HTTP Basic with a reviewer or admin API token, when tokens are set."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

TOKENS = [
    "ana:reviewer:ana-secret-0123456789",
    "root:admin:root-secret-0123456789",
    "pipe:submitter:pipe-secret-0123456789",
]


@pytest.fixture
def client(sqlite_url, dashboard_factory):
    with TestClient(dashboard_factory(sqlite_url, api_tokens=TOKENS)) as client:
        yield client


def test_pages_ask_for_a_login(client):
    response = client.get("/overview")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "auth",
    [
        ("ana", "wrong-secret-0123456789"),
        ("nobody", "ana-secret-0123456789"),
        ("pipe", "pipe-secret-0123456789"),  # submitters do not see the dashboard
    ],
)
def test_wrong_or_unprivileged_logins_are_refused(client, auth):
    assert client.get("/thresholds", auth=auth).status_code == 401


@pytest.mark.parametrize(
    "auth", [("ana", "ana-secret-0123456789"), ("root", "root-secret-0123456789")]
)
def test_reviewers_and_admins_get_in_and_are_named(client, auth):
    response = client.get("/overview", auth=auth)
    assert response.status_code == 200
    assert f'<span class="viewer">{auth[0]}</span>' in response.text


def test_static_files_need_no_login(client):
    assert client.get("/static/dashboard.css").status_code == 200
