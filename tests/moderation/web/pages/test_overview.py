"""Overview helpers: throughput summary, chart bin sizes, tier table."""

from __future__ import annotations

import datetime as dt

import pytest

from moderation.db import views
from moderation.domain import RiskTier
from moderation.web.pages import overview

T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


def test_summary_weights_turnaround_by_jobs():
    points = [
        views.ThroughputPoint(T0, 3, 2, 1, 0, 10.0),
        views.ThroughputPoint(T0 + dt.timedelta(minutes=1), 1, 0, 0, 1, 50.0),
    ]
    summary = overview.summarise(points)
    assert (summary.finished, summary.failed, summary.quarantined) == (4, 1, 1)
    assert summary.mean_turnaround_s == pytest.approx(20.0)
    assert summary.failure_rate == 0.5 and summary.peak_per_minute == 3
    assert overview.summarise([]).failure_rate is None


@pytest.mark.parametrize(("hours", "minutes"), [(1, 1), (6, 2), (24, 5), (72, 15), (168, 60)])
def test_bin_size_keeps_at_most_300_bars(hours, minutes):
    window = views.TimeWindow.last(hours, T0)
    assert overview.bin_size(window) == dt.timedelta(minutes=minutes)


def test_tier_table_files_clear_jobs_under_a_dash():
    mix = [
        views.TierMixPoint(T0, None, RiskTier.CLEAR, 5),
        views.TierMixPoint(T0, "weapons", RiskTier.HIGH, 2),
        views.TierMixPoint(T0 + dt.timedelta(hours=1), "weapons", RiskTier.HIGH, 1),
    ]
    table = overview.tier_table(mix)
    assert list(table) == ["weapons", "—"] or list(table) == ["—", "weapons"]
    assert table["weapons"][RiskTier.HIGH] == 3 and table["—"][RiskTier.CLEAR] == 5
    assert table["weapons"][RiskTier.EXTREME] == 0
