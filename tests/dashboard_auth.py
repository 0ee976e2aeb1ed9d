"""Logged-in dashboard clients for tests: the login form, CSRF tokens of pages, form posts.

The dashboard's state-changing forms carry the session's CSRF token (``csrf_token``); these
helpers read it from a page the way a browser would and send it back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
from fastapi.testclient import TestClient

__all__ = ["DashboardClient", "csrf_of", "log_in", "post_form"]

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: TestClient, path: str = "/login") -> str:
    """The CSRF token of the session, as a page at ``path`` embeds it."""
    page = client.get(path)
    found = CSRF_FIELD.search(page.text)
    assert found, f"no CSRF token on {path} ({page.status_code}): {page.text[:300]}"
    return found.group(1)


def log_in(client: TestClient, secret: str, *, follow_redirects: bool = False) -> httpx.Response:
    """Submit the login form with ``secret`` (an API token's secret)."""
    return client.post(
        "/login",
        data={"token": secret, "csrf_token": csrf_of(client, "/login"), "next": "/"},
        follow_redirects=follow_redirects,
    )


def post_form(
    client: TestClient,
    path: str,
    data: Mapping[str, str] | None = None,
    *,
    page: str = "/review",
    **kwargs: object,
) -> httpx.Response:
    """POST ``data`` plus the CSRF token read from ``page`` (no redirects followed)."""
    kwargs.setdefault("follow_redirects", False)
    form = {**(data or {}), "csrf_token": csrf_of(client, page)}
    return client.post(path, data=form, **kwargs)  # type: ignore[arg-type]


class DashboardClient(TestClient):
    """A TestClient that sends the session's CSRF token with every form POST, as a browser
    submitting a dashboard form does (read from ``csrf_page``, which must render a form).
    Tests of the CSRF check itself use a plain ``TestClient``."""

    csrf_page = "/review"

    def post(self, url, *, data=None, **kwargs):  # type: ignore[no-untyped-def,override]
        if data is None or isinstance(data, Mapping):
            data = {**(data or {}), "csrf_token": csrf_of(self, self.csrf_page)}
        return super().post(url, data=data, **kwargs)
