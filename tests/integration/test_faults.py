"""Broker and database restarts mid-run, on throwaway servers the tests start themselves."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from moderation.api.app import create_app
from moderation.db.migrate import upgrade
from moderation.db.models import Job
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from moderation.metrics import broker_queue_keys
from moderation.pipeline import broker as broker_state
from moderation.pipeline.intake import Submission, register_submissions
from moderation.pipeline.publish import Publisher
from moderation.services import requeue
from tests.fakes import png_bytes

from .conftest import TOKEN
from .servers import PG_BIN, PrivatePostgres, PrivateRedis, wait_for

pytestmark = pytest.mark.integration


def _reaper(stack):
    from workers.celery_app import make_celery
    from workers.ops import reap_and_publish

    app = make_celery(stack.settings)

    def tick() -> None:
        try:
            reap_and_publish(app)
        except Exception:  # the database may be down right now; beat would just run it later
            pass

    return tick


def _images(n: int, salt: int) -> list[bytes]:
    return [png_bytes((salt, i % 256, i // 256), size=(64, 64)) for i in range(n)]


def test_redis_restarted_mid_run_loses_no_job(stack_factory, pg_url, tmp_path: Path, categories):
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        stack = stack_factory(pg_url, broker_url=server.url)
        stack.start_worker()
        first = stack.submit(_images(120, 1), batch=True)
        wait_for(lambda: stack.counts().get("scored", 0) > 0, 60, "first results")
        server.kill()  # queued and unacknowledged messages are gone with it
        assert stack.counts().get("scored", 0) < 120, "the restart must hit a run in progress"
        time.sleep(1)
        server.start()
        second = stack.submit(_images(40, 2), batch=True)  # the API reconnects by itself
        stack.wait_all_terminal(timeout=120, tick=_reaper(stack))
    finally:
        server.kill()
    jobs = stack.jobs()
    assert {jobs[i].status for i in first + second} == {JobStatus.SCORED}
    counts = stack.counts()
    assert counts["score_rows"] == 160 * categories and counts["decision_rows"] == 160


@pytest.mark.skipif(PG_BIN is None, reason="no Postgres server binaries")
def test_postgres_restarted_mid_run_loses_no_job(stack_factory, categories):
    server = PrivatePostgres()
    server.init()
    try:
        upgrade(server.url)
        stack = stack_factory(server.url)
        stack.start_worker()
        first = stack.submit(_images(120, 3), batch=True)
        wait_for(lambda: stack.counts().get("scored", 0) > 0, 60, "first results")
        before = stack.counts().get("scored", 0)
        server.stop("immediate")  # like a crash: every connection drops
        assert before < 120, "the restart must hit a run in progress"
        time.sleep(2)
        server.start()
        second = stack.submit(_images(40, 4), batch=True)
        stack.wait_all_terminal(timeout=120, tick=_reaper(stack))
        jobs = stack.jobs()
        assert {jobs[i].status for i in first + second} == {JobStatus.SCORED}
        counts = stack.counts()
        assert counts["score_rows"] == 160 * categories and counts["decision_rows"] == 160
    finally:
        for worker in stack.workers if "stack" in locals() else []:
            worker.stop(timeout=5)
        server.destroy()


# --- recovery with DEFAULT settings: no reaper tick from the test, only the real processes ---
# (``moderation worker --cpu 1`` runs the scoring worker and the ops worker, whose broker watch
# and kombu's restore of unacknowledged messages do the recovering.)

RECOVERY_DEADLINE_S = 120  # a liveness bound only (the goal is 60 s: bench_recovery.py measures)


def _submit(stack, images: list[bytes]) -> list[int]:
    return [i for n in range(0, len(images), 200) for i in stack.submit(images[n : n + 200], True)]


def _exactly_once(stack, ids: list[int], categories: int) -> None:
    jobs = stack.jobs()
    assert {jobs[i].status for i in ids} == {JobStatus.SCORED}
    counts = stack.counts()
    assert counts["jobs"] == len(ids)
    assert counts["score_rows"] == len(ids) * categories and counts["decision_rows"] == len(ids)


def test_main_process_killed_its_messages_come_back_without_the_reaper(
    stack_factory, pg_url, categories
):
    stack = stack_factory(pg_url, defaults=True)
    worker = stack.start_worker("--cpu", "1")  # scoring worker + ops worker
    ids = _submit(stack, _images(400, 5))
    wait_for(lambda: stack.counts().get("scored", 0) > 0, 60, "first results")
    os.kill(worker.celery_main("cpu0"), signal.SIGKILL)  # its held messages stay unacked
    assert stack.counts().get("scored", 0) < 400, "the kill must hit a run in progress"
    stack.wait_all_terminal(timeout=RECOVERY_DEADLINE_S)
    _exactly_once(stack, ids, categories)


def test_redis_lost_its_lists_recovers_without_the_reaper(
    stack_factory, pg_url, tmp_path: Path, categories
):
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        stack = stack_factory(pg_url, broker_url=server.url, defaults=True)
        stack.start_worker("--cpu", "1")
        first = _submit(stack, _images(400, 6))
        wait_for(lambda: stack.counts().get("scored", 0) > 0, 60, "first results")
        server.kill()  # every queued and unacknowledged message is gone
        assert stack.counts().get("scored", 0) < 400, "the restart must hit a run in progress"
        time.sleep(1)
        server.start()
        second = stack.submit(_images(40, 7), batch=True)
        stack.wait_all_terminal(timeout=RECOVERY_DEADLINE_S)
    finally:
        server.kill()
    _exactly_once(stack, first + second, categories)


def test_old_backlog_is_not_republished_only_lost_messages_are(
    pg_url, redis_prefix, settings_factory
):
    """30,000 jobs queued for an hour (far past ``stale_claim_s``), each in a message waiting
    in Redis: the reaper and the broker watch republish none of them — only the few jobs whose
    message is really gone, and a claim whose message a worker holds stays a claim."""
    settings = settings_factory(
        database_url=pg_url,
        broker_key_prefix=redis_prefix,
        queue_name=f"it-{uuid.uuid4().hex[:6]}.score",
        ops_queue_name=f"it-{uuid.uuid4().hex[:6]}.ops",
    )
    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    hour_ago = utcnow() - dt.timedelta(hours=1)
    with session_scope(sessions) as s:
        (seed,) = register_submissions(s, [Submission.from_bytes(png_bytes((9, 9, 9)))], hour_ago)
        image_id = s.get(Job, seed).image_id
        s.execute(
            text(
                "INSERT INTO jobs (image_id, source, status, attempts, priority, submitted_at,"
                " enqueued_at) SELECT :image, 'api', 'queued', 0, 0, :t, :t"
                " FROM generate_series(1, 30005)"
            ),
            {"image": image_id, "t": hour_ago},
        )
        s.execute(update(Job).where(Job.id == seed).values(enqueued_at=hour_ago))
        ids = sorted(s.scalars(select(Job.id)))
    lost = ids[-5:]  # published once, but their message is gone
    backlog = ids[:-5]
    publisher = Publisher(settings)
    publisher.publish_jobs(backlog)
    broker = redis.Redis.from_url(settings.broker_url)
    try:
        assert broker_state.held_jobs(broker, settings).waiting == frozenset(backlog)
        # one claim whose message a worker holds (kombu's unacked hash), an hour old
        claimed = backlog[0]
        with session_scope(sessions) as s:
            s.execute(
                update(Job)
                .where(Job.id == claimed)
                .values(status=JobStatus.PROCESSING, attempts=1, started_at=hour_ago)
            )
        _hold_one_message(broker, settings, claimed)
        reaped = requeue.reap_and_publish(settings, sessions, publisher, broker)
        watched = requeue.watch_broker(settings, sessions, publisher, broker)
        assert set(lost) <= broker_state.held_jobs(broker, settings).waiting
    finally:
        broker.close()
        engine.dispose()
    assert reaped == {"republished": 5, "quarantined": 0, "callbacks": 0}
    assert watched.reset and watched.republished == 0  # first watch: nothing else is missing
    assert watched.requeued == 0  # the held claim is alive
    with session_scope(make_sessionmaker(make_engine(pg_url))) as s:
        assert s.get(Job, claimed).status == JobStatus.PROCESSING


def _hold_one_message(broker: redis.Redis, settings, job_id: int) -> None:
    """Move the message carrying ``job_id`` from its list to ``unacked``, as a consumer does."""
    for key in broker_queue_keys(settings.queue_name, settings.broker_key_prefix):
        for raw in broker.lrange(key, 0, -1):
            payload = json.loads(raw)
            if job_id in broker_state.message_job_ids(payload):
                broker.lrem(key, 1, raw)
                tag = payload["properties"]["delivery_tag"]
                unacked = json.dumps([payload, "", settings.queue_name])
                broker.hset(f"{settings.broker_key_prefix}unacked", tag, unacked)
                broker.zadd(f"{settings.broker_key_prefix}unacked_index", {tag: time.time()})
                return
    raise AssertionError(f"no message carries job {job_id}")


@pytest.mark.skipif(PG_BIN is None, reason="no Postgres server binaries")
def test_api_answers_503_with_retry_after_while_postgres_is_down(settings_factory, redis_prefix):
    server = PrivatePostgres()
    server.init()
    try:
        upgrade(server.url)
        settings = settings_factory(
            database_url=server.url,
            broker_key_prefix=redis_prefix,
            api_tokens=[f"pipeline:submitter:{TOKEN}"],
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {"image_base64": base64.b64encode(png_bytes()).decode()}
        with TestClient(create_app(settings)) as client:
            assert client.post("/v1/jobs", json=body, headers=headers).status_code == 202
            server.stop("immediate")
            for response in (
                client.post("/v1/jobs", json=body, headers=headers),
                client.get("/v1/jobs/1", headers=headers),
            ):
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) > 0
            server.start()
            assert client.get("/v1/jobs/1", headers=headers).status_code == 200
    finally:
        server.destroy()
