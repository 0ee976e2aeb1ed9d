"""Storage by reference and the blob store, end to end: jobs submitted by ``image_uri``
(``s3://`` on a real S3-protocol server, ``file://`` under the root) through the API and
scored from there by the real pipeline (``run_batch``); hostile URIs refused with 422 and no
job; the dir and S3 blob stores round-trip; uploads kept in the bucket, not in Postgres."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from moderation.db.models import Decision, Image, ImageBlob, Job
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.domain import JobStatus, RiskTier
from moderation.images import ImageRejected
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import build_context
from moderation.storage.blobs import (
    DirBlobStore,
    S3BlobStore,
    delete_blob,
    open_blob_store,
    read_blob,
)
from tests.fakes import ColourScorer, png_bytes

RED = png_bytes((255, 0, 0))  # sexual 1.0: extreme
BLACK = png_bytes((0, 0, 0))  # clear


@pytest.fixture
def sessions(pg_url: str) -> Iterator[object]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _score(settings, sessions, ids):  # type: ignore[no-untyped-def]
    ctx = build_context(settings, ColourScorer(), sessions, worker="test@storage")
    try:
        return run_batch(ctx, ids)
    finally:
        ctx.close()


def _jobs(sessions) -> dict[int, tuple[JobStatus, str | None, RiskTier | None]]:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        rows = s.execute(
            select(Job.id, Job.status, Job.error_code, Decision.tier).outerjoin(
                Decision, Decision.job_id == Job.id
            )
        ).all()
    return {j: (status, code, tier) for j, status, code, tier in rows}


def test_jobs_submitted_by_reference_are_scored_from_the_bucket_and_the_root(
    api_factory, s3, storage_settings, sessions, tmp_path
):
    bucket = s3.bucket()
    s3.client.put_object(Bucket=bucket, Key="uploads/red.png", Body=RED)
    root = tmp_path / "root"
    (root / "day").mkdir(parents=True)
    (root / "day" / "black.png").write_bytes(BLACK)
    api = api_factory(**storage_settings(image_uri_buckets=[bucket], image_file_root=root))
    h = api.headers("alice")
    single = api.client.post(
        "/v1/jobs", json={"image_uri": f"s3://{bucket}/uploads/red.png"}, headers=h
    )
    assert single.status_code == 202, single.text
    form = api.client.post(  # multipart: an image_uri field instead of a file part
        "/v1/jobs",
        files=[("image_uri", (None, (root / "day" / "black.png").as_uri()))],
        headers=h,
    )
    assert form.status_code == 202, form.text
    batch = api.client.post(
        "/v1/jobs/batch",
        json={
            "jobs": [
                {"image_uri": f"s3://{bucket}/uploads/missing.png"},
                {"image_base64": base64.b64encode(BLACK).decode()},
            ]
        },
        headers=h,
    )
    assert batch.status_code == 202, batch.text
    ids = [single.json()["id"], form.json()["id"], *(j["id"] for j in batch.json())]

    outcome = _score(api.settings, sessions, ids)

    jobs = _jobs(sessions)
    assert jobs[ids[0]] == (JobStatus.SCORED, None, RiskTier.EXTREME)  # read from the bucket
    assert jobs[ids[1]] == (JobStatus.SCORED, None, RiskTier.CLEAR)  # read under the root
    assert jobs[ids[2]][:2] == (JobStatus.FAILED, "not_found")  # a recorded failure
    assert jobs[ids[3]] == (JobStatus.SCORED, None, RiskTier.CLEAR)
    assert outcome.failed[ids[2]].code == "not_found"
    shown = api.client.get(f"/v1/jobs/{ids[2]}", headers=h).json()
    assert shown["status"] == "failed" and shown["error_code"] == "not_found"
    # the worker learnt the referenced image's facts (and its PDQ hash) like an upload's
    with session_scope(sessions) as s:
        image = s.scalar(select(Image).join(Job, Job.image_id == Image.id).where(Job.id == ids[0]))
        assert image is not None and image.width == 16 and image.pdq_hash is not None
        assert image.storage_uri == f"s3://{bucket}/uploads/red.png"


def test_an_unreachable_store_is_a_recorded_fetch_failure(
    api_factory, s3, storage_settings, sessions
):
    bucket = s3.bucket()
    api = api_factory(**storage_settings(image_uri_buckets=[bucket]))
    job = api.client.post(
        "/v1/jobs", json={"image_uri": f"s3://{bucket}/a.png"}, headers=api.headers("alice")
    ).json()
    with socket_closed() as port:  # the store went away after intake
        dead = api.settings.model_copy(
            update={"s3_endpoint_url": f"http://127.0.0.1:{port}", "s3_max_attempts": 2}
        )
        _score(dead, sessions, [job["id"]])
    assert _jobs(sessions)[job["id"]][:2] == (JobStatus.FAILED, "fetch_failed")
    # an admin retry once the store is back scores it (the job was never lost)
    s3.client.put_object(Bucket=bucket, Key="a.png", Body=RED)
    retried = api.client.post(f"/v1/jobs/{job['id']}/retry", headers=api.headers("adam"))
    assert retried.status_code == 202
    _score(api.settings, sessions, [job["id"]])
    assert _jobs(sessions)[job["id"]] == (JobStatus.SCORED, None, RiskTier.EXTREME)


class socket_closed:
    """A local port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


def test_hostile_uris_are_refused_with_422_and_no_job(api_factory, s3, storage_settings, tmp_path):
    allowed = s3.bucket()
    other = s3.bucket()
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.png").write_bytes(BLACK)
    outside = tmp_path / "secret.png"
    outside.write_bytes(BLACK)
    os.symlink(outside, root / "link.png")  # a symlink leading out of the root
    api = api_factory(**storage_settings(image_uri_buckets=[allowed], image_file_root=root))
    h = api.headers("alice")
    hostile = [
        f"s3://{other}/x.png",  # a bucket not on the allow-list
        f"s3://{allowed}/",  # no key
        f"s3://{allowed}/a/../x.png",
        "http://169.254.169.254/latest/meta-data",
        "https://example.com/x.png",
        "ftp://example.com/x.png",
        outside.as_uri(),  # outside the root
        f"file://{root}/../secret.png",
        f"file://{root}/%2e%2e/secret.png",
        (root / "link.png").as_uri(),
        f"file://otherhost{root}/ok.png",
        str(root / "ok.png"),  # no scheme
        f"s3://{allowed}/x.png?versionId=1",
    ]
    for uri in hostile:
        r = api.client.post("/v1/jobs", json={"image_uri": uri}, headers=h)
        assert r.status_code == 422, (uri, r.status_code, r.text)
        b = api.client.post("/v1/jobs/batch", json={"jobs": [{"image_uri": uri}]}, headers=h)
        assert b.status_code == 422, (uri, b.status_code, b.text)
        m = api.client.post("/v1/jobs", files=[("image_uri", (None, uri))], headers=h)
        assert m.status_code == 422, (uri, m.status_code, m.text)
    both = {"image_uri": f"s3://{allowed}/x.png", "image_base64": base64.b64encode(BLACK).decode()}
    assert api.client.post("/v1/jobs", json=both, headers=h).status_code == 422
    assert api.client.post("/v1/jobs", json={}, headers=h).status_code == 422
    listed = api.client.get("/v1/jobs", headers=api.headers("adam")).json()
    assert listed["jobs"] == []
    # references are off where not configured
    bare = api_factory()
    r = bare.client.post(
        "/v1/jobs", json={"image_uri": (root / "ok.png").as_uri()}, headers=bare.headers("alice")
    )
    assert r.status_code == 422


@pytest.mark.parametrize("kind", ["dir", "s3"])
def test_blob_store_round_trip(kind, s3, settings_factory, tmp_path):
    if kind == "dir":
        settings = settings_factory(blob_store=f"dir:{tmp_path / 'blobs'}")
    else:
        settings = settings_factory(**s3.settings(), blob_store=f"s3://{s3.bucket()}/pre/fix")
    store = open_blob_store(settings)
    assert isinstance(store, DirBlobStore if kind == "dir" else S3BlobStore)
    sha = "ab" * 32
    stored = store.put(sha, RED)
    assert stored.data is None and stored.blob_uri is not None
    assert stored.blob_uri.endswith(f"/ab/{sha}")
    assert store.put(sha, RED) == stored  # content-addressed: the same location
    assert read_blob(stored.blob_uri, settings, 10_000) == RED
    with pytest.raises(ImageRejected) as too_big:
        read_blob(stored.blob_uri, settings, 10)
    assert too_big.value.code == "too_large"
    delete_blob(stored.blob_uri, settings)
    delete_blob(stored.blob_uri, settings)  # deleting twice is fine
    with pytest.raises(ImageRejected) as gone:
        read_blob(stored.blob_uri, settings, 10_000)
    assert gone.value.code == "not_found"


def test_uploads_kept_in_the_bucket_not_in_postgres(api_factory, s3, storage_settings, sessions):
    bucket = s3.bucket()
    api = api_factory(**storage_settings(blob_store=f"s3://{bucket}/blobs"))
    h = api.headers("alice")
    ids = [
        api.client.post("/v1/jobs", files={"file": ("r.png", RED)}, headers=h).json()["id"]
        for _ in range(2)
    ]
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(ImageBlob)) == 0
        uris = s.scalars(select(Image.blob_uri)).all()
    assert len(uris) == 1 and uris[0].startswith(f"s3://{bucket}/blobs/")  # deduped by sha256
    assert len(s3.keys(bucket)) == 1
    _score(api.settings, sessions, ids)
    assert {j: v[2] for j, v in _jobs(sessions).items()} == dict.fromkeys(ids, RiskTier.EXTREME)


@pytest.mark.parametrize("where", ["file", "directory"])
def test_a_symlink_planted_after_acceptance_is_refused_not_followed(where, tmp_path):
    """Stored paths are resolved when accepted; reading never follows a link planted since."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    accepted = (root / "sub" / "ok.png").resolve()
    accepted.write_bytes(RED)
    secret = tmp_path / "secret"
    (secret / "sub").mkdir(parents=True)
    (secret / "sub" / "ok.png").write_bytes(b"not yours")
    assert read_blob(accepted.as_uri(), None, 10_000) == RED  # type: ignore[arg-type]
    if where == "file":
        accepted.unlink()
        os.symlink(secret / "sub" / "ok.png", accepted)
    else:
        (root / "sub").rename(root / "old")
        os.symlink(secret / "sub", root / "sub")
    with pytest.raises(ImageRejected) as refused:
        read_blob(accepted.as_uri(), None, 10_000)  # type: ignore[arg-type]
    assert refused.value.code == "fetch_failed"
