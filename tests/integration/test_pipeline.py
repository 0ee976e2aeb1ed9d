"""API → Redis → real Celery worker processes → Postgres, end to end."""

from __future__ import annotations

import datetime as dt
import os
import signal
import struct
import zlib

import pytest

from moderation.db import make_engine, make_sessionmaker
from moderation.db.repositories.scorer_profiles import live_profiles
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from tests.fakes import noise_jpeg, png_bytes

from .servers import wait_for

pytestmark = pytest.mark.integration


def png_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny PNG whose header declares 1.6 G pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_200_jobs_are_scored_exactly_once_and_bad_uploads_fail_with_reasons(
    stack_factory, pg_url, categories
):
    stack = stack_factory(pg_url)
    stack.start_worker()
    images = [png_bytes((i % 256, (7 * i) % 256, 3)) for i in range(200)]
    ids = stack.submit(images[:40])  # single submissions, multipart and JSON
    for start in range(40, 200, 40):
        ids += stack.submit(images[start : start + 40], batch=True)
    bad = {
        "empty": b"",
        "truncated": noise_jpeg()[:-600],
        "not_an_image": b"%PDF-1.4 definitely not an image",
        "corrupt": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        "too_many_pixels": png_bomb(),
    }
    bad_ids = dict(zip(stack.submit(list(bad.values())), bad, strict=True))
    stack.wait_all_terminal(timeout=120)
    after = stack.submit([png_bytes((1, 2, 3), size=(20, 20))])  # the worker kept serving
    stack.wait_all_terminal(timeout=60)

    jobs = stack.jobs()
    scored = [j for j in jobs.values() if j.status == JobStatus.SCORED]
    assert len(scored) == 201 and all(j.attempts == 1 for j in scored)
    assert {jobs[i].status for i in ids + after} == {JobStatus.SCORED}
    counts = stack.counts()
    assert counts["score_rows"] == 201 * categories and counts["decision_rows"] == 201
    for job_id, expected in bad_ids.items():
        job = jobs[job_id]
        assert job.status == JobStatus.FAILED, (expected, job.status, job.error)
        assert job.error, expected
    codes = {bad_ids[i]: jobs[i].error_code for i in bad_ids}
    assert codes["empty"] == "empty" and codes["too_many_pixels"] == "too_many_pixels"
    assert codes["not_an_image"] == "not_an_image" and codes["truncated"] in (
        "truncated",
        "corrupt",
    )
    # the pool process registered what it scores with (the threshold adjuster adjusts that)
    engine = make_engine(pg_url)
    try:
        with make_sessionmaker(engine)() as s:
            [profile] = live_profiles(s, since=utcnow() - dt.timedelta(hours=1))
    finally:
        engine.dispose()
    assert "@" in profile.worker and profile.backend == "fake"
    assert len(profile.categories) == categories


def _slow_images(n: int) -> list[bytes]:
    import io

    from PIL import Image

    base = Image.effect_noise((2000, 2000), 60).convert("RGB")
    out = []
    for i in range(n):  # distinct (a JPEG keeps 8×8 blocks): no score reuse shortens the work
        base.paste((10 * i % 256, 0, 0), (0, 0, 8, 8))
        buf = io.BytesIO()
        base.save(buf, "JPEG", quality=70)
        out.append(buf.getvalue())
    return out


def test_pool_child_killed_mid_batch_every_job_scored_once(stack_factory, pg_url, categories):
    stack = stack_factory(pg_url, batch_size=4)
    worker = stack.start_worker()
    ids = stack.submit(_slow_images(24), batch=True)

    def processing() -> bool:
        return any(j.status == JobStatus.PROCESSING for j in stack.jobs().values())

    wait_for(processing, 60, "a batch in progress", poll=0.05)
    children = worker.pool_children()
    assert children, "no pool child found"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    stack.wait_all_terminal(timeout=120)
    jobs = stack.jobs()
    assert {jobs[i].status for i in ids} == {JobStatus.SCORED}
    assert max(j.attempts for j in jobs.values()) == 2  # the killed batch was delivered again
    counts = stack.counts()
    assert counts["score_rows"] == 24 * categories and counts["decision_rows"] == 24


def test_whole_worker_killed_then_restarted_reaper_recovers_everything(
    stack_factory, pg_url, categories
):
    from workers.celery_app import make_celery
    from workers.ops import reap_and_publish

    stack = stack_factory(pg_url, batch_size=4)
    worker = stack.start_worker()
    ids = stack.submit(_slow_images(16), batch=True)
    wait_for(
        lambda: any(j.status == JobStatus.PROCESSING for j in stack.jobs().values()),
        60,
        "a batch in progress",
        poll=0.05,
    )
    worker.kill_all()  # launcher, Celery main and pool child: nothing acks, nothing requeues
    stack.start_worker()
    app = make_celery(stack.settings)
    stack.wait_all_terminal(timeout=120, tick=lambda: reap_and_publish(app))
    jobs = stack.jobs()
    assert {jobs[i].status for i in ids} == {JobStatus.SCORED}
    counts = stack.counts()
    assert counts["score_rows"] == 16 * categories and counts["decision_rows"] == 16


def test_sigterm_drains_the_running_batch_and_leaves_the_rest_queued(
    stack_factory, pg_url, categories
):
    stack = stack_factory(pg_url, batch_size=4)
    worker = stack.start_worker()
    ids = stack.submit(_slow_images(24), batch=True)
    wait_for(
        lambda: any(j.status == JobStatus.PROCESSING for j in stack.jobs().values()),
        60, "a batch in progress", poll=0.05,
    )  # fmt: skip
    worker.stop(timeout=60)  # SIGTERM to the launcher's group, then wait
    jobs = stack.jobs()
    assert not any(j.status == JobStatus.PROCESSING for j in jobs.values())  # batch finished
    assert any(j.status == JobStatus.SCORED for j in jobs.values())
    stack.start_worker()  # the unacknowledged rest was restored to the queue
    stack.wait_all_terminal(timeout=120)
    jobs = stack.jobs()
    assert {jobs[i].status for i in ids} == {JobStatus.SCORED}
    assert max(j.attempts for j in jobs.values()) == 1  # nothing was interrupted
    assert stack.counts()["score_rows"] == 24 * categories
