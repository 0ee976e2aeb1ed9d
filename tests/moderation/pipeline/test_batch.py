"""The pipeline body against real databases (SQLite and Postgres) with a colour scorer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select, update

from moderation.config import Settings
from moderation.db.models import Decision, Image, Job, ReviewItem, Score
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import JobStatus, RiskTier
from moderation.pipeline.batch import BatchError, run_batch
from moderation.pipeline.context import PipelineContext, build_context
from moderation.pipeline.intake import Submission, register_submissions
from tests.fakes import ColourScorer, noise_jpeg, png_bytes

RED = png_bytes((255, 0, 0))  # sexual 1.0 → extreme
BLACK = png_bytes((0, 0, 0))  # clear


@pytest.fixture
def scorer() -> ColourScorer:
    return ColourScorer(poison_width=13)


@pytest.fixture
def ctx(engine: Engine, scorer: ColourScorer) -> Iterator[PipelineContext]:
    settings = Settings(_env_file=None, max_attempts=2)  # type: ignore[call-arg]
    context = build_context(settings, scorer, make_sessionmaker(engine), worker="test@host")
    context.db_give_up_after_s = 2
    yield context
    context.close()


def submit(ctx: PipelineContext, *payloads: bytes, callback_url: str | None = None) -> list[int]:
    subs = [Submission.from_bytes(p, callback_url=callback_url) for p in payloads]
    with session_scope(ctx.sessions) as s:
        return register_submissions(s, subs, utcnow())


def count(ctx: PipelineContext, model: type) -> int:
    with session_scope(ctx.sessions) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def jobs(ctx: PipelineContext) -> dict[int, Job]:
    with session_scope(ctx.sessions) as s:
        return {j.id: j for j in s.scalars(select(Job))}


def test_batch_scores_good_images_and_fails_bad_ones_with_reasons(ctx, scorer):
    truncated = noise_jpeg()[:-600]
    ids = submit(ctx, RED, BLACK, b"", b"not an image at all", truncated)
    outcome = run_batch(ctx, ids)
    assert sorted(outcome.scored) == ids[:2]
    assert {j: f.code for j, f in outcome.failed.items()} == {
        ids[2]: "empty",
        ids[3]: "not_an_image",
        ids[4]: "truncated",
    }
    assert outcome.tiers == {ids[0]: RiskTier.EXTREME, ids[1]: RiskTier.CLEAR}
    assert scorer.calls == [2]  # one forward for the whole batch
    rows = jobs(ctx)
    assert rows[ids[0]].status == JobStatus.SCORED and rows[ids[0]].scorer == "test-colour-v1"
    assert rows[ids[2]].status == JobStatus.FAILED and "zero bytes" in rows[ids[2]].error
    assert all(r.attempts == 1 for r in rows.values())
    assert count(ctx, Score) == 4 and count(ctx, Decision) == 2
    assert count(ctx, ReviewItem) == 1  # only the extreme one needs review now
    with session_scope(ctx.sessions) as s:
        widths = sorted(w for w in s.scalars(select(Image.width)) if w is not None)
    assert widths == [16, 16]  # facts learnt on decode are stored


def test_redelivery_of_finished_jobs_writes_nothing(ctx, scorer):
    ids = submit(ctx, RED, BLACK)
    run_batch(ctx, ids)
    again = run_batch(ctx, ids)
    assert again.scored == [] and sorted(again.skipped) == ids
    assert count(ctx, Score) == 4 and count(ctx, Decision) == 2
    assert scorer.calls == [2]
    assert {j.attempts for j in jobs(ctx).values()} == {1}


def test_same_image_is_scored_once_and_reused(ctx, scorer):
    first = submit(ctx, RED, RED)  # two jobs, one image
    run_batch(ctx, first)
    assert scorer.calls == [1]
    later = submit(ctx, RED)
    outcome = run_batch(ctx, later)
    assert outcome.scored == later and scorer.calls == [1]  # reused, no forward
    with session_scope(ctx.sessions) as s:
        details = s.scalars(select(Score.details).where(Score.job_id == later[0])).all()
    assert all(d and d["reused_from_job"] in first for d in details)


def test_reuse_can_be_turned_off(ctx, scorer):
    ctx.reuse_scores = False
    run_batch(ctx, submit(ctx, RED))
    run_batch(ctx, submit(ctx, RED))
    assert scorer.calls == [1, 1]


@pytest.mark.parametrize("forward_ahead", [False, True], ids=["in-batch", "look-ahead"])
def test_scorer_crash_redelivers_then_isolates_and_quarantines_the_poison(
    ctx, scorer, forward_ahead
):
    # with the model's look-ahead, a suspect's look-ahead forward of the poison fails (logged)
    # without touching the suspect's own batch: the poison still fails only its own
    ctx.forward_ahead = forward_ahead
    poison = png_bytes((0, 0, 0), size=(13, 13))
    ids = submit(ctx, RED, poison, BLACK)
    with pytest.raises(BatchError):
        run_batch(ctx, ids)
    rows = jobs(ctx)
    # the batch will be delivered again: its jobs wait as queued, not "processing"
    assert {r.status for r in rows.values()} == {JobStatus.QUEUED}
    assert rows[ids[1]].error_code == "scorer_error"
    # Redelivery: every job is now a suspect, scored alone; the healthy ones get through.
    with pytest.raises(BatchError):
        run_batch(ctx, ids)
    rows = jobs(ctx)
    assert rows[ids[0]].status == JobStatus.SCORED
    assert rows[ids[1]].attempts == 2
    # the job after the poison one was not started in this delivery, so it was not counted
    assert rows[ids[2]].status == JobStatus.QUEUED and rows[ids[2]].attempts == 1
    # Third delivery: past max_attempts=2 → quarantined with the last error, nothing raised.
    outcome = run_batch(ctx, ids)
    assert outcome.quarantined == [ids[1]] and outcome.scored == [ids[2]]
    poisoned = jobs(ctx)[ids[1]]
    assert poisoned.status == JobStatus.QUARANTINED and "width 13" in poisoned.error
    assert count(ctx, Score) == 4


def test_unknown_ids_are_skipped(ctx):
    outcome = run_batch(ctx, [987654])
    assert outcome.skipped == [987654]


def test_callbacks_are_marked_pending_only_at_or_above_the_minimum_tier(ctx):
    due: list[int] = []
    ctx.on_callbacks_due = due.extend
    ids = submit(ctx, RED, BLACK, callback_url="https://example.com/hook")
    run_batch(ctx, ids)
    assert due == [ids[0]]
    rows = jobs(ctx)
    assert rows[ids[0]].callback_state == "pending" and rows[ids[1]].callback_state == "skipped"


def test_prefetched_images_are_decoded_ahead(ctx, scorer):
    first, second = submit(ctx, RED), submit(ctx, BLACK)
    run_batch(ctx, first, upcoming=second)
    assert set(ctx.decoder._ahead) == set(second)
    run_batch(ctx, second)
    assert ctx.decoder._ahead == {}
    assert jobs(ctx)[second[0]].status == JobStatus.SCORED


def _look_ahead_loaded(ctx, upcoming):  # type: ignore[no-untyped-def]
    """Wait until the decode look-ahead has read ``upcoming``'s rows. On a loaded machine its
    thread can lag so far that the next batch claims those jobs first; the read then sees a
    delivery count and (rightly, for a redelivery) leaves them to be decoded after the claim,
    and the model's look-ahead skips them: a slower path, not the one tested here."""
    for future in ctx.decoder.pending(upcoming):
        future.result()


def test_the_next_batch_is_forwarded_while_this_one_commits(ctx, scorer):
    """Model look-ahead (a GPU host): the upcoming batch's forward starts after this batch's
    own; the next batch takes its results instead of forwarding again — same scores."""
    ctx.forward_ahead = True
    first, second = submit(ctx, RED), submit(ctx, BLACK, png_bytes((0, 255, 0)))
    run_batch(ctx, first, upcoming=second)
    _look_ahead_loaded(ctx, second)
    outcome = run_batch(ctx, second)
    assert scorer.calls == [1, 2]  # the second batch's forward was the look-ahead
    assert outcome.tiers == {second[0]: RiskTier.CLEAR, second[1]: RiskTier.EXTREME}
    # a batch the look-ahead covered only in part forwards the rest, once
    third, fourth = submit(ctx, png_bytes((0, 0, 255))), submit(ctx, png_bytes((9, 9, 9)))
    run_batch(ctx, third, upcoming=fourth)
    _look_ahead_loaded(ctx, fourth)
    fifth = submit(ctx, png_bytes((7, 7, 7)))
    outcome = run_batch(ctx, [*fourth, *fifth])
    assert scorer.calls == [1, 2, 1, 1, 1]
    assert sorted(outcome.scored) == sorted([*fourth, *fifth])
    with session_scope(ctx.sessions) as s:
        violence = s.scalar(
            select(Score.score).where(Score.job_id == second[1], Score.category == "violence")
        )
    assert violence == pytest.approx(1.0)


def test_a_redelivered_job_is_neither_decoded_nor_forwarded_ahead(ctx, scorer):
    """A job delivered before may be what killed the last worker: the look-ahead leaves it
    alone (a hard crash there would take down the batch being committed). It is decoded and
    forwarded once claimed — alone, as a suspect — and scores the same."""
    from moderation.pipeline.decode import DEFERRED

    ctx.forward_ahead = True
    first, fresh, suspect = (
        submit(ctx, RED),
        submit(ctx, BLACK),
        submit(ctx, png_bytes((0, 255, 0))),
    )
    with session_scope(ctx.sessions) as s:  # its first delivery died after the claim
        s.execute(update(Job).where(Job.id == suspect[0]).values(attempts=1))
    run_batch(ctx, first, upcoming=[*fresh, *suspect])
    assert ctx.decoder._ahead[suspect[0]].result() is DEFERRED  # not decoded ahead
    assert scorer.calls == [1, 1]  # this batch, then the look-ahead of the fresh job only
    outcome = run_batch(ctx, [*fresh, *suspect])
    assert scorer.calls == [1, 1, 1]  # the suspect, forwarded alone once claimed
    assert outcome.tiers == {fresh[0]: RiskTier.CLEAR, suspect[0]: RiskTier.EXTREME}
    rows = jobs(ctx)
    assert rows[suspect[0]].status == JobStatus.SCORED and rows[suspect[0]].attempts == 2
    assert rows[fresh[0]].attempts == 1


def test_without_look_ahead_nothing_is_forwarded_early(ctx, scorer):
    assert ctx.forward_ahead is False  # a CPU scorer: speculative work would compete for CPUs
    first, second = submit(ctx, RED), submit(ctx, BLACK)
    run_batch(ctx, first, upcoming=second)
    assert scorer.calls == [1]


def test_pre_score_hook_can_skip_the_model_and_set_a_tier_floor(ctx, scorer):
    from moderation.pipeline.hooks import PipelineHooks, PreScore

    seen: list[int] = []

    def bank(prepared):
        seen.append(len(prepared))
        return [
            PreScore(skip_model=True, tier_floor=RiskTier.EXTREME, category="violence",
                     bank_entry_id=None, distance=3)
            if p.image.width == 20 else None
            for p in prepared
        ]  # fmt: skip

    ctx.hooks = PipelineHooks(pre_score=bank)
    hit, miss = submit(ctx, png_bytes((0, 0, 0), size=(20, 20)), BLACK)
    outcome = run_batch(ctx, [hit, miss])
    assert seen == [2] and scorer.calls == [1]  # the hit never reached the model
    assert outcome.tiers == {hit: RiskTier.EXTREME, miss: RiskTier.CLEAR}
    with session_scope(ctx.sessions) as s:
        decision = s.scalars(select(Decision).where(Decision.job_id == hit)).one()
        assert (decision.category, decision.match_distance) == ("violence", 3)
    assert count(ctx, ReviewItem) == 1  # extreme → review now


def test_thresholds_file_overrides_the_preset_in_the_pipeline(ctx, tmp_path):
    # dark red: sexual ≈ 0.5 → "medium" on the probability preset (0.30 medium, 0.60 high)
    dark_red = png_bytes((128, 0, 0))
    ids = submit(ctx, dark_red)
    assert run_batch(ctx, ids).tiers == {ids[0]: RiskTier.MEDIUM}
    overrides = tmp_path / "thresholds.yaml"
    overrides.write_text(
        "categories:\n"
        "  sexual:\n"
        "    scale: probability\n"
        "    cutoffs: {warning: 0.1, medium: 0.2, high: 0.3, extreme: 0.45}\n"
    )
    ctx.thresholds_file = overrides
    again = submit(ctx, png_bytes((129, 0, 0)))
    assert run_batch(ctx, again).tiers == {again[0]: RiskTier.EXTREME}


def test_a_pipeline_process_runs_numpy_blas_on_one_thread(ctx):
    """Building the context (it is built above) limits OpenBLAS: its idle threads spin."""
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


@pytest.mark.parametrize(
    ("device_ms", "setting", "expected"),
    [(0, "auto", False), (8, "auto", True), (0, "on", True), (8, "off", False)],
)
def test_forward_ahead_follows_where_the_model_runs(
    engine, settings_factory, device_ms, setting, expected
):
    """MODERATION_FORWARD_AHEAD=auto: on where the model is off the CPU (here the fake's
    simulated device time), off for a CPU model; on/off force it."""
    from moderation.pipeline.forward import runs_off_cpu
    from moderation.scoring.scorers import build_scorer

    settings = settings_factory(
        backend="fake", fake_device_ms_per_image=device_ms, forward_ahead=setting
    )
    scorer = build_scorer(settings)
    assert runs_off_cpu(scorer) is (device_ms > 0)
    context = build_context(settings, scorer, make_sessionmaker(engine), worker="t@h")
    try:
        assert context.forward_ahead is expected
    finally:
        context.close()
