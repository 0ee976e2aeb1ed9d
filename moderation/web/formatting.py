"""Jinja filters that turn numbers, durations and timestamps into short readable text."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

__all__ = ["FILTERS", "duration", "number", "percent", "timestamp"]


def duration(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``2 h 05 min``, ``3 d 4 h``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours, minutes = divmod(int(minutes), 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def percent(share: float | None, digits: int = 1) -> str:
    return "—" if share is None else f"{share * 100:.{digits}f} %"


def number(value: float | int | None) -> str:
    """Integers with thousands separators, other floats to 4 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{float(value):.4g}"


def timestamp(moment: dt.datetime | None) -> str:
    return "—" if moment is None else moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def scalar(value: Any) -> str:
    """One JSON leaf for the evidence tables."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return number(value)
    return str(value)


FILTERS = {
    "duration": duration,
    "percent": percent,
    "number": number,
    "timestamp": timestamp,
    "scalar": scalar,
}
