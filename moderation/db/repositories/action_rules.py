"""Action rule versions: append-only rule sets, the newest in force."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.db.models import ActionRuleVersion

__all__ = ["ActionRuleVersionRecord", "active_version", "append_version", "get_version", "history"]


@dataclass(frozen=True)
class ActionRuleVersionRecord:
    id: int
    rules: Mapping[str, Any]
    reason: str
    created_by: str
    restored_from_id: int | None
    created_at: dt.datetime


def _record(row: ActionRuleVersion) -> ActionRuleVersionRecord:
    return ActionRuleVersionRecord(
        id=row.id,
        rules=dict(row.rules),
        reason=row.reason,
        created_by=row.created_by,
        restored_from_id=row.restored_from_id,
        created_at=row.created_at,
    )


def append_version(
    session: Session,
    *,
    rules: Mapping[str, Any],
    reason: str,
    created_by: str,
    restored_from_id: int | None = None,
) -> ActionRuleVersionRecord:
    row = ActionRuleVersion(
        rules=dict(rules), reason=reason, created_by=created_by, restored_from_id=restored_from_id
    )
    session.add(row)
    session.flush()
    return _record(row)


def active_version(session: Session) -> ActionRuleVersionRecord | None:
    row = session.scalars(
        select(ActionRuleVersion).order_by(ActionRuleVersion.id.desc()).limit(1)
    ).first()
    return _record(row) if row is not None else None


def get_version(session: Session, version_id: int) -> ActionRuleVersionRecord | None:
    row = session.get(ActionRuleVersion, version_id)
    return _record(row) if row is not None else None


def history(session: Session, *, limit: int = 100) -> list[ActionRuleVersionRecord]:
    rows = session.scalars(
        select(ActionRuleVersion).order_by(ActionRuleVersion.id.desc()).limit(limit)
    )
    return [_record(r) for r in rows]
