"""Calibration: labelled scores → a threshold per category → new threshold versions.

The math lives in ``strategies``, the data gathering in ``labels``; this module runs the
chosen strategy per category and writes the result. The caller owns the transaction and
decides whether to commit (``--dry-run`` does not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from moderation.db.repositories import thresholds as versions
from moderation.domain import RiskTier
from moderation.images import DEFAULT_MAX_PIXELS, DEFAULT_WORKING_PIXELS
from moderation.scoring.base import Scorer
from moderation.thresholds.labels import (
    CalibrationError,
    LabelledScore,
    LabelRow,
    SkippedRow,
    given_scores,
    score_paths,
    stored_scores,
)
from moderation.thresholds.strategies import (
    STRATEGIES,
    STRATEGY_PARAMS,
    ThresholdResult,
    ThresholdUnavailable,
    run_strategy,
    score_summary,
)
from moderation.thresholds.tiers import ladder_from_base
from moderation.thresholds.versions import write_version

__all__ = [
    "CalibrationError",
    "CalibrationRun",
    "CategoryCalibration",
    "LabelRow",
    "calibrate",
    "write_versions",
]


@dataclass
class CategoryCalibration:
    """The outcome for one category; ``error`` set when no threshold could be chosen."""

    category: str
    scale: str
    scores: NDArray[np.float64]
    labels: NDArray[np.bool_]
    summary: dict[str, Any]
    result: ThresholdResult | None = None
    cutoffs: dict[RiskTier, float] | None = None
    error: str | None = None
    previous: versions.ThresholdVersionRecord | None = None
    version_id: int | None = None
    weights: NDArray[np.float64] | None = None  # per label; None: every label counts 1
    appeals: int = 0  # labels that are decided appeals (weighted, never audits)


@dataclass
class CalibrationRun:
    labels_file: str
    strategy: str
    params: dict[str, float]
    model_ids: list[str]
    categories: list[CategoryCalibration]
    skipped: list[SkippedRow] = field(default_factory=list)
    written: bool = False

    @property
    def failed(self) -> list[CategoryCalibration]:
        return [c for c in self.categories if c.error is not None]


def _scales(
    session: Session, found: list[LabelledScore], scorer: Scorer | None, scale: str | None
) -> dict[str, str]:
    """Score scale per category: the scorer's, else ``scale``, else the scale of the threshold
    version each stored score was tiered with (a given score: the category's active version).
    Conflicts and unknowns are errors."""
    hints = versions.version_scales(
        session, {s.version_id for s in found if s.version_id is not None}
    )
    given = {s.row.category for s in found if s.row.kind in ("score", "appeal")}
    active = {c: v.scale for c, v in versions.active_versions(session, given).items()}
    out: dict[str, str] = {}
    for item in found:
        category = item.row.category
        candidates = {scorer.scales[category]} if scorer and category in scorer.scales else set()
        if scale:
            candidates.add(scale)
        if not candidates and item.version_id in hints:
            candidates.add(hints[item.version_id])
        if not candidates and item.row.kind in ("score", "appeal") and category in active:
            candidates.add(active[category])
        if category in out:
            candidates.add(out[category])
        if len(candidates) > 1:
            raise CalibrationError(f"{category}: conflicting score scales {sorted(candidates)}")
        if not candidates:
            raise CalibrationError(
                f"cannot tell the score scale of the stored scores of {category!r}; pass --scale"
            )
        out[category] = candidates.pop()
    return out


def _model_ids(found: list[LabelledScore]) -> list[str]:
    """Scores from different models are not comparable: one calibration, one model."""
    ids = sorted({s.model_id for s in found if s.model_id})
    if len(ids) > 1:
        raise CalibrationError(
            f"the labelled images were scored by different models {ids}; calibrate each alone"
        )
    return ids


def _calibrate_category(c: CategoryCalibration, strategy: str, params: Mapping[str, float]) -> None:
    try:
        c.result = run_strategy(strategy, c.scores, c.labels, c.weights, **params)
        c.cutoffs = ladder_from_base(c.result.threshold, c.scale)
    except (ThresholdUnavailable, ValueError, KeyError) as exc:
        c.error = str(exc).strip("'\"")


def _gather(
    session: Session,
    rows: Sequence[LabelRow],
    scorer_factory: Callable[[], Scorer] | None,
    on_progress: Callable[[int, int], None] | None,
    **limits: int,
) -> tuple[list[LabelledScore], list[SkippedRow], Scorer | None]:
    """Stored scores for job_id/sha256 rows; fresh ones for path rows (building the scorer
    only then). ``limits``: max_bytes, max_pixels, working_pixels, batch_size."""
    found = stored_scores(session, [r for r in rows if r.kind in ("job_id", "sha256")])
    found += given_scores([r for r in rows if r.kind == "score"])
    path_rows = [r for r in rows if r.kind == "path"]
    if not path_rows:
        return found, [], None
    if scorer_factory is None:
        raise CalibrationError("rows give image paths but no scorer is available")
    scorer = scorer_factory()
    scored, skipped = score_paths(path_rows, scorer, on_progress=on_progress, **limits)
    return found + scored, skipped, scorer


def calibrate(
    session: Session,
    rows: Sequence[LabelRow],
    *,
    strategy: str,
    params: Mapping[str, float] | None = None,
    scorer_factory: Callable[[], Scorer] | None = None,
    scale: str | None = None,
    categories: Sequence[str] | None = None,
    max_bytes: int = 25 * 1024 * 1024,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    working_pixels: int = DEFAULT_WORKING_PIXELS,
    batch_size: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
    labels_file: str = "",
    weighted: Sequence[tuple[LabelledScore, float]] = (),
) -> CalibrationRun:
    """Gather a score per label row and run ``strategy`` per category. Writes nothing.

    The scorer is built (``scorer_factory()``) only when some rows give image paths.
    ``on_progress(done, total)`` is called as images are scored. ``weighted``: more labelled
    scores, each with its weight (decided appeals, ``row.kind == "appeal"``), added to their
    category's sample (the rows' weigh 1).
    """
    if strategy not in STRATEGIES:
        raise CalibrationError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
    wanted = [r for r in rows if categories is None or r.category in categories]
    if not wanted:
        raise CalibrationError(f"no label rows for categories {list(categories or [])}")
    found, skipped, scorer = _gather(
        session, wanted, scorer_factory, on_progress,
        max_bytes=max_bytes, max_pixels=max_pixels, working_pixels=working_pixels,
        batch_size=batch_size,
    )  # fmt: skip
    if not found:
        raise CalibrationError("no usable labelled scores (every image was skipped)")
    used = {k: v for k, v in (params or {}).items() if k in STRATEGY_PARAMS[strategy]}
    run = CalibrationRun(labels_file, strategy, used, _model_ids(found), [], skipped)
    extra = [(s, w) for s, w in weighted if s.row.category in {f.row.category for f in found}]
    every = [(s, 1.0) for s in found] + extra
    scales = _scales(session, [s for s, _ in every], scorer, scale)
    previous = versions.active_versions(session, scales)
    for category in sorted(scales):
        mine = [(s, w) for s, w in every if s.row.category == category]
        scores = np.array([s.score for s, _ in mine], dtype=np.float64)
        labels = np.array([s.row.is_violation for s, _ in mine], dtype=bool)
        appeals = sum(1 for s, _ in mine if s.row.kind == "appeal")
        c = CategoryCalibration(
            category,
            scales[category],
            scores,
            labels,
            score_summary(scores, labels),
            previous=previous.get(category),
            weights=np.array([w for _, w in mine]) if appeals else None,
            appeals=appeals,
        )
        _calibrate_category(c, strategy, run.params)
        run.categories.append(c)
    return run


def write_versions(
    session: Session, run: CalibrationRun, *, actor: str, policy: str, reason: str | None = None
) -> None:
    """Append one threshold version per calibrated category, each with its evidence, and an
    audit-log entry. Refuses when any category failed: a calibration lands whole or not at all."""
    if run.failed:
        raise CalibrationError(
            "not writing: " + "; ".join(f"{c.category}: {c.error}" for c in run.failed)
        )
    for c in run.categories:
        assert c.result is not None and c.cutoffs is not None
        stats = {
            **c.result.as_stats(),
            "summary": c.summary,
            "labels_file": run.labels_file,
            "model_ids": run.model_ids,
            "skipped_rows": len(run.skipped),
            "appeal_labels": c.appeals,
            "ladder": "policy.ladder_from_base",
        }
        record = write_version(
            session,
            kind="calibrate",
            category=c.category,
            policy=policy,
            cutoffs=c.cutoffs,
            scale=c.scale,
            strategy=run.strategy,
            reason=reason or f"calibrate: {c.result.reason}",
            actor=actor,
            stats=stats,
            details={
                "threshold": c.result.threshold,
                "strategy": run.strategy,
                "labels_file": run.labels_file,
                "previous_version_id": c.previous.id if c.previous else None,
            },
        )
        c.version_id = record.id
    run.written = True
