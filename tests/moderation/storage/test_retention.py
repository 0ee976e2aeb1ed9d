"""Retention on PostgreSQL: the run deletes exactly the stored bytes the policy lets go
(clear jobs past MODERATION_RETENTION_CLEAR_DAYS, reviewed non-violations past
MODERATION_RETENTION_REVIEWED_DAYS, from image_blobs and from the blob store) and keeps a
confirmed violation's bytes, a legal hold's, recent ones, unreviewed flagged ones and
references; rows, hashes and jobs stay readable; the dashboard and the CLI show it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from moderation.db.models import Appeal, Image, ImageBlob, Job, Review, ReviewItem
from moderation.db.session import make_engine, make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.domain import JobStatus, ReviewItemStatus, ReviewLabel
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import build_context
from moderation.pipeline.intake import Submission, keep_bytes, register_submissions
from moderation.services.retention import retention_by_day, run_retention, set_legal_hold
from moderation.storage.blobs import open_blob_store
from tests.fakes import ColourScorer, png_bytes

DAY = dt.timedelta(days=1)


@pytest.fixture
def sessions(pg_url: str) -> Iterator[object]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _image(colour: tuple[int, int, int], n: int) -> bytes:
    return png_bytes(colour, (16 + n, 16))  # distinct bytes per job


def _submit(settings, sessions, subs) -> list[int]:  # type: ignore[no-untyped-def]
    subs = keep_bytes(open_blob_store(settings), subs)
    with session_scope(sessions) as s:
        return register_submissions(s, subs, utcnow())


def _age(sessions, job_id: int, days: float) -> None:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        s.execute(update(Job).where(Job.id == job_id).values(finished_at=utcnow() - days * DAY))


def _review(sessions, job_id: int, label: ReviewLabel, days_ago: float) -> None:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        s.add(
            Review(
                job_id=job_id, reviewer="rita", category="sexual", label=label,
                created_at=utcnow() - days_ago * DAY,
            )
        )  # fmt: skip
        s.execute(
            update(ReviewItem)
            .where(ReviewItem.job_id == job_id)
            .values(status=ReviewItemStatus.DONE, done_at=utcnow() - days_ago * DAY)
        )


def _stored(sessions, job_id: int) -> tuple[bool, str | None, bool, str | None]:  # type: ignore[no-untyped-def]
    """(image_blobs row?, blob_uri, purged?, pdq_hash) of the job's image."""
    with session_scope(sessions) as s:
        image = s.scalar(select(Image).join(Job, Job.image_id == Image.id).where(Job.id == job_id))
        assert image is not None
        blob = s.get(ImageBlob, image.id)
        return blob is not None, image.blob_uri, image.purged_at is not None, image.pdq_hash


def test_retention_deletes_exactly_what_the_policy_lets_go(
    pg_url, sessions, settings_factory, tmp_path
):
    settings = settings_factory(
        database_url=pg_url, retention_clear_days=7, retention_reviewed_days=30,
        retention_batch_size=2,  # several batches
        audit_fraction=0,  # no audit item holds a clear job back (tested on its own)
    )  # fmt: skip
    dir_settings = settings.model_copy(update={"blob_store": f"dir:{tmp_path / 'blobs'}"})
    black, red = (0, 0, 0), (255, 0, 0)
    ref = tmp_path / "ref.png"
    ref.write_bytes(_image(black, 99))
    names = [
        "old_clear", "new_clear", "violation", "held", "reviewed_old", "reviewed_new",
        "flagged_unreviewed", "dir_old_clear", "reference_old_clear", "shared",
    ]  # fmt: skip
    colours = {
        "violation": red, "reviewed_old": red, "reviewed_new": red, "flagged_unreviewed": red,
    }  # fmt: skip
    db_subs = [
        Submission.from_bytes(_image(colours.get(n, black), i))
        for i, n in enumerate(names)
        if n not in ("dir_old_clear", "reference_old_clear")
    ]
    ids = dict(
        zip([n for n in names if n not in ("dir_old_clear", "reference_old_clear")],
            _submit(settings, sessions, db_subs), strict=True)
    )  # fmt: skip
    ids["dir_old_clear"] = _submit(
        dir_settings, sessions, [Submission.from_bytes(_image(black, 50))]
    )[0]
    ids["reference_old_clear"] = _submit(
        settings, sessions, [Submission.from_reference(ref.resolve().as_uri())]
    )[0]
    # a second job on the violation's image (same bytes: one image row, kept as evidence)
    ids["shared"] = _submit(
        settings, sessions, [Submission.from_bytes(_image(red, names.index("violation")))]
    )[0]
    ctx = build_context(dir_settings, ColourScorer(), sessions, worker="test@retention")
    try:
        outcome = run_batch(ctx, list(ids.values()))
    finally:
        ctx.close()
    assert sorted(outcome.scored) == sorted(ids.values())
    for name in ids:
        _age(sessions, ids[name], 1 if name.startswith("new") else 10)
    _age(sessions, ids["reviewed_old"], 60)
    _review(sessions, ids["violation"], ReviewLabel.VIOLATION, 60)
    _review(sessions, ids["reviewed_old"], ReviewLabel.NOT_VIOLATION, 40)
    _review(sessions, ids["reviewed_new"], ReviewLabel.NOT_VIOLATION, 5)
    with session_scope(sessions) as s:
        set_legal_hold(s, ids["held"], True)
    dir_blob = _stored(sessions, ids["dir_old_clear"])[1]
    assert dir_blob is not None and Path(dir_blob.removeprefix("file://")).exists()

    dry = run_retention(settings, sessions, dry_run=True)
    assert (dry.purged_clear, dry.purged_reviewed) == (2, 1)
    assert not any(_stored(sessions, j)[2] for j in ids.values())  # a dry run deletes nothing

    report = run_retention(settings, sessions)

    purged = {n for n, j in ids.items() if _stored(sessions, j)[2]}
    assert purged == {"old_clear", "reviewed_old", "dir_old_clear"}
    assert (report.purged_clear, report.purged_reviewed) == (2, 1)
    for name in purged:
        in_db, blob_uri, _, pdq = _stored(sessions, ids[name])
        assert not in_db and blob_uri is None and pdq is not None  # bytes gone, hash kept
    assert not Path(dir_blob.removeprefix("file://")).exists()
    for name in ("new_clear", "violation", "held", "reviewed_new", "flagged_unreviewed"):
        assert _stored(sessions, ids[name])[0], name  # still in image_blobs
    assert ref.exists()  # a reference's bytes are the submitter's
    # a second run finds nothing more; lifting the hold lets the held image go
    assert run_retention(settings, sessions).purged == 0
    with session_scope(sessions) as s:
        set_legal_hold(s, ids["held"], False)
    assert run_retention(settings, sessions).image_ids == [_image_id(sessions, ids["held"])]
    # the jobs stay readable; re-scoring a purged job is a clear failure, not a crash
    with session_scope(sessions) as s:
        s.execute(update(Job).where(Job.id == ids["old_clear"]).values(status=JobStatus.QUEUED))
    ctx = build_context(settings, ColourScorer(), sessions, worker="test@retention")
    try:
        again = run_batch(ctx, [ids["old_clear"]])
    finally:
        ctx.close()
    assert again.failed[ids["old_clear"]].code == "purged"
    # the same bytes uploaded again are kept again
    _submit(settings, sessions, [Submission.from_bytes(_image(black, names.index("old_clear")))])
    assert _stored(sessions, ids["old_clear"])[:3] == (True, None, False)
    with session_scope(sessions) as s:
        days = retention_by_day(s, utcnow())
    assert sum(d.clear + d.reviewed for d in days) == 4


def _image_id(sessions, job_id: int) -> int:  # type: ignore[no-untyped-def]
    with session_scope(sessions) as s:
        return int(s.scalar(select(Job.image_id).where(Job.id == job_id)))


def test_cli_hold_and_run_and_the_dashboard_shows_what_was_deleted(
    pg_url, sessions, settings_factory
):
    from fastapi.testclient import TestClient

    from moderation.web.app import create_dashboard_app
    from tests.moderation.cli.runner import fails, ok

    settings = settings_factory(database_url=pg_url)
    [job] = _submit(settings, sessions, [Submission.from_bytes(_image((0, 0, 0), 1))])
    ctx = build_context(settings, ColourScorer(), sessions, worker="test@retention")
    try:
        run_batch(ctx, [job])
    finally:
        ctx.close()
    _age(sessions, job, 8)  # past the default 7 days

    assert "legal hold on" in ok("retention", "hold", str(job), "--url", pg_url)
    assert "would delete the bytes of 0 images" in ok(
        "retention", "run", "--dry-run", "--url", pg_url
    )
    ok("retention", "hold", str(job), "--release", "--url", pg_url)
    assert "would delete the bytes of 1 images" in ok(
        "retention", "run", "--dry-run", "--url", pg_url
    )
    assert _stored(sessions, job)[0]
    assert "deleted the bytes of 1 images (1 clear" in ok("retention", "run", "--url", pg_url)
    assert _stored(sessions, job)[2]
    fails("retention", "hold", "999999", "--url", pg_url, match="no job 999999")

    engine = make_engine(pg_url)
    app = create_dashboard_app(
        settings_factory(database_url=pg_url, allowed_hosts=["testserver"]),
        engine=engine,
        clock=utcnow,
        no_auth=True,
    )
    try:
        with TestClient(app) as client:
            page = client.get("/overview").text
    finally:
        engine.dispose()
    section = page.split('id="retention"')[1].split("</section>")[0]
    today = utcnow().date().isoformat()
    assert f'<td>{today}</td><td class="num">1</td><td class="num">0</td>' in section


def test_beat_runs_retention_on_the_ops_queue(pg_url, sessions, settings_factory):
    from types import SimpleNamespace

    from workers.celery_app import RETENTION_TASK, beat_schedule, ops_routes
    from workers.ops import run_retention as beat_body

    settings = settings_factory(database_url=pg_url, retention_clear_days=0)
    tasks = {e["task"]: e["schedule"] for e in beat_schedule(settings).values()}
    assert tasks[RETENTION_TASK] == 3600.0
    assert ops_routes(settings)[RETENTION_TASK] == {"queue": settings.ops_queue_name}
    off = settings_factory(retention_interval_s=0)
    assert RETENTION_TASK not in {e["task"] for e in beat_schedule(off).values()}
    [job] = _submit(settings, sessions, [Submission.from_bytes(_image((0, 0, 0), 2))])
    ctx = build_context(settings, ColourScorer(), sessions, worker="test@retention")
    try:
        run_batch(ctx, [job])
    finally:
        ctx.close()
    done = beat_body(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    assert done == {
        "purged_clear": 1,
        "purged_reviewed": 0,
        "purged_bytes": done["purged_bytes"],
        "errors": 0,
    }
    assert done["purged_bytes"] > 0 and _stored(sessions, job)[2]


def test_admin_api_puts_and_lifts_a_legal_hold(api_factory, sessions):
    from moderation.db.models import AuditLogEntry

    api = api_factory()
    job = api.client.post(
        "/v1/jobs", files={"file": ("b.png", _image((0, 0, 0), 3))}, headers=api.headers("alice")
    ).json()["id"]
    url = f"/v1/jobs/{job}/legal-hold"
    assert api.client.put(url, headers=api.headers("alice")).status_code == 403
    assert api.client.put(url, headers=api.headers("rita")).status_code == 403
    assert api.client.put(url).status_code == 401
    held = api.client.put(url, headers=api.headers("adam"))
    assert held.status_code == 200 and held.json()["legal_hold"] is True
    with session_scope(sessions) as s:
        assert s.scalar(select(Image.legal_hold).join(Job).where(Job.id == job)) is True
    lifted = api.client.delete(url, headers=api.headers("adam"))
    assert lifted.status_code == 200 and lifted.json()["legal_hold"] is False
    assert (
        api.client.put("/v1/jobs/999999/legal-hold", headers=api.headers("adam")).status_code == 404
    )
    with session_scope(sessions) as s:
        actions = s.scalars(
            select(AuditLogEntry.action)
            .where(AuditLogEntry.actor == "adam")
            .order_by(AuditLogEntry.id)
        ).all()
    assert actions == ["legal_hold.set", "legal_hold.lift"]


def test_an_open_appeal_keeps_the_bytes_until_it_is_decided(pg_url, sessions, settings_factory):
    from moderation.db.repositories import appeals as appeals_repo

    settings = settings_factory(database_url=pg_url, retention_clear_days=7, audit_fraction=0)
    ids = _submit(settings, sessions, [Submission.from_bytes(_image((0, 0, 0), n)) for n in (1, 2)])
    ctx = build_context(settings, ColourScorer(), sessions, worker="test@appeal-hold")
    try:
        assert sorted(run_batch(ctx, ids).scored) == sorted(ids)
    finally:
        ctx.close()
    for job_id in ids:
        _age(sessions, job_id, 10)
    appealed, other = ids
    with session_scope(sessions) as s:
        target = appeals_repo.target_of(s, appealed)
        assert target is not None
        appeals_repo.insert_appeal(s, target, submitted_by="alice", reason="r", now=utcnow())
    report = run_retention(settings, sessions)
    assert report.purged_clear == 1
    assert _stored(sessions, appealed)[:3] == (True, None, False)  # kept: under appeal
    assert _stored(sessions, other)[2]  # purged
    with session_scope(sessions) as s:
        s.execute(update(Appeal).where(Appeal.job_id == appealed).values(status="decided"))
    assert run_retention(settings, sessions).purged_clear == 1
    assert _stored(sessions, appealed)[2]


def test_admin_api_shows_the_policy_and_runs_it_dry_by_default(
    api_factory, pg_url, sessions, settings_factory
):
    from moderation.db.models import AuditLogEntry

    settings = settings_factory(database_url=pg_url)
    api = api_factory(database_url=pg_url)
    [old, recent] = _submit(
        settings,
        sessions,
        [Submission.from_bytes(_image((0, 0, 0), n)) for n in (20, 21)],
    )
    ctx = build_context(settings, ColourScorer(), sessions, worker="test@retention")
    try:
        run_batch(ctx, [old, recent])
    finally:
        ctx.close()
    _age(sessions, old, 8)  # past the default 7 days; `recent` is not
    admin = api.headers("adam")
    policy = api.client.get("/v1/admin/retention", headers=admin).json()
    assert policy == {"clear_days": 7, "reviewed_days": 30, "interval_s": 3600, "by_day": []}

    dry = api.client.post("/v1/admin/retention/run", headers=admin)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["purged"] == 1
    assert not _stored(sessions, old)[2]  # a dry run deletes nothing

    done = api.client.post("/v1/admin/retention/run?dry_run=false", headers=admin).json()
    assert (done["dry_run"], done["purged"], done["purged_clear"], done["errors"]) == (
        False, 1, 1, 0,
    )  # fmt: skip
    assert done["purged_bytes"] > 0
    assert _stored(sessions, old)[2] and not _stored(sessions, recent)[2]
    [today] = api.client.get("/v1/admin/retention", headers=admin).json()["by_day"]
    assert (today["day"], today["clear"], today["reviewed"]) == (utcnow().date().isoformat(), 1, 0)
    again = api.client.post("/v1/admin/retention/run?dry_run=false", headers=admin).json()
    assert again["purged"] == 0  # nothing left to delete
    with session_scope(sessions) as s:
        logged = s.scalars(
            select(AuditLogEntry).where(AuditLogEntry.action == "retention.run")
        ).all()
        assert [(e.actor, e.details["purged_clear"]) for e in logged] == [
            ("api:adam", 1),
            ("api:adam", 0),
        ]
