"""Request dependencies of the dashboard: its state, a read-only session, the viewer (from the
signed session cookie, re-validated on every request), CSRF tokens, rendering."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from moderation.db.views import begin_read_only
from moderation.services.tokens import VIEWER_ROLES, Principal, TokenResolver
from moderation.web.playground import Playground

__all__ = [
    "DashboardState",
    "LoginRequired",
    "NowDep",
    "Page",
    "SessionDep",
    "csrf_token",
    "current_viewer",
    "log_in",
    "render",
    "require_csrf",
    "window_hours",
]

CSRF_FIELD = "csrf_token"  # the hidden form field every state-changing form carries

WINDOW_CHOICES = (1, 6, 24, 72, 168)  # hours offered by the window selector


@dataclass(frozen=True)
class Page:
    """A nav entry: pages are listed by ``order`` (1 Overview, 2 Review, 3 Thresholds, …)."""

    path: str
    title: str
    order: int


@dataclass(frozen=True)
class DashboardState:
    sessions: sessionmaker[Session]
    clock: Callable[[], dt.datetime]
    templates: Jinja2Templates
    resolver: TokenResolver  # the one identity of API and dashboard (services.tokens)
    no_auth: bool  # `moderation dashboard --no-auth` (loopback only): nobody logs in
    session_max_age_s: int  # a login lasts this long
    playground: Playground  # the matcher page's scorer, built on first use


class LoginRequired(Exception):
    """No valid login: pages redirect to ``/login``, other requests get 401."""


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def get_session(request: Request) -> Iterator[Session]:
    """A read-only session for one page (see ``views.begin_read_only``)."""
    with _state(request).sessions() as session:
        begin_read_only(session)
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_now(request: Request) -> dt.datetime:
    return _state(request).clock()


NowDep = Annotated[dt.datetime, Depends(get_now)]


def _now_s(request: Request) -> float:
    return _state(request).clock().timestamp()


def log_in(request: Request, principal: Principal) -> None:
    """Start a fresh session for ``principal`` (a new CSRF token too). The cookie keeps the
    token's name and source, never its secret; ``current_viewer`` re-checks them."""
    request.session.clear()
    request.session.update(
        who=principal.name,
        src=principal.source,
        at=_now_s(request),
        csrf=secrets.token_urlsafe(32),
    )


def current_viewer(request: Request) -> str | None:
    """The logged-in reviewer or admin (None with ``--no-auth``); else ``LoginRequired``.

    Every request re-validates the session's token through the resolver, uncached: a
    revoked DB token (or a static one no longer configured, or one demoted to submitter)
    ends its sessions at the next request; so does the end of ``session_max_age_s``."""
    state = _state(request)
    if state.no_auth:
        return None
    session = request.session
    who, source, at = session.get("who"), session.get("src"), session.get("at")
    if isinstance(who, str) and isinstance(source, str) and isinstance(at, int | float):
        if 0 <= _now_s(request) - at <= state.session_max_age_s:
            principal = state.resolver.current(who, source)
            if principal is not None and principal.role in VIEWER_ROLES:
                request.state.viewer = who
                return who
        session.clear()  # expired or revoked: the next login starts afresh
    raise LoginRequired


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def require_csrf(request: Request, submitted: object) -> None:
    """403 unless ``submitted`` (the form's ``csrf_token``) is this session's token."""
    expected = request.session.get("csrf")
    if not (
        isinstance(expected, str)
        and expected
        and isinstance(submitted, str)
        and secrets.compare_digest(expected.encode(), submitted.encode())
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "missing or wrong CSRF token: reload the page and submit again",
        )


def window_hours(default: int) -> Callable[..., int]:
    """A ``hours`` query parameter (1 h … 31 d) with a per-page default."""

    def hours(value: Annotated[int, Query(alias="hours", ge=1, le=24 * 31)] = default) -> int:
        return value

    return hours


def render(request: Request, template: str, page: Page, **context: Any) -> HTMLResponse:
    """Render ``template`` with the nav, the active page and the window choices."""
    templates = _state(request).templates
    context.update(page=page, window_choices=WINDOW_CHOICES, csrf_token=csrf_token(request))
    context.setdefault("viewer", getattr(request.state, "viewer", None))
    return templates.TemplateResponse(request, template, context)
