"""``load_payloads``: the worker's blob fetch (binary format on PostgreSQL), both databases."""

from __future__ import annotations

import os

from moderation.db.repositories.images import load_payloads
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.pipeline.intake import Submission, register_submissions


def test_blobs_come_back_as_the_stored_bytes(engine):
    sessions = make_sessionmaker(engine)
    big = os.urandom(170_000)  # a typical upload; every byte value, NULs included
    small = bytes(range(256))
    located = Submission(sha256="ab" * 32, byte_size=3, storage_uri="file:///tmp/x.png")
    with session_scope(sessions) as s:
        ids = register_submissions(
            s, [Submission.from_bytes(big), Submission.from_bytes(small), located], utcnow()
        )
    with session_scope(sessions) as s:
        payloads = load_payloads(s, [*ids, 987654])
        assert load_payloads(s, []) == {}
    assert set(payloads) == set(ids)  # unknown ids are absent
    first, second, third = (payloads[j] for j in ids)
    assert type(first.data) is bytes and first.data == big
    assert second.data == small and second.sha256 == Submission.from_bytes(small).sha256
    assert third.data is None and third.storage_uri == "file:///tmp/x.png"
    assert first.job_id == ids[0] and first.image_id != second.image_id
