"""Hand-made SVG charts rendered on the server: no JavaScript, no CDN, no plotting library."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

__all__ = [
    "Layer",
    "Line",
    "bar_list",
    "nice_ceiling",
    "stacked_bars",
    "step_lines",
    "time_ticks",
]

WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 26, 30  # plot margins: y labels left, legend on top
TICK_STEPS = [
    dt.timedelta(minutes=m) for m in (1, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880)
]


@dataclass(frozen=True)
class Layer:
    """One stacked series: value per bin start (bins without a value count as 0)."""

    name: str
    color: str
    values: Mapping[dt.datetime, float]


@dataclass(frozen=True)
class Line:
    """A step line through ``points``; each point may carry a marker colour and a tooltip."""

    name: str
    color: str
    points: Sequence[tuple[dt.datetime, float]]
    marker_colors: Sequence[str] = field(default_factory=tuple)
    tooltips: Sequence[str] = field(default_factory=tuple)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``value`` (1 for anything ≤ 0)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value * (1 - 1e-9):
            return float(step * magnitude)
    return float(10 * magnitude)


def time_ticks(start: dt.datetime, end: dt.datetime, count: int = 6) -> list[dt.datetime]:
    """About ``count`` round UTC instants within [start, end] for an axis."""
    span = end - start
    step = next((s for s in TICK_STEPS if span / s <= count), TICK_STEPS[-1])
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    first = epoch + step * math.ceil((start - epoch) / step)
    return [first + step * i for i in range(int((end - first) / step) + 1)]


def _tick_label(moment: dt.datetime, span: dt.timedelta) -> str:
    if span <= dt.timedelta(days=1):
        return moment.strftime("%H:%M")
    if moment.hour == 0 and moment.minute == 0:
        return moment.strftime("%b %d")
    return moment.strftime("%d %H:%M")


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


class _Frame:
    """Scales from time × value to SVG coordinates, with axes and legend."""

    def __init__(self, start: dt.datetime, end: dt.datetime, y_min: float, y_max: float) -> None:
        self.start, self.end, self.y_min, self.y_max = start, end, y_min, y_max
        self.width = WIDTH - LEFT - RIGHT
        self.height = HEIGHT - TOP - BOTTOM

    def x(self, moment: dt.datetime) -> float:
        return LEFT + self.width * ((moment - self.start) / (self.end - self.start))

    def y(self, value: float) -> float:
        share = (value - self.y_min) / ((self.y_max - self.y_min) or 1.0)
        return TOP + self.height * (1 - share)

    def axes(self, y_label: str) -> list[str]:
        parts = []
        for i in range(5):
            value = self.y_min + (self.y_max - self.y_min) * i / 4
            y = self.y(value)
            parts.append(
                f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{_fmt(value)}</text>"
            )
        span = self.end - self.start
        for tick in time_ticks(self.start, self.end):
            x = self.x(tick)
            # a label at the right edge would be cut off: it ends at its tick instead
            anchor = "end" if x > WIDTH - RIGHT - 24 else "middle"
            parts.append(
                f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + self.height}" '
                f'y2="{TOP + self.height + 4}"/><text class="tick" x="{x:.1f}" '
                f'y="{HEIGHT - 10}" text-anchor="{anchor}">{_tick_label(tick, span)}</text>'
            )
        parts.append(
            f'<text class="axis-label" x="4" y="{TOP - 10}">{escape(y_label)}</text>'
            f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + self.height}" '
            f'y2="{TOP + self.height}"/>'
        )
        return parts


def _legend(entries: Sequence[tuple[str, str]]) -> list[str]:
    parts, x = [], WIDTH - RIGHT
    for name, color in reversed(entries):
        x -= 26 + 7 * len(name)  # swatch, ~7 units per character, gap
        parts.append(
            f'<rect x="{x}" y="6" width="10" height="10" fill="{color}"/>'
            f'<text class="legend" x="{x + 14}" y="15">{escape(name)}</text>'
        )
    return parts


def _svg(label: str, parts: Sequence[str]) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )


def _empty(label: str) -> Markup:
    return _svg(
        label,
        [f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
         "no data in this window</text>"],
    )  # fmt: skip


def stacked_bars(
    start: dt.datetime,
    end: dt.datetime,
    bin_size: dt.timedelta,
    layers: Sequence[Layer],
    *,
    label: str,
    y_label: str,
    describe: Callable[[dt.datetime], str] = lambda b: b.strftime("%Y-%m-%d %H:%M"),
) -> Markup:
    """Bars per time bin, layers stacked bottom-up in the given order."""
    bins = sorted({b for layer in layers for b, v in layer.values.items() if v})
    if not bins:
        return _empty(label)
    totals = {b: sum(layer.values.get(b, 0.0) for layer in layers) for b in bins}
    frame = _Frame(start, end, 0.0, nice_ceiling(max(totals.values())))
    parts = frame.axes(y_label)
    for b in bins:
        # bins at the window's edges are drawn only where they overlap it
        left, right = frame.x(max(b, start)), frame.x(min(b + bin_size, end))
        bar_width = max(1.0, right - left - 1)
        base = 0.0
        for layer in layers:
            value = layer.values.get(b, 0.0)
            if not value:
                continue
            top, bottom = frame.y(base + value), frame.y(base)
            parts.append(
                f'<rect x="{left:.1f}" y="{top:.1f}" width="{bar_width:.1f}" '
                f'height="{max(0.5, bottom - top):.1f}" fill="{layer.color}">'
                f"<title>{escape(describe(b))} · {escape(layer.name)}: {_fmt(value)}</title></rect>"
            )
            base += value
    parts += _legend([(layer.name, layer.color) for layer in layers])
    return _svg(label, parts)


def step_lines(
    start: dt.datetime, end: dt.datetime, lines: Sequence[Line], *, label: str, y_label: str
) -> Markup:
    """Step lines (a value holds until the next point, and until ``end`` for the last one)."""
    values = [v for line in lines for _, v in line.points]
    if not values:
        return _empty(label)
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or abs(high) * 0.1 or 0.1
    frame = _Frame(start, end, low - pad, high + pad)
    parts = frame.axes(y_label)
    for line in lines:
        points = sorted(line.points)
        path, previous = [], None
        for moment, value in points:
            x, y = frame.x(max(moment, start)), frame.y(value)
            path.append(f"M{x:.1f},{y:.1f}" if previous is None else f"H{x:.1f}V{y:.1f}")
            previous = value
        path.append(f"H{frame.x(end):.1f}")
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="{line.color}" '
                     f'stroke-width="2"/>')  # fmt: skip
        for i, (moment, value) in enumerate(points):
            color = line.marker_colors[i] if i < len(line.marker_colors) else line.color
            tip = line.tooltips[i] if i < len(line.tooltips) else f"{_fmt(value)}"
            parts.append(
                f'<circle cx="{frame.x(max(moment, start)):.1f}" cy="{frame.y(value):.1f}" '
                f'r="4" fill="{color}"><title>{escape(tip)}</title></circle>'
            )
    return _svg(label, parts)


def bar_list(items: Sequence[tuple[str, float]], *, label: str, color: str) -> Markup:
    """Horizontal bars, one row per (name, value), longest first as given."""
    if not items:
        return _empty(label)
    row, name_width = 22, 190
    height = TOP + row * len(items) + 8
    top = nice_ceiling(max(v for _, v in items))
    scale = (WIDTH - name_width - RIGHT - 60) / top
    parts = []
    for i, (name, value) in enumerate(items):
        y = TOP + i * row
        parts.append(
            f'<text class="tick" x="{name_width - 8}" y="{y + 15}" text-anchor="end">'
            f'{escape(name)}</text><rect x="{name_width}" y="{y + 3}" '
            f'width="{max(1.0, value * scale):.1f}" height="{row - 6}" fill="{color}">'
            f"<title>{escape(name)}: {_fmt(value)}</title></rect>"
            f'<text class="tick" x="{name_width + value * scale + 6:.1f}" y="{y + 15}">'
            f"{_fmt(value)}</text>"
        )
    body = "".join(parts)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{body}</svg>"
    )
