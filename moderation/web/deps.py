"""Request dependencies of the dashboard: its state, a read-only session, the viewer, rendering."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from moderation.db.views import begin_read_only
from moderation.web.playground import Playground

__all__ = [
    "DashboardState",
    "NowDep",
    "Page",
    "SessionDep",
    "current_viewer",
    "render",
    "window_hours",
]

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
    viewers: Mapping[str, str]  # token name → secret; empty = no login asked (loopback use)
    playground: Playground  # the matcher page's scorer, built on first use


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

_basic = HTTPBasic(auto_error=False, realm="moderation dashboard")


def current_viewer(
    request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> str | None:
    """With API tokens configured, a reviewer or admin token logs in (user = token name,
    password = its secret) by HTTP Basic; without any, the dashboard is open."""
    viewers = _state(request).viewers
    if not viewers:
        return None
    if credentials is not None:
        expected = viewers.get(credentials.username)
        # compare against something even for unknown names: timing must not reveal names
        candidate = expected if expected is not None else secrets.token_hex(32)
        matches = secrets.compare_digest(candidate.encode(), credentials.password.encode())
        if matches and expected is not None:
            request.state.viewer = credentials.username
            return credentials.username
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a reviewer or admin API token is required",
        headers={"WWW-Authenticate": 'Basic realm="moderation dashboard"'},
    )


def window_hours(default: int) -> Callable[..., int]:
    """A ``hours`` query parameter (1 h … 31 d) with a per-page default."""

    def hours(value: Annotated[int, Query(alias="hours", ge=1, le=24 * 31)] = default) -> int:
        return value

    return hours


def render(request: Request, template: str, page: Page, **context: Any) -> HTMLResponse:
    """Render ``template`` with the nav, the active page and the window choices."""
    templates = _state(request).templates
    context.update(page=page, window_choices=WINDOW_CHOICES)
    context.setdefault("viewer", getattr(request.state, "viewer", None))
    return templates.TemplateResponse(request, template, context)
