"""The dashboard's actions per hour (SQLite and PostgreSQL) over tests/dashboard_seed.py, with
each decision's action set from its tier as the pipeline would."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import case, update

from moderation.db import make_sessionmaker
from moderation.db import views as v
from moderation.db.models import Decision
from moderation.web.pages import overview
from tests.dashboard_seed import NOW, at, seed_dashboard

WINDOW = v.TimeWindow.last(2, NOW)


@pytest.fixture
def session(engine):
    factory = make_sessionmaker(engine)
    with factory.begin() as s:
        seed_dashboard(s)
        by_tier = case(
            (Decision.tier == "clear", "allow"),
            (Decision.tier == "extreme", "block"),
            (Decision.tier == "high", "quarantine"),  # a custom action
            else_=None,  # a decision from before the action rules
        )
        s.execute(update(Decision).values(enforcement=by_tier))
    with factory() as s:
        yield s


def test_actions_hourly_counts_jobs_per_hour_and_action(session):
    points = {(p.hour, p.action): p.jobs for p in v.actions_hourly(session, WINDOW)}
    assert points == {
        (at(11, 0), "allow"): 2,
        (at(12, 0), "allow"): 1,
        (at(12, 0), "block"): 1,
        (at(12, 0), "quarantine"): 1,
    }
    assert all(p.hour.tzinfo is dt.UTC for p in v.actions_hourly(session, WINDOW))
    whole_day = v.TimeWindow(at(0, 0), NOW)
    hours = {p.hour for p in v.actions_hourly(session, whole_day)}
    assert at(9, 0) not in hours  # the 09:00 medium decision has no action (NULL)


def test_the_overview_chart_and_totals(session):
    points = v.actions_hourly(session, WINDOW)
    assert overview.action_totals(points) == {"allow": 3, "block": 1, "quarantine": 1}
    svg = str(overview.actions_chart(points, WINDOW))
    assert "block" in svg and "quarantine" in svg and overview.CUSTOM_COLOR in svg
