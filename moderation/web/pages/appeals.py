"""Page 7, Appeals: appeal rate and overturn rate per category, the appeals queue (separate
from the review queue) and the viewer's claimed appeal with its uphold/overturn form. A
reviewer is never offered an appeal of a job they reviewed (docs/review.md#appeals); the
forms carry the session's CSRF token."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from moderation.config import Settings
from moderation.domain import RiskTier
from moderation.services import appeals as service
from moderation.web.deps import (
    DashboardState,
    NowDep,
    Page,
    SessionDep,
    render,
    require_csrf,
    window_hours,
)
from moderation.web.pages.review import ANONYMOUS_REVIEWER

__all__ = ["PAGE", "router"]

PAGE = Page(path="/appeals", title="Appeals", order=7)
router = APIRouter()


def _state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def _reviewer(request: Request) -> str:
    return getattr(request.state, "viewer", None) or ANONYMOUS_REVIEWER


@router.get(PAGE.path, response_class=HTMLResponse)
def appeals(
    request: Request,
    session: SessionDep,
    now: NowDep,
    hours: Annotated[int, Depends(window_hours(168))],
    error: str | None = None,
) -> HTMLResponse:
    """Rates per category over ``hours``, the open appeals, the viewer's claim."""
    reviewer = _reviewer(request)
    queue = service.list_appeals(session, status="open", limit=200)
    mine = next(
        (a for a in queue if a.claimed_by == reviewer and a.claim_expires_at
         and a.claim_expires_at > now),
        None,
    )  # fmt: skip
    return render(
        request, "appeals.html", PAGE,
        hours=hours, rates=service.appeal_rates(session, now - dt.timedelta(hours=hours)),
        queue=queue, mine=mine, tiers=[t.value for t in RiskTier], error=error,
    )  # fmt: skip


@router.post(PAGE.path + "/claim")
async def claim(request: Request) -> Response:
    """Claim the oldest appeal the viewer may judge."""
    form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
    require_csrf(request, form.get("csrf_token"))
    state, settings = _state(request), request.app.state.settings
    assert isinstance(settings, Settings)

    def work() -> bool:
        with state.sessions.begin() as session:
            return (
                service.claim_next_appeal(
                    session, _reviewer(request), now=state.clock(), lease_s=settings.review_lease_s
                )
                is not None
            )

    found = await run_in_threadpool(work)
    return RedirectResponse(PAGE.path if found else f"{PAGE.path}?error=none", status_code=303)


@router.post(PAGE.path + "/{appeal_id}/decide")
async def decide(appeal_id: Annotated[int, Path(ge=1, le=2**63 - 1)], request: Request) -> Response:
    """Uphold or overturn the viewer's appeal (new decision version, callback, audit log)."""
    form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
    require_csrf(request, form.get("csrf_token"))
    outcome = str(form.get("outcome") or "")
    raw_tier = str(form.get("tier") or "")
    note = str(form.get("note") or "")[:2000] or None
    if outcome not in service.OUTCOMES or (
        raw_tier and raw_tier not in RiskTier._value2member_map_
    ):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "outcome upheld|overturned, a known tier")
    tier = RiskTier(raw_tier) if outcome == "overturned" and raw_tier else None
    state = _state(request)

    def work() -> None:
        with state.sessions.begin() as session:
            service.decide_appeal(
                session, appeal_id, _reviewer(request), outcome=outcome, tier=tier,
                note=note and note.replace("\x00", ""), now=state.clock(),
                action_rules_file=request.app.state.settings.action_rules_file,
            )  # fmt: skip

    try:
        await run_in_threadpool(work)
    except service.UnknownAppeal as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except service.AppealForbidden as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except service.AppealConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    # the callback is due now: the reaper dispatches it at its next run
    return RedirectResponse(PAGE.path, status_code=303)
