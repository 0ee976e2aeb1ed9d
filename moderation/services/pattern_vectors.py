"""The database as the pattern-vector cache every worker host shares.

``DbPatternVectors`` implements ``moderation.scoring.scorers.SharedPatternVectors``: the first
host to need a (catalog version, model, instruction) matrix embeds it and stores it in
``pattern_sets`` / ``pattern_embeddings``; every other host reads it instead of embedding (and
keeps its own ``.npz`` copy). Vectors travel as little-endian float32 bytes, row-major.
A row that does not fit what is asked for (other phrasings, other width, wrong byte count,
non-finite values) is ignored, and replaced once the vectors are computed again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from moderation.db.repositories.patterns import (
    StoredPatternVectors,
    ensure_pattern_set,
    find_pattern_vectors,
    replace_pattern_vectors,
    save_pattern_vectors,
)
from moderation.db.session import session_scope
from moderation.scoring.scorers import PatternKey

__all__ = ["DbPatternVectors", "decode_vectors", "encode_vectors"]

log = logging.getLogger(__name__)
FLOAT32 = np.dtype("<f4")


def encode_vectors(vectors: np.ndarray) -> bytes:
    """float32 little-endian bytes, row-major."""
    return np.ascontiguousarray(vectors, dtype=FLOAT32).tobytes()


def decode_vectors(
    stored: StoredPatternVectors, phrasings: Sequence[str], dim: int
) -> np.ndarray | None:
    """The [len(phrasings), dim] float32 matrix ``stored`` holds; None when it does not fit."""
    rows = len(phrasings)
    if stored.dim != dim or stored.phrasings != list(phrasings):
        return None
    if len(stored.vectors) != rows * dim * FLOAT32.itemsize:
        return None
    vectors = np.frombuffer(stored.vectors, dtype=FLOAT32).reshape(rows, dim)
    if not np.isfinite(vectors).all():
        return None
    return vectors.astype(np.float32)  # a native, writable copy


class DbPatternVectors:
    """Pattern vectors in the database (``SharedPatternVectors``). A failing database is a
    logged miss, never an error and never retried: the scorer embeds the phrasings itself,
    which costs less than waiting out a database restart at start-up."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def load(self, key: PatternKey) -> np.ndarray | None:
        version, model_id, instruction = key.file_key
        try:
            with session_scope(self.sessions) as session:
                stored = find_pattern_vectors(session, version, model_id, instruction)
        except SQLAlchemyError as exc:
            log.warning("cannot read pattern vectors from the database: %s", exc)
            return None
        if stored is None:
            return None
        vectors = decode_vectors(stored, key.phrasings, key.dim)
        if vectors is None:
            log.warning(
                "ignoring pattern_embeddings row %d: it does not fit catalog %s, model %s",
                stored.id,
                version[:12],
                model_id,
            )
        return vectors

    def store(self, key: PatternKey, vectors: np.ndarray) -> None:
        data = encode_vectors(vectors)
        try:
            with session_scope(self.sessions) as session:
                _save(session, key, data)
        except SQLAlchemyError as exc:
            log.warning("cannot write pattern vectors to the database: %s", exc)


def _save(session: Session, key: PatternKey, data: bytes) -> None:
    """Insert-or-ignore the row; overwrite an existing one only when it does not fit."""
    catalog = key.catalog
    set_id = ensure_pattern_set(
        session, catalog.version, catalog.name, catalog.normalised_content()
    )
    version, model_id, instruction = key.file_key
    existing = find_pattern_vectors(session, version, model_id, instruction)
    if existing is None:
        save_pattern_vectors(session, set_id, model_id, instruction, key.phrasings, key.dim, data)
    elif decode_vectors(existing, key.phrasings, key.dim) is None:
        replace_pattern_vectors(session, existing.id, key.phrasings, key.dim, data)
