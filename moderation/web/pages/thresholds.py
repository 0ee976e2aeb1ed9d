"""Page 3, Thresholds: history per category, calibration and adjuster evidence, and the
precision/recall that reviews and audits estimate for the current cut-offs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from moderation.db import views
from moderation.services.thresholds import in_force
from moderation.thresholds.tiers import CategoryThresholds
from moderation.web import charts
from moderation.web.deps import DashboardState, NowDep, Page, SessionDep, render, window_hours

__all__ = ["PAGE", "router"]

PAGE = Page(path="/thresholds", title="Thresholds", order=3)
router = APIRouter()

KIND_COLORS = {"calibration": "#1971c2", "adjuster": "#f08c00", "rollback": "#7048e8"}


@dataclass(frozen=True)
class CategoryPanel:
    category: str
    versions: Sequence[views.ThresholdHistoryEntry]  # newest first
    estimate: views.CategoryEstimate | None
    chart: Markup
    in_force: CategoryThresholds | None = None  # what the pipeline decides with now (resolver)

    @property
    def active(self) -> views.ThresholdHistoryEntry | None:
        return self.versions[0] if self.versions else None

    @property
    def calibration(self) -> views.ThresholdHistoryEntry | None:
        return next((v for v in self.versions if v.kind == "calibration"), None)

    @property
    def adjuster(self) -> views.ThresholdHistoryEntry | None:
        return next((v for v in self.versions if v.kind == "adjuster"), None)


def history_chart(
    category: str, versions: Sequence[views.ThresholdHistoryEntry], now: dt.datetime
) -> Markup:
    """The base cut-off over time; markers coloured by who wrote the version."""
    ordered = list(reversed(versions))
    if not ordered:
        return charts.step_lines(now - dt.timedelta(days=1), now, [], label=category, y_label="")
    start = ordered[0].created_at
    span = max(now - start, dt.timedelta(hours=1))
    line = charts.Line(
        name=category,
        color="#495057",
        points=[(v.created_at, v.value) for v in ordered],
        marker_colors=[KIND_COLORS[v.kind] for v in ordered],
        tooltips=[f"#{v.id} {v.value:.4g} · {v.kind} · {v.strategy}: {v.reason}" for v in ordered],
    )
    return charts.step_lines(
        start - span * 0.03, now, [line],
        label=f"{category}: base cut-off over time", y_label=f"cut-off ({ordered[-1].scale})",
    )  # fmt: skip


def panels(
    history: Sequence[views.ThresholdHistoryEntry],
    estimates: Sequence[views.CategoryEstimate],
    now: dt.datetime,
    in_force: Mapping[str, CategoryThresholds] | None = None,
) -> list[CategoryPanel]:
    in_force = in_force or {}
    by_estimate = {e.category: e for e in estimates}
    categories = sorted({v.category for v in history} | set(by_estimate) | set(in_force))
    result = []
    for category in categories:
        versions = [v for v in history if v.category == category]
        result.append(
            CategoryPanel(
                category,
                versions,
                by_estimate.get(category),
                history_chart(category, versions, now),
                in_force.get(category),
            )  # fmt: skip
        )
    return result


@router.get(PAGE.path, response_class=HTMLResponse)
def thresholds(
    request: Request,
    session: SessionDep,
    now: NowDep,
    hours: Annotated[int, Depends(window_hours(24))],
    category: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """Threshold history and evidence per category; estimates over the last ``hours``."""
    window = views.TimeWindow.last(hours, now)
    history = views.threshold_history(session, category, limit=1000)
    estimates = views.review_estimates(session, window)
    state: DashboardState = request.app.state.dashboard
    resolved = in_force(session, state.playground.settings, now=now)
    current = resolved.thresholds
    if category is not None:
        estimates = [e for e in estimates if e.category == category]
        current = {c: t for c, t in current.items() if c == category}
    return render(
        request, "thresholds.html", PAGE,
        hours=hours, window=window, now=now, category=category,
        panels=panels(history, estimates, now, current), kind_colors=KIND_COLORS,
        in_force_note=resolved.note,
    )  # fmt: skip
