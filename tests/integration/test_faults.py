"""Broker and database restarts mid-run, on throwaway servers the tests start themselves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from moderation.db.migrate import upgrade
from moderation.domain import JobStatus
from tests.fakes import png_bytes

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
