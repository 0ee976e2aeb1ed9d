"""The seed's scenarios through the worker pipeline, on SQLite and PostgreSQL: a job's
match_text (e-commerce), album tags and decision context, under each named policy."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from moderation.config import Settings
from moderation.db.models import Decision, Job, Score
from moderation.db.repositories.job_views import get_job_view
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import RiskTier
from moderation.embedders.fake import FakeEmbedder
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import PipelineContext, build_context
from moderation.pipeline.intake import Submission, register_submissions
from moderation.scoring.base import Scorer
from moderation.scoring.scorers import build_scorer
from moderation.thresholds.scenarios import JobContext, JobOptions
from tests.fakes import ColourScorer, png_bytes

TITLE = "red running shoes"


def png_of(image) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


SHOE = png_of(FakeEmbedder.image_matching(TITLE))
CAT = png_of(FakeEmbedder.image_matching("a cat"))


@pytest.fixture
def make_ctx(engine: Engine, tmp_path: Path) -> Iterator[Callable[..., PipelineContext]]:
    made: list[PipelineContext] = []

    def make(policy: str = "content_safety", scorer: Scorer | None = None) -> PipelineContext:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, backend="fake", policy=policy, pattern_cache_dir=tmp_path / "cache"
        )
        chosen = scorer if scorer is not None else build_scorer(settings)
        ctx = build_context(settings, chosen, make_sessionmaker(engine), worker="test@host")
        ctx.db_give_up_after_s = 2
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


def submit(ctx: PipelineContext, *items: tuple[bytes, JobOptions]) -> list[int]:
    subs = [Submission.from_bytes(data, options=options) for data, options in items]
    with session_scope(ctx.sessions) as s:
        return register_submissions(s, subs, utcnow())


def decisions(ctx: PipelineContext) -> dict[int, Decision]:
    with session_scope(ctx.sessions) as s:
        return {d.job_id: d for d in s.scalars(select(Decision))}


def test_match_text_is_scored_and_kept_with_the_decision(make_ctx):
    ctx = make_ctx("content_safety")
    ids = submit(
        ctx,
        (SHOE, JobOptions(match_text=TITLE)),
        (CAT, JobOptions(match_text=TITLE)),
        (CAT, JobOptions()),
    )
    outcome = run_batch(ctx, ids)
    assert sorted(outcome.scored) == ids
    rows = decisions(ctx)
    good, bad = rows[ids[0]].scenario["match"], rows[ids[1]].scenario["match"]
    assert good["verdict"] == "accept" and good["score"] > 0.9
    assert bad["verdict"] == "reject" and bad["score"] < 0.25
    assert (good["accept"], good["review"]) == (0.32, 0.25)  # the seed's e-commerce preset
    assert rows[ids[2]].scenario is None  # nothing asked, nothing stored
    # content_safety reports the match but never acts on it
    assert {d.action for d in rows.values()} == {"allow"}
    with session_scope(ctx.sessions) as s:
        assert s.get(Job, ids[0]).match_text == TITLE
        view = get_job_view(s, ids[1])
    assert view is not None and view.scenario["match"]["verdict"] == "reject"


def test_ecommerce_policy_acts_on_the_match(make_ctx):
    ctx = make_ctx("ecommerce")
    review_image = png_of(
        FakeEmbedder.image_matching("red shoes")
    )  # shares 1 of 6 words with the text
    ids = submit(
        ctx,
        (SHOE, JobOptions(match_text=TITLE)),
        (CAT, JobOptions(match_text=TITLE)),
        (CAT, JobOptions()),  # no listing text: safety alone decides
    )
    run_batch(ctx, ids)
    rows = decisions(ctx)
    assert [rows[i].action for i in ids] == ["allow", "reject_listing", "allow"]
    assert {rows[i].policy for i in ids} == {"ecommerce"}
    # a partial match lands between the cut-offs: listing review
    mid = submit(
        ctx, (review_image, JobOptions(match_text="red sneakers boots laces leather trainers"))
    )
    run_batch(ctx, mid)
    match = decisions(ctx)[mid[0]].scenario["match"]
    assert 0.25 <= match["score"] < 0.32, match
    assert match["verdict"] == "review" and decisions(ctx)[mid[0]].action == "review_match"


def test_a_safety_violation_wins_over_an_accepted_match(make_ctx):
    ctx = make_ctx("ecommerce")
    gun = png_of(FakeEmbedder.image_matching("a photo of a gun"))
    ids = submit(ctx, (gun, JobOptions(match_text="a gun")))
    run_batch(ctx, ids)
    decision = decisions(ctx)[ids[0]]
    assert decision.scenario["match"]["verdict"] == "accept"
    assert decision.tier.is_violation and decision.action == "review_now"


def test_tags_only_when_asked_except_under_album_tagging(make_ctx):
    ctx = make_ctx("content_safety")
    ids = submit(ctx, (CAT, JobOptions(tags=True)), (CAT, JobOptions()))
    run_batch(ctx, ids)
    rows = decisions(ctx)
    tags = rows[ids[0]].scenario["tags"]
    assert tags[0]["label"] == "cat" and tags[0]["confidence"] == 1.0
    assert rows[ids[1]].scenario is None

    album = make_ctx("album_tagging")
    ids = submit(album, (CAT, JobOptions()), (CAT, JobOptions(tags=False)))
    run_batch(album, ids)
    rows = decisions(album)
    assert rows[ids[0]].scenario["tags"][0]["label"] == "cat"  # the policy's default
    assert rows[ids[1]].scenario is None  # the job said no


def test_tagging_job_is_scored_by_the_model_not_reused(make_ctx):
    ctx = make_ctx("content_safety")
    run_batch(ctx, submit(ctx, (CAT, JobOptions())))
    ids = submit(ctx, (CAT, JobOptions(tags=True)))
    run_batch(ctx, ids)
    with session_scope(ctx.sessions) as s:
        details = s.scalars(select(Score.details).where(Score.job_id == ids[0])).all()
    assert not any(d and "reused_from_job" in d for d in details)
    assert decisions(ctx)[ids[0]].scenario["tags"][0]["label"] == "cat"


def test_context_moves_the_jobs_thresholds(make_ctx):
    # probability scale: medium from 0.30; criticality high moves it by +0.06 (seed step × 2)
    ctx = make_ctx("content_safety", ColourScorer())
    red = png_bytes((80, 0, 0))  # sexual = 0.314
    ids = submit(
        ctx,
        (red, JobOptions()),
        (red, JobOptions(context=JobContext(criticality="high"))),
        (red, JobOptions(context=JobContext(criticality="low"))),
    )
    outcome = run_batch(ctx, ids)
    assert [outcome.tiers[i] for i in ids] == [RiskTier.MEDIUM, RiskTier.WARNING, RiskTier.MEDIUM]
    rows = decisions(ctx)
    assert rows[ids[1]].scenario == {
        "context": {"candidates": None, "criticality": "high", "image_complexity": "normal"}
    }
    with session_scope(ctx.sessions) as s:
        tier = s.scalar(
            select(Score.tier).where(Score.job_id == ids[1], Score.category == "sexual")
        )
    assert tier == RiskTier.WARNING  # score rows are tiered with the job's thresholds too


def test_text_jobs_on_a_backend_without_text_keep_their_safety_decision(make_ctx):
    ctx = make_ctx("ecommerce", ColourScorer())
    ids = submit(ctx, (png_bytes((0, 0, 0)), JobOptions(match_text=TITLE)))
    outcome = run_batch(ctx, ids)
    assert outcome.scored == ids
    decision = decisions(ctx)[ids[0]]
    assert decision.action == "allow"
    assert decision.scenario["error"] == "the scoring backend cannot embed text"
