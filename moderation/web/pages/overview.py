"""Page 1, Overview: throughput, tier mix, backlog, failures, review activity and audit load."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from moderation.db import views
from moderation.domain import TIERS, RiskTier
from moderation.services.retention import retention_by_day
from moderation.web import charts
from moderation.web.deps import NowDep, Page, SessionDep, render, window_hours

__all__ = ["PAGE", "router"]

PAGE = Page(path="/overview", title="Overview", order=1)
router = APIRouter()

OUTCOME_COLORS = {"scored": "#2f9e44", "failed": "#e03131", "quarantined": "#7048e8"}
TIER_COLORS = {tier: look.colour for tier, look in TIERS.items()}
KIND_COLORS = {"queue": "#1971c2", "audit": "#0ca678", "direct": "#868e96"}
BIN_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120)
MAX_BARS = 300


@dataclass(frozen=True)
class Summary:
    finished: int
    failed: int
    quarantined: int
    mean_turnaround_s: float | None
    peak_per_minute: int

    @property
    def failure_rate(self) -> float | None:
        return (self.failed + self.quarantined) / self.finished if self.finished else None


def summarise(points: Sequence[views.ThroughputPoint]) -> Summary:
    finished = sum(p.finished for p in points)
    timed = [(p.mean_turnaround_s, p.finished) for p in points if p.mean_turnaround_s is not None]
    weight = sum(n for _, n in timed)
    return Summary(
        finished=finished,
        failed=sum(p.failed for p in points),
        quarantined=sum(p.quarantined for p in points),
        mean_turnaround_s=sum(s * n for s, n in timed) / weight if weight else None,
        peak_per_minute=max((p.finished for p in points), default=0),
    )


def bin_size(window: views.TimeWindow) -> dt.timedelta:
    """The smallest round bin that keeps the throughput chart at ≤ 300 bars."""
    minutes = (window.end - window.start) / dt.timedelta(minutes=1)
    chosen = next((m for m in BIN_MINUTES if minutes / m <= MAX_BARS), BIN_MINUTES[-1])
    return dt.timedelta(minutes=chosen)


def _bin_of(moment: dt.datetime, size: dt.timedelta) -> dt.datetime:
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    return epoch + size * ((moment - epoch) // size)


def throughput_chart(points: Sequence[views.ThroughputPoint], window: views.TimeWindow) -> Markup:
    size = bin_size(window)
    values: dict[str, dict[dt.datetime, float]] = {
        name: defaultdict(float) for name in OUTCOME_COLORS
    }
    for p in points:
        b = _bin_of(p.minute, size)
        values["scored"][b] += p.scored
        values["failed"][b] += p.failed
        values["quarantined"][b] += p.quarantined
    layers = [charts.Layer(name, color, values[name]) for name, color in OUTCOME_COLORS.items()]
    unit = f"{size // dt.timedelta(minutes=1)} min"
    return charts.stacked_bars(
        window.start, window.end, size, layers,
        label=f"finished jobs per {unit}", y_label=f"jobs / {unit}",
    )  # fmt: skip


def tier_mix_chart(mix: Sequence[views.TierMixPoint], window: views.TimeWindow) -> Markup:
    # Clear jobs (~97 %) would flatten everything else: the chart stacks the other tiers only.
    values: dict[RiskTier, dict[dt.datetime, float]] = defaultdict(lambda: defaultdict(float))
    for p in mix:
        values[p.tier][p.hour] += p.jobs
    layers = [
        charts.Layer(tier.value, TIER_COLORS[tier], values[tier])
        for tier in RiskTier
        if tier is not RiskTier.CLEAR
    ]
    return charts.stacked_bars(
        window.start, window.end, dt.timedelta(hours=1), layers,
        label="jobs per hour by tier (clear not shown)", y_label="jobs / hour",
    )  # fmt: skip


ACTION_COLORS = {  # built-in actions, mildest to most severe; custom actions get CUSTOM_COLOR
    "blur": "#fcc419",
    "age_restrict": "#ae3ec9",
    "hold": "#fd7e14",
    "block": "#c92a2a",
}
CUSTOM_COLOR = "#495057"


def actions_chart(points: Sequence[views.ActionPoint], window: views.TimeWindow) -> Markup:
    # "allow" is most jobs and would flatten the rest, as clear does on the tier chart
    values: dict[str, dict[dt.datetime, float]] = defaultdict(lambda: defaultdict(float))
    for p in points:
        if p.action != "allow":
            values[p.action][p.hour] += p.jobs
    names = [a for a in ACTION_COLORS if a in values] + sorted(set(values) - set(ACTION_COLORS))
    layers = [
        charts.Layer(name, ACTION_COLORS.get(name, CUSTOM_COLOR), values[name]) for name in names
    ]
    return charts.stacked_bars(
        window.start, window.end, dt.timedelta(hours=1), layers,
        label="jobs per hour by action (allow not shown)", y_label="jobs / hour",
    )  # fmt: skip


def action_totals(points: Sequence[views.ActionPoint]) -> dict[str, int]:
    """Jobs in the window per action, most frequent first."""
    totals: dict[str, int] = defaultdict(int)
    for p in points:
        totals[p.action] += p.jobs
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))


def tier_table(mix: Sequence[views.TierMixPoint]) -> dict[str, dict[RiskTier, int]]:
    """Jobs in the window per deciding category (``—`` for clear jobs) and tier."""
    table: dict[str, dict[RiskTier, int]] = defaultdict(lambda: dict.fromkeys(RiskTier, 0))
    for p in mix:
        table[p.category or "—"][p.tier] += p.jobs
    return dict(sorted(table.items()))


def review_chart(latency: Sequence[views.ReviewLatencyPoint], window: views.TimeWindow) -> Markup:
    values: dict[str, dict[dt.datetime, float]] = defaultdict(dict)
    for p in latency:
        values[p.kind][p.hour] = p.reviews
    layers = [charts.Layer(kind, color, values[kind]) for kind, color in KIND_COLORS.items()]
    return charts.stacked_bars(
        window.start, window.end, dt.timedelta(hours=1), layers,
        label="reviews per hour by item kind", y_label="reviews / hour",
    )  # fmt: skip


def latency_by_kind(latency: Sequence[views.ReviewLatencyPoint]) -> list[dict[str, object]]:
    """Reviews, mean and longest queue wait per item kind over the window."""
    rows: list[dict[str, object]] = []
    for kind in KIND_COLORS:
        points = [p for p in latency if p.kind == kind]
        waits = [(p.mean_wait_s, p.max_wait_s or 0.0, p.reviews) for p in points
                 if p.mean_wait_s is not None]  # fmt: skip
        n = sum(reviews for _, _, reviews in waits)
        if points:
            rows.append({
                "kind": kind,
                "reviews": sum(p.reviews for p in points),
                "mean_wait_s": sum(mean * r for mean, _, r in waits) / n if n else None,
                "max_wait_s": max((longest for _, longest, _ in waits), default=None),
            })  # fmt: skip
    return rows


@router.get(PAGE.path, response_class=HTMLResponse)
def overview(
    request: Request,
    session: SessionDep,
    now: NowDep,
    hours: Annotated[int, Depends(window_hours(24))],
) -> HTMLResponse:
    """Ops overview of the last ``hours``."""
    window = views.TimeWindow.last(hours, now)
    throughput = views.throughput_per_minute(session, window)
    mix = views.tier_mix_hourly(session, window)
    actions = views.actions_hourly(session, window)
    backlog = views.backlog(session, now)
    failures = views.failures_by_reason(session, window)
    latency = views.review_latency(session, window)
    return render(
        request, "overview.html", PAGE,
        hours=hours, window=window, now=now, summary=summarise(throughput),
        throughput_chart=throughput_chart(throughput, window),
        tier_chart=tier_mix_chart(mix, window), tier_table=tier_table(mix), tiers=list(RiskTier),
        actions_chart=actions_chart(actions, window), action_totals=action_totals(actions),
        backlog=backlog,
        backlog_chart=charts.bar_list(
            [(f"{b.queue} · {b.status}", b.items) for b in backlog],
            label="items waiting now", color="#1971c2",
        ),
        failures=failures,
        failure_chart=charts.bar_list(
            [(f"{f.status} · {f.error_code}", f.jobs) for f in failures],
            label="failed and quarantined jobs by reason", color="#e03131",
        ),
        review_chart=review_chart(latency, window), latency=latency_by_kind(latency),
        agreement=views.reviewer_agreement(session, window),
        retention=retention_by_day(session, now), retention_days=_retention_days(request),
        audit_load=views.audit_load(session, window), audit=_audit_settings(request),
    )  # fmt: skip


def _retention_days(request: Request) -> dict[str, int]:
    settings = request.app.state.settings
    return {"clear": settings.retention_clear_days, "reviewed": settings.retention_reviewed_days}


def _audit_settings(request: Request) -> dict[str, object]:
    settings = request.app.state.settings
    return {"design": settings.audit_design, "fraction": settings.audit_fraction}
