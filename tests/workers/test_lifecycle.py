"""A worker pool process builds its scorer with the database as the shared pattern cache."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select, update

from moderation.db import make_engine
from moderation.db.models import PatternEmbedding
from moderation.db.retry import in_transaction
from moderation.db.session import make_sessionmaker
from workers.celery_app import make_celery
from workers.lifecycle import build_worker_context


def test_a_second_worker_host_takes_the_pattern_vectors_from_the_database(
    db_url, settings_factory, tmp_path
):
    def worker(host: str):
        settings = settings_factory(
            backend="fake", database_url=db_url, pattern_cache_dir=tmp_path / host
        )
        return build_worker_context(make_celery(settings), host)

    first = worker("host-a")
    vectors = first.scorer.pattern_vectors["query"]
    first.close()
    # Turn the stored matrix around: only a worker that read the DB can end up with it.
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    flipped = (-vectors).astype("<f4").tobytes()
    try:
        in_transaction(
            sessions, lambda s: s.execute(update(PatternEmbedding).values(vectors=flipped))
        )
        instructions = in_transaction(
            sessions, lambda s: list(s.scalars(select(PatternEmbedding.instruction)))
        )
    finally:
        engine.dispose()
    assert len(instructions) == len(first.scorer.pattern_vectors)
    second = worker("host-b")
    try:
        np.testing.assert_array_equal(second.scorer.pattern_vectors["query"], -vectors)
        assert list((tmp_path / "host-b").glob("*.npz"))  # kept locally from now on
    finally:
        second.close()
