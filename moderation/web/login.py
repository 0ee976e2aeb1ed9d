"""Logging in to the dashboard with an API token, and out again.

``GET /login`` shows a form with one field: the token's secret — the same secret the API
takes as a bearer token, from ``MODERATION_API_TOKENS`` or ``moderation tokens add``; the
name is found from it. ``POST /login`` resolves it through ``services.tokens.TokenResolver``
(the API's resolver), refuses submitter tokens with a clear reason, counts failures per
client address (429 with ``Retry-After`` beyond ``MODERATION_AUTH_MAX_FAILURES`` per
``MODERATION_AUTH_FAILURE_WINDOW_S``) and on success starts a fresh signed session (see
``deps.log_in``). ``POST /logout`` ends it. Both forms carry the session's CSRF token.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from moderation.services.tokens import VIEWER_ROLES, TooManyFailures
from moderation.web.deps import (
    DashboardState,
    csrf_token,
    log_in,
    require_csrf,
)

__all__ = ["router", "safe_next"]

router = APIRouter()
MAX_LOGIN_FORM_BYTES = 8 * 1024


def safe_next(value: object) -> str:
    """Where to go after the login: a path on this site only (never ``//host`` or a URL)."""
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and not any(ord(c) < 32 for c in value)
    ):
        return value
    return "/"


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def _form(
    request: Request, *, error: str | None = None, status_code: int = 200, next_path: str = "/"
) -> HTMLResponse:
    response = _state(request).templates.TemplateResponse(
        request,
        "login.html",
        {
            "page": None,
            "viewer": None,
            "error": error,
            "next": safe_next(next_path),
            "csrf_token": csrf_token(request),
        },
        status_code=status_code,
    )
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query name
    if _state(request).no_auth:
        return RedirectResponse("/", status_code=303)
    return _form(request, next_path=next)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    state = _state(request)
    if state.no_auth:
        return RedirectResponse("/", status_code=303)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_LOGIN_FORM_BYTES:
        return _form(request, error="the login form is too large", status_code=413)
    form = await request.form(max_files=0, max_fields=8, max_part_size=MAX_LOGIN_FORM_BYTES)
    require_csrf(request, form.get("csrf_token"))
    next_path = safe_next(form.get("next"))
    secret = form.get("token")
    secret = secret.strip() if isinstance(secret, str) else ""
    client = request.client.host if request.client is not None else "unknown"
    if not secret:
        return _form(request, error="enter your API token", status_code=400, next_path=next_path)
    try:
        principal = await run_in_threadpool(
            state.resolver.authenticate, secret, client=client, fresh=True
        )
    except TooManyFailures as exc:
        response = _form(request, error=str(exc), status_code=429, next_path=next_path)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if principal is None:
        return _form(
            request, error="unknown or revoked token", status_code=401, next_path=next_path
        )
    if principal.role not in VIEWER_ROLES:
        return _form(
            request,
            error=f"the token {principal.name!r} has the role {principal.role}: only reviewer "
            "and admin tokens may log in to the dashboard",
            status_code=403,
            next_path=next_path,
        )
    log_in(request, principal)
    return RedirectResponse(next_path, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
    require_csrf(request, form.get("csrf_token"))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
