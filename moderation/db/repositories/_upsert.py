"""Portable ``INSERT … ON CONFLICT DO NOTHING`` for Postgres and SQLite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

__all__ = ["insert_ignore"]


def insert_ignore(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], conflict: Sequence[str]
) -> None:
    """Insert ``rows``; a row whose ``conflict`` columns already exist is skipped silently.

    This is what makes a redelivered job harmless: the unique constraint decides, not a
    read-then-write race.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = pg_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    elif dialect == "sqlite":
        stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    else:  # pragma: no cover - make_engine refuses other backends
        raise NotImplementedError(f"no upsert for dialect {dialect!r}")
    session.execute(stmt, list(rows))
