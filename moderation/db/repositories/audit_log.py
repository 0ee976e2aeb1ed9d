"""Audit log: an append-only record of every human or admin action."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from moderation.db.models import AuditLogEntry

__all__ = ["AuditLogRecord", "entries", "record_action"]


@dataclass(frozen=True)
class AuditLogRecord:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: Mapping[str, Any]


def _record(row: AuditLogEntry) -> AuditLogRecord:
    return AuditLogRecord(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=dict(row.details or {}),
    )


def record_action(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditLogRecord:
    """Append one entry in the caller's transaction (it commits or rolls back with the action)."""
    row = AuditLogEntry(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=dict(details or {}),
    )
    session.add(row)
    session.flush()
    return _record(row)


def entries(
    session: Session,
    *,
    target_type: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditLogRecord]:
    """Entries newest first, optionally of one target type or action."""
    query = select(AuditLogEntry).order_by(AuditLogEntry.id.desc()).limit(limit)
    if target_type is not None:
        query = query.where(AuditLogEntry.target_type == target_type)
    if action is not None:
        query = query.where(AuditLogEntry.action == action)
    return [_record(row) for row in session.scalars(query)]
