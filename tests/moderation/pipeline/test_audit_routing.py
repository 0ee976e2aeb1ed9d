"""Audit sampling below the threshold, through the pipeline (SQLite and Postgres)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, select

from moderation.config import Settings
from moderation.db.models import AuditSample, ReviewItem, Score
from moderation.db.session import make_sessionmaker, session_scope
from moderation.domain import ReviewItemKind
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import PipelineContext, build_context
from moderation.pipeline.hooks import (
    AuditSamplingRouter,
    DecidedJob,
    PipelineHooks,
    audit_design_for,
    audit_uniform,
    build_hooks,
    image_uniform,
)
from moderation.thresholds.audit import AuditDesign
from moderation.thresholds.resolver import resolve_thresholds
from moderation.thresholds.scales import UnknownScale
from moderation.thresholds.tiers import decide
from tests.fakes import ColourScorer, png_bytes

from .test_batch import submit

BASE = 0.30  # the probability preset's violation cut-off (ColourScorer's scale)


@pytest.fixture
def ctx(engine: Engine, request: pytest.FixtureRequest) -> Iterator[PipelineContext]:
    design = getattr(request, "param", "per_category")
    settings = Settings(_env_file=None, audit_fraction=0.3, audit_design=design)  # type: ignore[call-arg]
    context = build_context(settings, ColourScorer(), make_sessionmaker(engine), worker="t@h")
    context.db_give_up_after_s = 2
    yield context
    context.close()


def images(n: int) -> list[bytes]:
    """n distinct images: sexual (red) spread below the threshold, violence (green) low."""
    return [png_bytes((int(255 * BASE * i / n), 3 * (i % 7), 0)) for i in range(n)]


def rows(ctx: PipelineContext, model: type) -> list:
    with session_scope(ctx.sessions) as s:
        s.expire_on_commit = False
        return list(s.scalars(select(model).order_by(model.id)))


def test_build_hooks_samples_only_when_a_fraction_is_set():
    off = build_hooks(Settings(_env_file=None, audit_fraction=0), None)  # type: ignore[call-arg,arg-type]
    on = build_hooks(Settings(_env_file=None, audit_fraction=0.1), None)  # type: ignore[call-arg,arg-type]
    assert off.route_review is PipelineHooks().route_review  # plain queue routing
    assert isinstance(on.route_review, AuditSamplingRouter) and on.route_review.fraction == 0.1
    assert on.route_review.design_kind == "per_image"  # the default design


def test_audits_are_recorded_with_stratum_and_inclusion_probability(ctx):
    ids = submit(ctx, *images(80), png_bytes((255, 10, 0)))
    run_batch(ctx, ids)
    router = ctx.hooks.route_review
    assert isinstance(router, AuditSamplingRouter)
    samples = rows(ctx, AuditSample)
    assert samples, "a 30 % budget over 160 below-threshold pairs draws some"
    scores = {(s.job_id, s.category): s.score for s in rows(ctx, Score)}
    with session_scope(ctx.sessions) as s:
        th = resolve_thresholds(s, ColourScorer.scales, ColourScorer.severities)
        design = router.design(s, "sexual", th["sexual"])
    assert design != AuditDesign.for_scale("probability")  # rescaled to the budget
    rates = {b.name: b.rate for b in design.bands}
    for sample in samples:
        assert sample.score == scores[(sample.job_id, sample.category)] < BASE
        if sample.category == "sexual":
            band = next(b for b in design.bands if BASE - sample.score <= b.max_distance + 1e-12)
            assert sample.stratum == band.name
            assert sample.inclusion_probability == pytest.approx(rates[band.name])
    # the draw is the (job, category) uniform against the band rate
    for (job_id, category), score in scores.items():
        if category != "sexual" or score >= BASE:
            continue
        band = next(b for b in design.bands if BASE - score <= b.max_distance + 1e-12)
        drawn = audit_uniform(job_id, category) < band.rate
        assert drawn == any((s.job_id, s.category) == (job_id, category) for s in samples)
    items = {i.job_id: i for i in rows(ctx, ReviewItem)}
    assert items[ids[-1]].kind == ReviewItemKind.QUEUE  # the red one is queued as before
    sampled_jobs = {s.job_id for s in samples}
    audit_items = {j: i for j, i in items.items() if i.kind == ReviewItemKind.AUDIT}
    assert set(audit_items) == sampled_jobs - {ids[-1]}
    for job_id, item in audit_items.items():
        mine = [s for s in samples if s.job_id == job_id]
        top = max(mine, key=lambda s: s.score)
        assert (item.category, item.inclusion_probability) == (
            top.category,
            top.inclusion_probability,
        )
    # the queued job's queued category is never an audit sample
    assert (ids[-1], "sexual") not in {(s.job_id, s.category) for s in samples}


def test_routing_again_is_deterministic_and_writes_nothing_new(ctx):
    ids = submit(ctx, *images(60))
    run_batch(ctx, ids)
    before = [(s.job_id, s.category, s.stratum, s.inclusion_probability)
              for s in rows(ctx, AuditSample)]  # fmt: skip
    items_before = len(rows(ctx, ReviewItem))
    scorer = ColourScorer()
    with session_scope(ctx.sessions) as s:
        th = resolve_thresholds(s, scorer.scales, scorer.severities)
        scores = {}
        for row in s.scalars(select(Score)):
            scores.setdefault(row.job_id, {})[row.category] = row.score
        decided = [DecidedJob(j, decide(v, th), v, th) for j, v in scores.items()]
        fresh = AuditSamplingRouter(
            0.3, design_kind="per_category"
        )  # a new worker: empty cache, same draws
        fresh(s, decided)
        redraw = {
            (d.job_id, c)
            for d in decided
            for c, v in d.scores.items()
            if v < BASE
            and audit_uniform(d.job_id, c) < fresh.design(s, c, th[c]).bands[
                next(i for i, b in enumerate(fresh.design(s, c, th[c]).bands)
                     if BASE - v <= b.max_distance + 1e-12)
            ].rate
        }  # fmt: skip
    after = [(s.job_id, s.category, s.stratum, s.inclusion_probability)
             for s in rows(ctx, AuditSample)]  # fmt: skip
    assert after == before and len(rows(ctx, ReviewItem)) == items_before
    assert redraw == {(j, c) for j, c, _, _ in before}
    assert run_batch(ctx, ids).skipped == ids  # a redelivery is skipped and routes nothing


def test_non_finite_scores_are_skipped_not_fatal(ctx):
    [job] = submit(ctx, png_bytes((10, 10, 10)))
    scorer = ColourScorer()
    with session_scope(ctx.sessions) as s:
        th = resolve_thresholds(s, scorer.scales, scorer.severities)
        values = {"sexual": float("nan"), "violence": 0.29}
        decision = decide({"violence": 0.29, "sexual": 0.0}, th)
        AuditSamplingRouter(1.0, design_kind="per_category")(
            s, [DecidedJob(job, decision, values, th)]
        )
    samples = rows(ctx, AuditSample)
    # no scores stored yet: the unscaled preset (0.29 is "near": rate 0.2)
    drawn = audit_uniform(job, "violence") < 0.2
    assert [(a.category, a.inclusion_probability) for a in samples] == (
        [("violence", 0.2)] if drawn else []
    )


def test_design_for_a_registered_scale_and_an_unknown_one():
    assert audit_design_for("fake_cosine") == AuditDesign.for_scale("gme_cosine")
    with pytest.raises(UnknownScale, match="logit"):
        audit_design_for("logit")
    with pytest.raises(ValueError):
        AuditSamplingRouter(1.5)
    with pytest.raises(ValueError):
        AuditSamplingRouter(0.1, design_kind="per_pixel")  # type: ignore[arg-type]


def test_audit_uniform_is_uniform_and_fixed_by_job_and_category():
    from scipy.stats import kstest

    draws = [audit_uniform(j, c) for j in range(5000) for c in ("sexual", "violence")]
    assert all(0.0 <= u < 1.0 for u in draws)
    assert kstest(draws, "uniform").pvalue > 1e-3
    # the two categories of a job draw independently; the same pair always draws the same
    assert abs(float(np.corrcoef(draws[::2], draws[1::2])[0, 1])) < 0.05
    assert audit_uniform(7, "sexual") == audit_uniform(7, "sexual") != audit_uniform(8, "sexual")


@pytest.mark.parametrize("ctx", ["per_image"], indirect=True)
def test_per_image_design_draws_once_per_job_for_every_category(ctx):
    ids = submit(ctx, *images(80), png_bytes((255, 10, 0)))
    run_batch(ctx, ids)
    router = ctx.hooks.route_review
    assert isinstance(router, AuditSamplingRouter) and router.design_kind == "per_image"
    samples = rows(ctx, AuditSample)
    assert samples
    scores: dict[int, dict[str, float]] = {}
    for row in rows(ctx, Score):
        scores.setdefault(row.job_id, {})[row.category] = row.score
    with session_scope(ctx.sessions) as s:
        th = resolve_thresholds(s, ColourScorer.scales, ColourScorer.severities)
        # each category's design is rescaled to fraction / (number of categories)
        designs = {c: router.design(s, c, th[c], 0.3 / len(scores[ids[0]])) for c in th}
    by_job: dict[int, list[AuditSample]] = {}
    for sample in samples:
        by_job.setdefault(sample.job_id, []).append(sample)
    for job_id, values in scores.items():
        eligible = {}
        for c, v in values.items():
            if v >= th[c].base or (job_id == ids[-1] and c == "sexual"):
                continue  # above the threshold, or the queued category of the queued job
            band = designs[c].band_of(th[c].base - v)
            eligible[c] = (band.name, band.rate)
        pi = 1.0 - math.prod(1.0 - rate for _, rate in eligible.values())
        drawn = bool(eligible) and image_uniform(job_id) < pi
        mine = by_job.get(job_id, [])
        assert drawn == bool(mine)
        if drawn:
            # every eligible category is recorded, with its band and the image's π
            assert {m.category: m.stratum for m in mine} == {c: b for c, (b, _) in eligible.items()}
            assert all(m.inclusion_probability == pytest.approx(pi) for m in mine)
    items = {i.job_id: i for i in rows(ctx, ReviewItem)}
    audit_items = {j for j, i in items.items() if i.kind == ReviewItemKind.AUDIT}
    assert audit_items == set(by_job) - {ids[-1]}  # one review per drawn image
