"""The ops worker's metrics: what the reaper handed back, callbacks given up on, when each
beat task last succeeded, the adjuster's recall estimate — moved by the real task bodies on a
real database, and served by the ops worker's own process."""

from __future__ import annotations

import datetime as dt
import socket
import time
import types

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from moderation import metrics
from moderation.db import make_engine, make_sessionmaker
from moderation.db.repositories.jobs import set_callback_state
from moderation.db.session import session_scope
from moderation.db.types import utcnow
from moderation.pipeline.intake import Submission, register_submissions
from moderation.services.scorer_profiles import register_scorer
from tests.fakes import ColourScorer, png_bytes
from tests.moderation.thresholds.test_adjusting import misses_below, seed_evidence
from workers import lifecycle
from workers.celery_app import make_celery
from workers.ops import adjust_from_reviews, reap_and_publish, send_callback_for_job


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def ops_app(db_url, settings_factory, redis_prefix):
    return make_celery(
        settings_factory(database_url=db_url, broker_key_prefix=redis_prefix, queue_name="ops-m")
    )


def _submit(db_url: str, *, age_s: float, **fields: object) -> int:
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            [job_id] = register_submissions(
                s,
                [Submission.from_bytes(png_bytes((7, 7, 7)), **fields)],  # type: ignore[arg-type]
                utcnow() - dt.timedelta(seconds=age_s),
            )
        return job_id
    finally:
        engine.dispose()


def test_reaper_counts_what_it_republished_and_when_it_last_ran(ops_app, db_url):
    _submit(db_url, age_s=120)  # never published, past the grace: the reaper publishes it
    before = {a: value("moderation_reaper_jobs_total", action=a) for a in ("republished",
              "quarantined", "callbacks")}  # fmt: skip
    started = time.time()
    assert reap_and_publish(ops_app) == {"republished": 1, "quarantined": 0, "callbacks": 0}
    assert value("moderation_reaper_jobs_total", action="republished") == before["republished"] + 1
    assert value("moderation_reaper_jobs_total", action="quarantined") == before["quarantined"]
    assert value("moderation_reaper_jobs_total", action="callbacks") == before["callbacks"]
    last = value("moderation_task_last_success_timestamp_seconds", task="reap")
    assert started <= last <= time.time()


def test_a_refused_callback_counts_as_a_dead_letter(ops_app, db_url):
    # loopback is not public and not allow-listed: refused, so dead at once (no retry helps)
    job_id = _submit(db_url, age_s=0, callback_url="http://127.0.0.1:9/hook")
    engine = make_engine(db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            set_callback_state(s, [job_id], "pending")
    finally:
        engine.dispose()
    dead = value("moderation_callbacks_total", result="dead")
    sent = value("moderation_callbacks_total", result="sent")
    timed = value("moderation_callback_duration_seconds_count", result="dead")
    assert send_callback_for_job(ops_app, job_id).startswith("dead")
    assert value("moderation_callbacks_total", result="dead") == dead + 1
    assert value("moderation_callbacks_total", result="sent") == sent
    assert value("moderation_callback_duration_seconds_count", result="dead") == timed + 1
    assert send_callback_for_job(ops_app, job_id) == "nothing to send"  # not counted twice
    assert value("moderation_callbacks_total", result="dead") == dead + 1


def test_adjuster_exports_its_recall_estimate_against_the_target(pg_url, settings_factory):
    engine = make_engine(pg_url)
    try:
        sessions = make_sessionmaker(engine)
        register_scorer(sessions, ColourScorer(), worker="cpu0@host", backend="colour")
        seed_evidence(sessions, caught=100, audits=misses_below(), at=utcnow())
    finally:
        engine.dispose()
    metrics.RECALL_ESTIMATE.labels(category="stale").set(0.1)  # from an earlier run
    app = make_celery(settings_factory(database_url=pg_url, recall_target=0.9))
    run = adjust_from_reviews(app)
    assert [o["category"] for o in run["outcomes"]] == ["sexual"]
    estimate = value("moderation_recall_estimate", category="sexual")
    lower = value("moderation_recall_lower_bound", category="sexual")
    assert 0 < lower <= estimate <= 1
    assert value("moderation_recall_target", category="sexual") == 0.9
    assert REGISTRY.get_sample_value("moderation_recall_estimate", {"category": "stale"}) is None
    assert value("moderation_task_last_success_timestamp_seconds", task="adjust") > 0


def test_recall_in_force_prefers_the_proposed_point_and_skips_thin_evidence():
    point = {"recall_estimate": 0.8, "recall_lower": 0.7}
    assert metrics.recall_in_force({"at_current": point}) == (0.8, 0.7)
    proposed = {"recall_estimate": 0.96, "recall_lower": 0.93}
    assert metrics.recall_in_force({"at_current": point, "at_proposed": proposed}) == (0.96, 0.93)
    assert metrics.recall_in_force({"positives": 3}) is None  # thin: no curve computed
    assert metrics.recall_in_force({"at_current": {"recall_estimate": None}}) is None


def test_record_recall_replaces_the_previous_run():
    metrics.record_recall(0.95, {"a": (0.9, 0.8), "b": (0.99, 0.97)})
    metrics.record_recall(0.95, {"b": (0.98, 0.96)})
    assert REGISTRY.get_sample_value("moderation_recall_estimate", {"category": "a"}) is None
    assert value("moderation_recall_estimate", category="b") == 0.98
    assert value("moderation_recall_lower_bound", category="b") == 0.96
    assert value("moderation_recall_target", category="b") == 0.95


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_ops_worker_process_serves_metrics_and_a_prefork_parent_does_not(settings_factory):
    assert lifecycle.serves_in_main_process("threads")
    assert lifecycle.serves_in_main_process("solo")
    assert not lifecycle.serves_in_main_process("prefork")
    port = _free_port()
    app = make_celery(settings_factory(worker_metrics_port=port))
    lifecycle.on_worker_init(app)(sender=types.SimpleNamespace(pool_cls="prefork"))
    time.sleep(0.5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    metrics.record_reap(republished=0, quarantined=0, callbacks=0)  # the series exist
    lifecycle.on_worker_init(app)(sender=types.SimpleNamespace(pool_cls="threads"))
    deadline = time.monotonic() + 15
    while True:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the ops worker never served /metrics"
            time.sleep(0.2)
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"moderation_reaper_jobs", "moderation_callbacks"} <= names
