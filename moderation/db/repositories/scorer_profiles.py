"""Scorer profiles: what each pipeline process scores with, one row per worker name."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.db.models import ScorerProfileRow
from moderation.db.repositories._upsert import insert_ignore

__all__ = ["ScorerProfileRecord", "live_profiles", "register_profile"]


@dataclass(frozen=True)
class ScorerProfileRecord:
    worker: str
    model_id: str
    backend: str
    catalog_version: str
    categories: Mapping[str, Mapping[str, Any]]  # category → {scale, severity, base}
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime


def _record(row: ScorerProfileRow) -> ScorerProfileRecord:
    return ScorerProfileRecord(
        worker=row.worker,
        model_id=row.model_id,
        backend=row.backend,
        catalog_version=row.catalog_version,
        categories={str(c): dict(v) for c, v in (row.categories or {}).items()},
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
    )


def register_profile(
    session: Session,
    *,
    worker: str,
    model_id: str,
    backend: str,
    catalog_version: str,
    categories: Mapping[str, Mapping[str, Any]],
    now: dt.datetime,
) -> ScorerProfileRecord:
    """Upsert ``worker``'s profile, seen at ``now``: one cheap insert-or-update. A worker
    whose profile changed (another model or catalog) starts a new ``first_seen_at``."""
    wanted = {
        "model_id": model_id,
        "backend": backend,
        "catalog_version": catalog_version,
        "categories": {c: dict(v) for c, v in categories.items()},
    }
    table = ScorerProfileRow.__table__
    row_values = {"worker": worker, **wanted, "first_seen_at": now, "last_seen_at": now}
    insert_ignore(session, table, [row_values], conflict=["worker"])  # type: ignore[arg-type]
    row = session.scalars(
        select(ScorerProfileRow).where(ScorerProfileRow.worker == worker).with_for_update()
    ).one()
    if any(getattr(row, k) != v for k, v in wanted.items()):
        for key, value in wanted.items():
            setattr(row, key, value)
        row.first_seen_at = now
    row.last_seen_at = now
    session.flush()
    return _record(row)


def live_profiles(session: Session, *, since: dt.datetime) -> list[ScorerProfileRecord]:
    """Profiles seen at or after ``since``, most recently seen first."""
    rows = session.scalars(
        select(ScorerProfileRow)
        .where(ScorerProfileRow.last_seen_at >= since)
        .order_by(ScorerProfileRow.last_seen_at.desc(), ScorerProfileRow.id.desc())
    )
    return [_record(row) for row in rows]
