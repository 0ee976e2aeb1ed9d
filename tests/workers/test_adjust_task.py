"""The beat-scheduled threshold adjuster: schedule and task body on a real database, on the
scorer profiles the pool processes register."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from moderation.db import make_engine, make_sessionmaker
from moderation.db.repositories import thresholds as versions
from moderation.db.repositories.scorer_profiles import live_profiles
from moderation.db.types import utcnow
from moderation.scoring.catalog import load_catalog
from moderation.services.scorer_profiles import register_scorer
from moderation.thresholds.adjusting import run_configured
from tests.fakes import ColourScorer
from tests.moderation.thresholds.test_adjusting import misses_below, seed_evidence
from workers import lifecycle
from workers.celery_app import ADJUST_TASK, REAP_TASK, beat_schedule, make_celery, ops_routes
from workers.ops import adjust_from_reviews


def test_beat_runs_the_adjuster_only_with_an_interval(settings_factory):
    on = beat_schedule(settings_factory(adjust_interval_s=120))
    assert on["adjust-thresholds"] == {"task": ADJUST_TASK, "schedule": 120.0}
    assert on["reap-stale-claims"]["task"] == REAP_TASK
    assert "adjust-thresholds" not in beat_schedule(settings_factory(adjust_interval_s=0))
    settings = settings_factory()
    assert ops_routes(settings)[ADJUST_TASK] == {"queue": settings.ops_queue_name}


def test_configured_run_writes_a_version_with_the_scorers_scales(pg_url, settings_factory):
    settings = settings_factory(database_url=pg_url, adjuster="recall_target")
    engine = make_engine(pg_url)
    try:
        sessions = make_sessionmaker(engine)
        seed_evidence(sessions, caught=100, audits=misses_below(), at=utcnow())
        [outcome] = run_configured(settings, sessions, now=utcnow(), scorer=ColourScorer()).outcomes
        assert outcome.version_id is not None and outcome.scale == "probability"
        # a second run sees the new version in force and the same evidence: it may step
        # again, but never rewrites history
        run_configured(settings, sessions, now=utcnow(), scorer=ColourScorer())
        with sessions() as s:
            history = versions.history(s, "sexual")
            assert history[-1].id == outcome.version_id
            assert all(v.strategy == "recall_target" for v in history)
    finally:
        engine.dispose()


def test_task_body_without_a_registered_profile_falls_back_to_settings_and_says_so(
    pg_url, settings_factory, caplog
):
    settings = settings_factory(database_url=pg_url, backend="fake", adjuster="seed")
    app = make_celery(settings)
    with caplog.at_level(logging.WARNING, logger="workers.ops"):
        run = adjust_from_reviews(app)
    assert run["outcomes"] == [] and run["profile_source"] == "settings"  # nothing routed yet
    assert run["profile"].startswith("no scorer profile registered in the last 86400 s")
    assert "MODERATION_BACKEND=fake" in caplog.text
    engine = make_engine(pg_url)
    try:
        # 60 reviewed items above the fake scale's base, none a violation: the seed raises
        seed_evidence(make_sessionmaker(engine), caught=0, audits=[(0.5, False)] * 60,
                      at=utcnow())  # fmt: skip
    finally:
        engine.dispose()
    [out] = adjust_from_reviews(app)["outcomes"]
    assert (out["category"], out["strategy"], out["changed"]) == ("sexual", "seed", True)
    assert out["value"] == out["previous"] + 0.01 and out["version_id"] is not None
    assert out["scale"] == "fake_cosine"


@pytest.fixture
def pool_process(pg_url, settings_factory):
    """A scoring pool process of worker node gpu0@host (fake backend) as Celery starts one."""
    app = make_celery(settings_factory(database_url=pg_url, backend="fake"))
    lifecycle.on_worker_process_init(app)(sender="gpu0@host")
    try:
        yield lifecycle.current_context()
    finally:
        lifecycle.on_worker_process_shutdown()


def test_pool_process_registers_its_profile_and_the_ops_beat_adjusts_that(
    pg_url, settings_factory, pool_process
):
    """The ops worker's own settings say open_nsfw; the pool scores with the fake embedder
    over the catalog: the beat task adjusts the pool's categories on the pool's scale."""
    with pool_process.sessions() as s:
        [profile] = live_profiles(s, since=utcnow() - dt.timedelta(minutes=1))
    assert (profile.worker, profile.backend) == ("gpu0@host", "fake")
    assert profile.model_id == pool_process.scorer.model_id
    assert set(profile.categories) == set(load_catalog().category_names)
    assert {c["scale"] for c in profile.categories.values()} == {"fake_cosine"}
    seed_evidence(pool_process.sessions, caught=0, audits=[(0.5, False)] * 60, at=utcnow())

    ops = make_celery(settings_factory(database_url=pg_url, adjuster="seed"))  # open_nsfw
    assert ops.settings.backend == "open_nsfw"
    run = adjust_from_reviews(ops)
    assert run["profile_source"] == "registered" and "fake" in run["profile"]
    [out] = run["outcomes"]
    assert (out["category"], out["scale"], out["changed"]) == ("sexual", "fake_cosine", True)


def test_profiles_that_disagree_on_a_scale_skip_that_category(
    pg_url, settings_factory, pool_process
):
    register_scorer(pool_process.sessions, ColourScorer(), worker="cpu@other", backend="colour")
    seed_evidence(pool_process.sessions, caught=0, audits=[(0.5, False)] * 60, at=utcnow())
    ops = make_celery(settings_factory(database_url=pg_url, adjuster="seed"))
    run = adjust_from_reviews(ops)
    assert run["outcomes"] == []  # sexual is the only reviewed category, and it is skipped
    why = run["skipped"]["sexual"]
    assert why == (
        "live scorers disagree on its scale: fake_cosine (gpu0@host); probability (cpu@other)"
    )
    assert set(run["skipped"]) == {"sexual"}  # violence (colour only), weapons (fake only) stay
    with pool_process.sessions() as s:
        assert versions.active_versions(s) == {}
