"""Page 5, Banks: hash-bank hits per hour, entries per bank and category, and the
retro-matching runs with their progress and outcome (docs/hash-banks.md#lifecycle-of-a-signal)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from moderation.services.banks import bank_activity
from moderation.web import charts
from moderation.web.deps import NowDep, Page, SessionDep, render, window_hours

__all__ = ["PAGE", "router"]

PAGE = Page(path="/banks", title="Banks", order=5)
router = APIRouter()


@router.get(PAGE.path, response_class=HTMLResponse)
def banks(
    request: Request,
    session: SessionDep,
    now: NowDep,
    hours: Annotated[int, Depends(window_hours(24))],
) -> HTMLResponse:
    """Bank hits per hour over the last ``hours``, entry counts, recent retro-matching runs."""
    activity = bank_activity(session, now, hours)
    hits = [(f"{hour:%m-%d %H:00}", float(n)) for hour, n in activity.hits_per_hour if n]
    chart = charts.bar_list(hits, label="bank hits per hour (hours with hits)", color="#c92a2a")
    return render(
        request, "banks.html", PAGE,
        hours=hours, now=now, activity=activity, chart=chart,
        total_hits=sum(n for _, n in activity.hits_per_hour),
    )  # fmt: skip
