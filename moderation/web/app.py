"""The dashboard application factory (``create_dashboard_app``); nothing runs at import."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from moderation.config import Settings
from moderation.db import make_engine, make_sessionmaker
from moderation.db.types import utcnow
from moderation.domain import TIERS
from moderation.web.deps import DashboardState, Page, current_viewer
from moderation.web.formatting import FILTERS
from moderation.web.pages import PAGE_MODULES
from moderation.web.playground import Playground

__all__ = ["create_dashboard_app"]

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
VIEWER_ROLES = ("reviewer", "admin")


def create_dashboard_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
) -> FastAPI:
    """The dashboard for ``settings.database_url`` (or ``engine``, which the caller then owns).

    ``clock`` gives "now" for the time windows (tests pin it).
    """
    owns_engine = engine is None
    if engine is None:
        engine = make_engine(
            settings.database_url, echo=settings.db_echo, pool_size=settings.db_pool_size
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            engine.dispose()

    pages = [importlib.import_module(f"{__package__}.pages.{name}") for name in PAGE_MODULES]
    nav: list[Page] = sorted((module.PAGE for module in pages), key=lambda p: p.order)
    templates = _templates(nav)
    app = FastAPI(
        title="moderation dashboard", docs_url=None, redoc_url=None, openapi_url=None,
        lifespan=lifespan,
    )  # fmt: skip
    app.state.dashboard = DashboardState(
        sessions=make_sessionmaker(engine),
        clock=clock,
        templates=templates,
        viewers={t.name: t.secret for t in settings.parsed_tokens() if t.role in VIEWER_ROLES},
        playground=Playground(settings),  # loads no model until the matcher page needs one
    )
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in pages:
        app.include_router(module.router, dependencies=[Depends(current_viewer)])
    app.add_api_route("/", lambda: RedirectResponse(nav[0].path), include_in_schema=False)
    app.add_exception_handler(DBAPIError, _database_error)
    return app


def _templates(nav: list[Page]) -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(FILTERS)
    templates.env.globals["nav"] = nav
    templates.env.globals["tier_looks"] = {t.value: look for t, look in TIERS.items()}
    return templates


def _database_error(request: Request, exc: Exception) -> HTMLResponse:
    """A one-line reason and a hint instead of a traceback: unreachable or unmigrated DB."""
    assert isinstance(exc, DBAPIError)
    reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
    log.error("dashboard query failed: %s", reason)
    state: DashboardState = request.app.state.dashboard
    return state.templates.TemplateResponse(
        request, "error.html", {"page": None, "reason": reason, "viewer": None}, status_code=503
    )
