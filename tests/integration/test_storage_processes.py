"""Storage by reference and the S3 blob store with the real processes: jobs submitted by
``image_uri`` and uploads kept in a bucket are scored by a real Celery worker process that reads
the bytes from a real S3-protocol server (moto's standalone server), with Postgres and Redis;
a missing object is a recorded failure, not a lost job."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from moderation.db.models import Image, ImageBlob, Job
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import JobStatus
from tests.fakes import png_bytes

from .servers import S3Server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    pytest.importorskip("moto.server")
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


def test_a_worker_process_scores_jobs_from_the_bucket(stack_factory, pg_url, s3):
    refs, blobs = s3.bucket(), s3.bucket()
    s3.client.put_object(Bucket=refs, Key="uploads/red.png", Body=png_bytes((255, 0, 0)))
    stack = stack_factory(
        pg_url, image_uri_buckets=[refs], blob_store=f"s3://{blobs}/kept", **s3.settings()
    )
    stack.env["MODERATION_S3_SECRET_ACCESS_KEY"] = s3.SECRET_KEY  # the dump masks secrets
    stack.start_worker("--cpu", "1")

    def post(**kwargs: object) -> int:
        r = stack.client.post("/v1/jobs", headers=stack.headers, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 202, r.text
        return int(r.json()["id"])

    by_ref = post(json={"image_uri": f"s3://{refs}/uploads/red.png"})
    missing = post(json={"image_uri": f"s3://{refs}/uploads/missing.png"})
    uploaded = post(files={"file": ("b.png", png_bytes((0, 0, 9)))})
    stack.wait_all_terminal(90)

    jobs = stack.jobs()
    assert jobs[by_ref].status == JobStatus.SCORED, jobs[by_ref].error
    assert jobs[uploaded].status == JobStatus.SCORED, jobs[uploaded].error
    assert (jobs[missing].status, jobs[missing].error_code) == (JobStatus.FAILED, "not_found")
    shown = stack.client.get(f"/v1/jobs/{by_ref}", headers=stack.headers).json()
    assert shown["status"] == "scored" and shown["tier"] and shown["scores"], shown

    engine = make_engine(pg_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            assert s.scalar(select(func.count()).select_from(ImageBlob)) == 0  # none in Postgres
            images = {
                job_id: (storage_uri, blob_uri, width)
                for job_id, storage_uri, blob_uri, width in s.execute(
                    select(Job.id, Image.storage_uri, Image.blob_uri, Image.width).join(
                        Image, Job.image_id == Image.id
                    )
                )
            }
    finally:
        engine.dispose()
    # the worker read the referenced object and learnt its facts like an upload's
    assert images[by_ref] == (f"s3://{refs}/uploads/red.png", None, 16)
    # the upload's bytes are in the blob bucket, and the worker scored them from there
    assert images[uploaded][1] is not None and images[uploaded][1].startswith(f"s3://{blobs}/kept/")
    assert len(s3.keys(blobs)) == 1
