"""Threshold versions: append-only history per category; the newest version is active."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation.db.models import ThresholdVersion
from moderation.domain import RiskTier
from moderation.thresholds.tiers import CategoryThresholds

__all__ = [
    "ThresholdVersionRecord",
    "active_versions",
    "append_version",
    "get_version",
    "history",
    "version_scales",
]


@dataclass(frozen=True)
class ThresholdVersionRecord:
    id: int
    category: str
    policy: str
    value: float
    cutoffs: Mapping[RiskTier, float]
    scale: str
    strategy: str
    reason: str
    stats: Mapping[str, Any]
    created_by: str
    restored_from_id: int | None
    created_at: dt.datetime
    pinned: bool = False  # hand-set: the adjuster leaves the category alone (docs/review.md)


def _record(row: ThresholdVersion) -> ThresholdVersionRecord:
    return ThresholdVersionRecord(
        id=row.id,
        category=row.category,
        policy=row.policy,
        value=row.value,
        cutoffs={RiskTier(k): float(v) for k, v in row.cutoffs.items()},
        scale=row.scale,
        strategy=row.strategy,
        reason=row.reason,
        stats=dict(row.stats or {}),
        created_by=row.created_by,
        restored_from_id=row.restored_from_id,
        created_at=row.created_at,
        pinned=bool(row.pinned),
    )


def append_version(
    session: Session,
    *,
    category: str,
    policy: str,
    cutoffs: Mapping[RiskTier, float],
    scale: str,
    strategy: str,
    reason: str,
    created_by: str,
    stats: Mapping[str, Any] | None = None,
    restored_from_id: int | None = None,
    pinned: bool = False,
) -> ThresholdVersionRecord:
    """Add a new active version for ``category`` (validated like the policy would use it);
    ``pinned`` marks a hand-set version the adjuster must leave alone."""
    checked = CategoryThresholds(category=category, cutoffs=cutoffs, scale=scale)
    row = ThresholdVersion(
        category=category,
        policy=policy,
        value=checked.base,
        cutoffs={tier.value: float(v) for tier, v in checked.cutoffs.items()},
        scale=scale,
        strategy=strategy,
        reason=reason,
        stats=dict(stats or {}),
        created_by=created_by,
        restored_from_id=restored_from_id,
        pinned=pinned,
    )
    session.add(row)
    session.flush()
    return _record(row)


def active_versions(
    session: Session, categories: Iterable[str] | None = None
) -> dict[str, ThresholdVersionRecord]:
    """The newest version of each category (optionally only of ``categories``)."""
    newest = select(func.max(ThresholdVersion.id)).group_by(ThresholdVersion.category)
    if categories is not None:
        newest = newest.where(ThresholdVersion.category.in_(list(categories)))
    rows = session.scalars(select(ThresholdVersion).where(ThresholdVersion.id.in_(newest)))
    return {row.category: _record(row) for row in rows}


def get_version(session: Session, version_id: int) -> ThresholdVersionRecord | None:
    row = session.get(ThresholdVersion, version_id)
    return _record(row) if row is not None else None


def history(
    session: Session, category: str | None = None, limit: int = 100
) -> list[ThresholdVersionRecord]:
    """Versions newest first."""
    query = select(ThresholdVersion).order_by(ThresholdVersion.id.desc()).limit(limit)
    if category is not None:
        query = query.where(ThresholdVersion.category == category)
    return [_record(row) for row in session.scalars(query)]


def version_scales(session: Session, version_ids: Iterable[int]) -> dict[int, str]:
    """The score scale of each of ``version_ids`` (unknown ids are absent)."""
    ids = set(version_ids)
    if not ids:
        return {}
    query = select(ThresholdVersion.id, ThresholdVersion.scale).where(ThresholdVersion.id.in_(ids))
    return {row.id: row.scale for row in session.execute(query)}
