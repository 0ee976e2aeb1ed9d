"""Page 6, Callbacks: decision callbacks per state and the dead letters, with a resend button
(admins; the form carries the session's CSRF token). Resent callbacks are due at once: the
reaper dispatches them at its next run (docs/webhooks.md)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from moderation.callbacks import redact_url
from moderation.services import callbacks as callback_service
from moderation.web.deps import DashboardState, Page, SessionDep, render, require_csrf

__all__ = ["PAGE", "router"]

PAGE = Page(path="/callbacks", title="Callbacks", order=6)
router = APIRouter()


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def _is_admin(request: Request) -> bool:
    state = _state(request)
    if state.no_auth:
        return True
    who, source = request.session.get("who"), request.session.get("src")
    if not isinstance(who, str) or not isinstance(source, str):
        return False
    principal = state.resolver.current(who, source)
    return principal is not None and principal.role == "admin"


@router.get(PAGE.path, response_class=HTMLResponse)
def callbacks(
    request: Request,
    session: SessionDep,
    state: Literal["pending", "sent", "dead", "skipped"] = "dead",
    resent: int | None = None,
) -> HTMLResponse:
    """Counts per state and the newest callbacks of one state (the dead letters first)."""
    rows = callback_service.list_callbacks(session, state=state, limit=200)
    return render(
        request, "callbacks.html", PAGE,
        counts=callback_service.counts(session), rows=rows, state=state,
        shown_url=redact_url, can_resend=_is_admin(request), resent=resent,
    )  # fmt: skip


@router.post(PAGE.path + "/resend")
async def resend(request: Request) -> Response:
    """Resend one dead/sent callback (``job_id``) or every dead letter (``all_dead``)."""
    form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
    require_csrf(request, form.get("csrf_token"))
    if not _is_admin(request):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "resending callbacks needs an admin login")
    raw = form.get("job_id")
    all_dead = form.get("all_dead") == "1"
    try:
        job_ids = [int(str(raw))] if raw and not all_dead else []
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "job_id must be a number") from None
    if not job_ids and not all_dead:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "give job_id or all_dead")
    actor = f"dashboard:{request.session.get('who') or 'local'}"
    ids = await run_in_threadpool(
        callback_service.resend, _state(request).sessions, job_ids, all_dead=all_dead, actor=actor
    )
    return RedirectResponse(f"{PAGE.path}?resent={len(ids)}", status_code=303)
