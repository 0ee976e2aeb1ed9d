"""Intake is idempotent per intake key: a transaction re-run after a lost COMMIT finds its jobs."""

from __future__ import annotations

from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from moderation.db.models import Job
from moderation.db.retry import in_transaction
from moderation.db.session import make_sessionmaker
from moderation.db.types import utcnow
from moderation.pipeline.intake import Submission, register_submissions
from tests.fakes import png_bytes


class CommitLostOnce:
    """Sessions whose first COMMIT reaches the database, after which the connection 'drops'
    before the reply: the caller sees a transient error and cannot know the commit landed."""

    def __init__(self, engine) -> None:
        self.lost = 0
        self.sessions = make_sessionmaker(engine)
        event.listen(self.sessions, "after_commit", self._drop)

    def _drop(self, _session: Session) -> None:
        if self.lost == 0:
            self.lost += 1
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(Job))


def _submissions(keyed: bool) -> list[Submission]:
    return [
        Submission.from_bytes(png_bytes((i, 0, 0)), intake_key=f"key-{i}" if keyed else None)
        for i in range(3)
    ]


def test_a_rerun_after_a_lost_commit_returns_the_jobs_it_wrote(engine):
    flaky = CommitLostOnce(engine)
    subs = _submissions(keyed=True)
    ids = in_transaction(flaky.sessions, lambda s: register_submissions(s, subs, utcnow()))
    assert flaky.lost == 1  # the first attempt did commit, and was run again
    assert _count(make_sessionmaker(engine)) == 3 and len(set(ids)) == 3
    # the same keys again (e.g. a replay) still add nothing and answer the same ids
    again = in_transaction(
        make_sessionmaker(engine), lambda s: register_submissions(s, subs, utcnow())
    )
    assert again == ids and _count(make_sessionmaker(engine)) == 3


def test_without_keys_a_rerun_would_duplicate_which_is_why_the_api_keys_them(engine):
    flaky = CommitLostOnce(engine)
    subs = _submissions(keyed=False)
    in_transaction(flaky.sessions, lambda s: register_submissions(s, subs, utcnow()))
    assert flaky.lost == 1
    assert _count(make_sessionmaker(engine)) == 6


def test_keyed_and_unkeyed_jobs_mix_in_one_call_and_keep_input_order(engine):
    sessions = make_sessionmaker(engine)
    first = in_transaction(
        sessions, lambda s: register_submissions(s, _submissions(keyed=True)[:2], utcnow())
    )
    mixed = [
        Submission.from_bytes(png_bytes((9, 9, 9))),  # no key: always new
        *_submissions(keyed=True),  # key-0, key-1 known; key-2 new
    ]
    ids = in_transaction(sessions, lambda s: register_submissions(s, mixed, utcnow()))
    assert ids[1:3] == first and len(set(ids)) == 4
    assert _count(sessions) == 4
