"""The dashboard application factory (``create_dashboard_app``); nothing runs at import."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import ipaddress
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

from moderation.config import DEFAULT_ALLOWED_HOSTS, Settings
from moderation.db import make_engine, make_sessionmaker
from moderation.db.types import utcnow
from moderation.domain import TIERS
from moderation.services.tokens import TokenResolver
from moderation.web import login
from moderation.web.deps import DashboardState, LoginRequired, Page, current_viewer
from moderation.web.formatting import FILTERS
from moderation.web.pages import PAGE_MODULES
from moderation.web.playground import Playground
from moderation.web.security import SecurityMiddleware

__all__ = ["NoViewerCredential", "allowed_hosts", "create_dashboard_app"]

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SESSION_COOKIE = "moderation_session"


class NoViewerCredential(RuntimeError):
    """The dashboard would start with nobody able to log in (and without ``--no-auth``)."""


def allowed_hosts(settings: Settings) -> list[str]:
    """Host names the dashboard answers to: ``MODERATION_ALLOWED_HOSTS`` or localhost,
    127.0.0.1 and ::1, plus the bound host when it is one address (not 0.0.0.0 / ::)."""
    hosts = [h.strip("[]") for h in settings.allowed_hosts or DEFAULT_ALLOWED_HOSTS]
    bound = settings.dashboard_host.strip("[]")
    if not _wildcard(bound) and bound not in hosts:
        hosts.append(bound)
    # a Host header names an IPv6 address in brackets ("[::1]:8050"), and is matched so
    return list(dict.fromkeys(f"[{h}]" if ":" in h else h for h in hosts))


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def create_dashboard_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], dt.datetime] = utcnow,
    no_auth: bool = False,
) -> FastAPI:
    """The dashboard for ``settings.database_url`` (or ``engine``, which the caller then owns).

    ``clock`` gives "now" for the time windows and session ages (tests pin it). Viewers log
    in with a reviewer or admin token (``web.login``); at start-up the app refuses to serve
    (``NoViewerCredential``) when no such token exists, static or in the database, unless
    ``no_auth`` — nobody logs in and every reviewer is "local" (the CLI refuses to bind
    anything but loopback with ``--no-auth``). Every request's ``Host`` must be one of
    ``allowed_hosts`` (DNS rebinding).
    """
    owns_engine = engine is None
    if engine is None:
        engine = make_engine(
            settings.database_url, echo=settings.db_echo, pool_size=settings.db_pool_size
        )

    sessions = make_sessionmaker(engine)
    resolver = TokenResolver(settings, sessions)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not no_auth and not resolver.has_viewer():
            if owns_engine:
                engine.dispose()
            raise NoViewerCredential(NO_VIEWER)
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
        sessions=sessions,
        clock=clock,
        templates=templates,
        resolver=resolver,
        no_auth=no_auth,
        session_max_age_s=settings.session_max_age_s,
        playground=Playground(settings),  # loads no model until the matcher page needs one
    )
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(login.router)
    for module in pages:
        app.include_router(module.router, dependencies=[Depends(current_viewer)])
    app.add_api_route(
        "/",
        lambda: RedirectResponse(nav[0].path),
        dependencies=[Depends(current_viewer)],
        include_in_schema=False,
    )
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(LoginRequired, _login_required)
    # outermost last: cross-site refusals and the headers on every answer (the Host check's
    # 400 included), then the Host, then the session
    app.add_middleware(
        SessionMiddleware,
        secret_key=_session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="strict",
        https_only=settings.session_https_only,
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings))
    app.add_middleware(SecurityMiddleware)
    return app


NO_VIEWER = (
    "no reviewer or admin token exists, so nobody could log in to the dashboard: add one "
    "(MODERATION_API_TOKENS=name:reviewer:SECRET, or `moderation tokens add NAME reviewer`) "
    "or start it with --no-auth on a loopback address"
)


def _session_secret(settings: Settings) -> str:
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    log.warning(
        "MODERATION_SESSION_SECRET is unset: dashboard logins are signed with a random key of "
        "this process (they end when it restarts and hold in this process only)"
    )
    return secrets.token_urlsafe(32)


def _login_required(request: Request, exc: Exception) -> Response:
    """Pages send the browser to the login form (back here afterwards); other requests 401."""
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return PlainTextResponse("log in first: /login", status_code=401)


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
