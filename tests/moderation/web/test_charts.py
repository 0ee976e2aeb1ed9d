"""SVG charts: scales, ticks, stacking, clipping to the window, escaping, empty states."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from moderation.web import charts

T0 = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 1), (-3, 1), (0.7, 1), (1, 1), (1.2, 2), (3, 5), (7, 10), (10, 10), (11, 20),
     (0.013, 0.02), (460, 500)],
)  # fmt: skip
def test_nice_ceiling(value, expected):
    assert charts.nice_ceiling(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("span", "step"),
    [(dt.timedelta(hours=1), dt.timedelta(minutes=10)),
     (dt.timedelta(hours=24), dt.timedelta(hours=6)),
     (dt.timedelta(days=7), dt.timedelta(days=2))],
)  # fmt: skip
def test_time_ticks_are_round_and_inside(span, step):
    start = T0 + dt.timedelta(minutes=7)
    ticks = charts.time_ticks(start, start + span)
    assert 2 <= len(ticks) <= 7
    assert all(start <= t <= start + span for t in ticks)
    assert all(b - a == step for a, b in zip(ticks, ticks[1:], strict=False))


def _rects(svg: str) -> list[dict[str, float]]:
    return [
        {k: float(v) for k, v in re.findall(r'(x|y|width|height)="([\d.]+)"', rect)}
        for rect in re.findall(r'<rect [^>]*fill="#(?:111111|222222)">', svg)  # bars, not legend
    ]


def test_stacked_bars_stack_layers_and_scale_to_the_total():
    layers = [
        charts.Layer("a", "#111111", {T0: 3, T0 + dt.timedelta(hours=1): 1}),
        charts.Layer("b", "#222222", {T0: 2}),
    ]
    svg = str(charts.stacked_bars(
        T0, T0 + dt.timedelta(hours=2), dt.timedelta(hours=1), layers, label="t", y_label="n",
    ))  # fmt: skip
    rects = _rects(svg)
    assert len(rects) == 3
    a0, b0, a1 = rects  # bin by bin, layers bottom-up
    assert b0["y"] + b0["height"] == pytest.approx(a0["y"], abs=0.2)  # b sits on a
    assert (a0["height"] + b0["height"]) / a1["height"] == pytest.approx(5, rel=0.01)
    assert "a: 3" in svg and "b: 2" in svg


def test_stacked_bars_clip_bins_to_the_window():
    layer = charts.Layer("a", "#111111", {T0: 1, T0 + dt.timedelta(hours=1): 1})
    start, end = T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(hours=1, minutes=30)
    svg = str(
        charts.stacked_bars(start, end, dt.timedelta(hours=1), [layer], label="t", y_label="n")
    )
    first, second = _rects(svg)
    assert first["x"] == pytest.approx(charts.LEFT)
    assert second["x"] + second["width"] <= charts.WIDTH - charts.RIGHT


def test_names_are_escaped():
    svg = str(charts.bar_list([("<script>", 3)], label="a & b", color="#111111"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg


def test_empty_charts_say_so():
    end = T0 + dt.timedelta(hours=1)
    for svg in (
        charts.stacked_bars(T0, end, dt.timedelta(minutes=1), [], label="x", y_label="y"),
        charts.step_lines(T0, end, [], label="x", y_label="y"),
        charts.bar_list([], label="x", color="#000"),
    ):
        assert "no data in this window" in svg and svg.startswith("<svg")


def test_step_lines_hold_each_value_until_the_next_and_the_end():
    line = charts.Line("t", "#333", [(T0, 0.2), (T0 + dt.timedelta(hours=1), 0.3)],
                       marker_colors=["#a00", "#0a0"], tooltips=["first", "second"])  # fmt: skip
    svg = str(charts.step_lines(T0, T0 + dt.timedelta(hours=2), [line], label="x", y_label="y"))
    path = re.search(r'<path d="([^"]+)"', svg).group(1)
    assert re.fullmatch(r"M[\d.]+,[\d.]+H[\d.]+V[\d.]+H[\d.]+", path)
    assert path.endswith(f"H{charts.WIDTH - charts.RIGHT:.1f}")
    assert svg.count("<circle") == 2 and "second" in svg and 'fill="#0a0"' in svg
