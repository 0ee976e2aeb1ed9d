"""The beat-scheduled threshold adjuster: schedule and task body on a real database."""

from __future__ import annotations

from moderation.db import make_engine, make_sessionmaker
from moderation.db.repositories import thresholds as versions
from moderation.db.types import utcnow
from moderation.thresholds.adjusting import run_configured
from tests.fakes import ColourScorer
from tests.moderation.thresholds.test_adjusting import misses_below, seed_evidence
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
        [outcome] = run_configured(settings, sessions, now=utcnow(), scorer=ColourScorer())
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


def test_task_body_without_a_pool_context_builds_the_configured_scorer(pg_url, settings_factory):
    settings = settings_factory(database_url=pg_url, backend="fake", adjuster="seed")
    app = make_celery(settings)
    assert adjust_from_reviews(app) == []  # nothing routed yet: nothing to adjust
    engine = make_engine(pg_url)
    try:
        # 60 reviewed items above the fake scale's base, none a violation: the seed raises
        seed_evidence(make_sessionmaker(engine), caught=0, audits=[(0.5, False)] * 60,
                      at=utcnow())  # fmt: skip
    finally:
        engine.dispose()
    [out] = adjust_from_reviews(app)
    assert (out["category"], out["strategy"], out["changed"]) == ("sexual", "seed", True)
    assert out["value"] == out["previous"] + 0.01 and out["version_id"] is not None
