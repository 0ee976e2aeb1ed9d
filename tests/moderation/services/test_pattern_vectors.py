"""The database as the pattern-vector cache shared by every worker host (SQLite and Postgres).

Each "host" is an ``EmbeddingScorer`` with its own, initially empty ``.npz`` directory; the
hosts share one database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from moderation.db import make_engine
from moderation.db.models import PatternEmbedding, PatternSet
from moderation.db.retry import in_transaction
from moderation.db.session import make_sessionmaker
from moderation.embedders.base import DEFAULT_IMAGE_INSTRUCTION, QUERY_INSTRUCTION
from moderation.scoring.catalog import catalog_from_mapping
from moderation.scoring.scorers import (
    EmbeddingScorer,
    PatternKey,
    PatternVectorCache,
    build_scorer,
)
from moderation.services.pattern_vectors import DbPatternVectors, decode_vectors, encode_vectors
from tests.moderation.scoring.test_scorers import SMALL, CountingEmbedder

CATALOG = catalog_from_mapping({**SMALL, "fusion": {"query": 0.6, "corpus": 0.4}})
LOGGER = "moderation.services.pattern_vectors"


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def host(sessions: sessionmaker[Session], cache_dir: Path) -> EmbeddingScorer:
    """A worker host: a fresh embedder, its own file cache, the shared database."""
    cache = PatternVectorCache(cache_dir)
    return EmbeddingScorer(CountingEmbedder(), CATALOG, cache, DbPatternVectors(sessions))


def stored_rows(sessions: sessionmaker[Session]) -> list[PatternEmbedding]:
    return in_transaction(sessions, lambda s: list(s.scalars(select(PatternEmbedding))))


def test_a_second_host_reads_the_vectors_from_the_database(sessions, tmp_path):
    first = host(sessions, tmp_path / "host-a")
    assert sorted(i for _, i in first.embedder.text_calls) == sorted(
        [QUERY_INSTRUCTION, DEFAULT_IMAGE_INSTRUCTION]
    )
    rows = stored_rows(sessions)
    assert sorted(r.instruction for r in rows) == sorted(
        [QUERY_INSTRUCTION, DEFAULT_IMAGE_INSTRUCTION]
    )
    phrasings = list(first.table.phrasings)
    for row in rows:  # compact: float32 bytes of [phrasings, dim]
        assert row.phrasings == phrasings and row.dim == first.embedder.info.dim
        assert len(row.vectors) == 4 * row.dim * len(phrasings)
    sets = in_transaction(sessions, lambda s: list(s.scalars(select(PatternSet))))
    assert [(p.version, p.name) for p in sets] == [(CATALOG.version, "small")]
    assert sets[0].document == CATALOG.normalised_content()

    second = host(sessions, tmp_path / "host-b")
    assert second.embedder.text_calls == []  # nothing embedded: the DB had it
    for dimension, vectors in first.pattern_vectors.items():
        np.testing.assert_array_equal(second.pattern_vectors[dimension], vectors)
    assert len(list((tmp_path / "host-b").glob("*.npz"))) == 2  # and now its own files

    third = EmbeddingScorer(CountingEmbedder(), CATALOG, PatternVectorCache(tmp_path / "host-c"))
    assert third.embedder.text_calls  # without the shared store: embeds, files only


def _corrupt(kind: str):
    if kind == "short bytes":
        return {"vectors": b"\x00" * 12}
    if kind == "other phrasings":
        return {"phrasings": ["something", "else"]}
    if kind == "other width":
        return {"dim": 7}
    return {"vectors": np.full((8, 768), np.nan, "<f4").tobytes()}  # non-finite


@pytest.mark.parametrize("kind", ["short bytes", "other phrasings", "other width", "nan"])
def test_a_row_that_does_not_fit_is_ignored_recomputed_and_replaced(
    sessions, tmp_path, caplog, kind
):
    first = host(sessions, tmp_path / "host-a")
    in_transaction(sessions, lambda s: s.execute(update(PatternEmbedding).values(**_corrupt(kind))))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        second = host(sessions, tmp_path / "host-b")
    assert len(second.embedder.text_calls) == 2  # both dimensions embedded again
    assert "does not fit" in caplog.text
    for dimension, vectors in first.pattern_vectors.items():
        np.testing.assert_array_equal(second.pattern_vectors[dimension], vectors)
    third = host(sessions, tmp_path / "host-c")  # the rows were repaired in place
    assert third.embedder.text_calls == [] and len(stored_rows(sessions)) == 2


def test_concurrent_writers_of_the_same_vectors_all_succeed(db_url, tmp_path, caplog):
    """Hosts that miss at once all store; the unique keys keep one row, nobody fails."""
    writers = 4
    engines = [make_engine(db_url) for _ in range(writers)]
    stores = [DbPatternVectors(make_sessionmaker(e)) for e in engines]
    embedder = CountingEmbedder()
    phrasings = tuple(p for _, p in CATALOG.pairs())
    key = PatternKey(CATALOG, embedder.info.model_id, QUERY_INSTRUCTION, phrasings, 768)
    vectors = embedder.embed_texts(list(phrasings), QUERY_INSTRUCTION)
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(store: DbPatternVectors) -> None:
        try:
            barrier.wait()
            store.store(key, vectors)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        threads = [threading.Thread(target=write, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    try:
        assert errors == [] and caplog.records == []  # no write failed, not even quietly
        sessions = make_sessionmaker(engines[0])
        count = in_transaction(sessions, lambda s: s.scalar(select(func.count(PatternSet.id))))
        assert count == 1 and len(stored_rows(sessions)) == 1
        np.testing.assert_array_equal(stores[0].load(key), vectors)
    finally:
        for e in engines:
            e.dispose()


def test_concurrent_hosts_build_scorers_against_one_database(db_url, tmp_path, caplog):
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    barrier = threading.Barrier(3)
    built: list[EmbeddingScorer] = []

    def start(n: int) -> None:
        barrier.wait()
        built.append(host(sessions, tmp_path / f"host-{n}"))

    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            threads = [threading.Thread(target=start, args=(n,)) for n in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(built) == 3 and caplog.records == []
        assert len(stored_rows(sessions)) == 2  # one per instruction, whoever won
    finally:
        engine.dispose()


def test_a_database_without_the_tables_is_a_logged_miss(tmp_path, caplog):
    """The shared store never stops scoring: here the DB was never migrated."""
    engine = make_engine(f"sqlite:///{tmp_path / 'unmigrated.sqlite3'}")
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            scorer = host(make_sessionmaker(engine), tmp_path / "files")
    finally:
        engine.dispose()
    assert len(scorer.embedder.text_calls) == 2
    assert "cannot read" in caplog.text and "cannot write" in caplog.text
    assert len(list((tmp_path / "files").glob("*.npz"))) == 2


def test_build_scorer_passes_the_shared_store(sessions, settings_factory, tmp_path):
    settings = settings_factory(backend="fake", pattern_cache_dir=tmp_path / "a")
    build_scorer(settings, CATALOG, DbPatternVectors(sessions))
    assert len(stored_rows(sessions)) == 2


def test_encoding_round_trips_and_refuses_what_does_not_fit():
    vectors = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    from moderation.db.repositories.patterns import StoredPatternVectors

    stored = StoredPatternVectors(1, 4, ["a", "b", "c"], encode_vectors(vectors))
    np.testing.assert_array_equal(decode_vectors(stored, ["a", "b", "c"], 4), vectors)
    assert decode_vectors(stored, ["a", "b", "c"], 3) is None
    assert decode_vectors(stored, ["a", "b"], 4) is None
    assert decode_vectors(stored, ["a", "b", "x"], 4) is None
