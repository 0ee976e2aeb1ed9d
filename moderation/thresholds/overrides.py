"""The thresholds file (``settings.thresholds_file``): YAML overrides of the preset cut-offs.

Parsing is pure (``parse_threshold_overrides``, ``apply_overrides``); ``load_thresholds_file``
reads the file, re-reading only when it changes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from moderation.domain import RiskTier
from moderation.thresholds.scales import known_scales
from moderation.thresholds.tiers import LADDER, CategoryThresholds, ladder_from_base

__all__ = [
    "ThresholdsFileError",
    "apply_overrides",
    "load_thresholds_file",
    "parse_threshold_overrides",
]


def _number(category: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{category}: {key} must be a number, got {value!r}")
    return float(value)


def _parse_override(category: str, entry: Any) -> CategoryThresholds:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{category}: expected a mapping with scale and base or cutoffs")
    unknown = set(entry) - {"scale", "base", "cutoffs", "severity"}
    if unknown:
        raise ValueError(f"{category}: unknown keys {sorted(unknown)}")
    scale = entry.get("scale")
    if scale not in known_scales():
        raise ValueError(f"{category}: scale must be one of {known_scales()}, got {scale!r}")
    if ("base" in entry) == ("cutoffs" in entry):
        raise ValueError(f"{category}: give exactly one of base or cutoffs")
    if "base" in entry:
        cutoffs = ladder_from_base(_number(category, "base", entry["base"]), scale)
    else:
        raw = entry["cutoffs"]
        if not isinstance(raw, Mapping) or set(raw) != {t.value for t in LADDER}:
            raise ValueError(f"{category}: cutoffs needs exactly {[t.value for t in LADDER]}")
        cutoffs = {RiskTier(k): _number(category, k, v) for k, v in raw.items()}
    severity = entry.get("severity", 2)
    if not isinstance(severity, int) or isinstance(severity, bool):
        raise ValueError(f"{category}: severity must be an integer 1..4, got {severity!r}")
    return CategoryThresholds(category, cutoffs, severity=severity, scale=scale, source="file")


def parse_threshold_overrides(document: Any) -> dict[str, CategoryThresholds]:
    """Validate a thresholds-file document::

        categories:
          weapons: {scale: gme_cosine, base: 0.20}          # ladder moved to this base
          sexual:
            scale: probability
            cutoffs: {warning: 0.2, medium: 0.35, high: 0.6, extreme: 0.9}

    ``severity`` (1–4) is optional and applies only when the scorer declares none. An override
    applies only to a scorer on the same scale. Errors name the category and the problem.
    """
    if document is None:
        return {}
    if not isinstance(document, Mapping) or not isinstance(document.get("categories"), Mapping):
        raise ValueError("a thresholds file needs a top-level `categories:` mapping")
    if set(document) - {"categories"}:
        raise ValueError(f"unknown top-level keys {sorted(set(document) - {'categories'})}")
    return {str(c): _parse_override(str(c), e) for c, e in document["categories"].items()}


def apply_overrides(
    resolved: Mapping[str, CategoryThresholds],
    overrides: Mapping[str, CategoryThresholds],
    severities: Mapping[str, int] | None = None,
) -> dict[str, CategoryThresholds]:
    """``resolved`` with each override on the same scale applied (others are ignored: a
    probability cut-off must never be applied to a cosine). Scorer severities win."""
    severities = severities or {}
    out = dict(resolved)
    for category, current in resolved.items():
        override = overrides.get(category)
        if override is None or override.scale != current.scale:
            continue
        out[category] = CategoryThresholds(
            category,
            override.cutoffs,
            severity=severities.get(category, override.severity),
            scale=override.scale,
            source="file",
        )
    return out


class ThresholdsFileError(ValueError):
    """The thresholds file is missing or invalid; the message names the file and the problem."""


def load_thresholds_file(path: Path | str) -> dict[str, CategoryThresholds]:
    """Validated overrides from ``path`` (format: ``policy.parse_threshold_overrides``).

    Re-read only when the file changes (keyed on its mtime and size), so callers may ask for
    every batch.
    """
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise ThresholdsFileError(f"thresholds file {p}: {exc.strerror or exc}") from None
    return dict(_load(str(p), st.st_mtime_ns, st.st_size))


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime_ns: int, _size: int) -> dict[str, CategoryThresholds]:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return parse_threshold_overrides(document)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, TypeError) as exc:
        raise ThresholdsFileError(f"thresholds file {path}: {exc}") from None
