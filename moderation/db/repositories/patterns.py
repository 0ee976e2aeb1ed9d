"""Pattern sets (catalog versions) and their cached pattern vectors, shared by every host.

A row of ``pattern_embeddings`` holds one (catalog version, model, instruction) matrix as
float32 bytes, row-major, ``len(phrasings)`` rows of ``dim``. Writes are insert-or-ignore on
the unique keys, so workers that compute the same vectors at once never fail: the first
committed row wins. Checking that a row's bytes fit its phrasings is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from moderation.db.models import PatternEmbedding, PatternSet
from moderation.db.repositories._upsert import insert_ignore

__all__ = [
    "StoredPatternVectors",
    "ensure_pattern_set",
    "find_pattern_vectors",
    "replace_pattern_vectors",
    "save_pattern_vectors",
]


@dataclass(frozen=True)
class StoredPatternVectors:
    id: int
    dim: int
    phrasings: list[Any]  # as stored: a corrupted row may hold anything
    vectors: bytes


def ensure_pattern_set(session: Session, version: str, name: str, document: dict[str, Any]) -> int:
    """The id of the ``pattern_sets`` row of catalog ``version``, inserted if missing."""
    table = PatternSet.__table__
    row = {"version": version, "name": name, "document": document}
    insert_ignore(session, table, [row], ["version"])
    return int(session.execute(select(PatternSet.id).filter_by(version=version)).scalar_one())


def find_pattern_vectors(
    session: Session, version: str, model_id: str, instruction: str
) -> StoredPatternVectors | None:
    """The cached vectors of (catalog ``version``, ``model_id``, ``instruction``), if any."""
    stmt = (
        select(PatternEmbedding)
        .join(PatternSet, PatternSet.id == PatternEmbedding.pattern_set_id)
        .where(
            PatternSet.version == version,
            PatternEmbedding.model_id == model_id,
            PatternEmbedding.instruction == instruction,
        )
    )
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        return None
    return StoredPatternVectors(row.id, row.dim, row.phrasings, bytes(row.vectors))


def save_pattern_vectors(
    session: Session,
    pattern_set_id: int,
    model_id: str,
    instruction: str,
    phrasings: Sequence[str],
    dim: int,
    vectors: bytes,
) -> None:
    """Insert the vectors unless a row for the key exists (then the existing row stays)."""
    row = {
        "pattern_set_id": pattern_set_id,
        "model_id": model_id,
        "instruction": instruction,
        "dim": dim,
        "phrasings": list(phrasings),
        "vectors": vectors,
    }
    conflict = ["pattern_set_id", "model_id", "instruction"]
    insert_ignore(session, PatternEmbedding.__table__, [row], conflict)


def replace_pattern_vectors(
    session: Session, row_id: int, phrasings: Sequence[str], dim: int, vectors: bytes
) -> None:
    """Overwrite the content of row ``row_id`` (one found unusable) in place."""
    stmt = (
        update(PatternEmbedding)
        .where(PatternEmbedding.id == row_id)
        .values(dim=dim, phrasings=list(phrasings), vectors=vectors)
    )
    session.execute(stmt)
