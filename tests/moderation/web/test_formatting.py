"""Jinja filters: durations, percentages, numbers, timestamps, evidence leaves."""

from __future__ import annotations

import datetime as dt

import pytest

from moderation.web import formatting as f


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (-1, "0.0 s"), (4.25, "4.2 s"), (42, "42 s"), (300, "5 min"),
     (7500, "2 h 05 min"), (3 * 86400 + 4 * 3600, "3 d 4 h")],
)  # fmt: skip
def test_duration(seconds, text):
    assert f.duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "—"), (0, "0"), (1234567, "1,234,567"), (0.21, "0.21"), (1 / 3, "0.3333"),
     (2.0, "2"), (1.5, "1.5")],
)  # fmt: skip
def test_number(value, text):
    assert f.number(value) == text


def test_percent_timestamp_scalar():
    assert f.percent(0.375, 2) == "37.50 %" and f.percent(None) == "—"
    assert f.timestamp(dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)) == "2026-01-02 03:04 UTC"
    assert [f.scalar(v) for v in (True, None, 0.5, "x")] == ["true", "null", "0.5", "x"]
