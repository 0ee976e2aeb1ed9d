"""Retro-matching runs on both backends: a run stopped half-way (its process failed after the
first page) resumes from its cursor and re-decides every job exactly once."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from moderation.config import Settings
from moderation.db.models import Decision, DecisionHistory, RetroMatch
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import BankKind
from moderation.hashbank.banks import bank_hash
from moderation.hashbank.hashing import compute_pdq
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import build_context
from moderation.pipeline.intake import Submission, register_submissions
from moderation.services import retro
from tests.fakes import ColourScorer
from tests.synthetic_images import synthetic_photo


class Stop(RuntimeError):
    pass


def test_a_failed_run_resumes_from_its_cursor_and_decides_once(engine):
    settings = Settings(_env_file=None, bank_refresh_s=0)  # type: ignore[call-arg]
    sessions = make_sessionmaker(engine)
    ctx = build_context(settings, ColourScorer(), sessions, worker="t@h")
    photo = synthetic_photo(71, (240, 180))
    payloads = []
    for i in range(6):
        buf = io.BytesIO()
        photo.resize((240 - 2 * i, 180 - i)).save(buf, format="JPEG", quality=70 + i)
        payloads.append(buf.getvalue())
    try:
        with session_scope(sessions) as s:
            ids = register_submissions(s, [Submission.from_bytes(p) for p in payloads], utcnow())
        run_batch(ctx, ids)
    finally:
        ctx.close()
    with session_scope(sessions) as s:
        entry = bank_hash(s, bank=BankKind.CONFIRMED_VIOLATION, pdq=compute_pdq(photo),
                          added_by="t", category="violence").entry  # fmt: skip
    assert entry is not None
    with session_scope(sessions) as s:
        before = {d.enforcement for d in s.scalars(select(Decision))}
    assert "block" not in before
    run = retro.start_run(sessions, settings, [entry.id], trigger="test")

    def stop_after_first_page(progress: retro.RetroProgress) -> None:
        raise Stop("worker died")

    with pytest.raises(Stop):
        retro.resume(sessions, settings, run.id, page=3, on_progress=stop_after_first_page)
    with session_scope(sessions) as s:
        first = s.scalar(select(func.count()).select_from(RetroMatch))
    assert 0 < first < 6  # the first page committed, the rest did not run
    done = retro.resume(sessions, settings, run.id, page=3).run
    assert (done.status, done.matched) == ("done", 6)
    assert retro.resume(sessions, settings, run.id).run.redecided == done.redecided
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(RetroMatch)) == 6
        assert s.scalar(select(func.count()).select_from(DecisionHistory)) == 6
    with session_scope(sessions) as s:
        decisions = list(s.scalars(select(Decision)))
        # the packaged rules: a retro hit (source retro) at the bank's tier is blocked; the
        # superseded decision keeps its own action in the history
        assert {d.enforcement for d in decisions} == {"block"}
        detail = decisions[0].enforcement_detail
        assert detail["categories"]["violence"] == {
            "action": "block",
            "escalate": False,
            "source": "retro",
        }
        assert detail["categories"]["sexual"]["source"] == "model"
        assert {h.enforcement for h in s.scalars(select(DecisionHistory))} == before
