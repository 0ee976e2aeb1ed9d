"""The thresholds file (``settings.thresholds_file``): YAML overrides of the preset cut-offs."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from moderation.policy import CategoryThresholds, parse_threshold_overrides

__all__ = ["ThresholdsFileError", "load_thresholds_file"]


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
