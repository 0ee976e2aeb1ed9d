"""``moderation scan``: a folder in, tiers per category and failures with reasons out."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

from sqlalchemy import func, select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Job, PatternEmbedding
from moderation.db.repositories.scorer_profiles import live_profiles
from moderation.db.types import utcnow
from tests.fakes import noise_jpeg, png_bytes

from .test_db import run_cli


def test_scan_scores_a_folder_and_reports_failures(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        (folder / f"ok{i}.png").write_bytes(png_bytes((40 * i, 10, 10)))
    (folder / "cut.jpg").write_bytes(noise_jpeg()[:-600])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image: the content decides, not the suffix")
    db = tmp_path / "scan.sqlite3"
    cache = {"MODERATION_PATTERN_CACHE_DIR": str(tmp_path / "pattern-cache")}
    args = ("scan", str(folder), "--url", f"sqlite:///{db}", "--backend", "fake")
    result = run_cli(*args, env=cache)
    assert result.returncode == 1, result.stderr  # some files failed
    assert "Tiers per category (5 images scored, 3 files failed" in result.stdout
    assert "Failures (3)" in result.stdout and "zero bytes" in result.stdout
    assert "cut.jpg" in result.stdout and "notes.txt" in result.stdout
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        shared = conn.execute(select(func.count(PatternEmbedding.id))).scalar_one()
    with make_sessionmaker(engine)() as s:  # what it scored with, for the threshold adjuster
        [profile] = live_profiles(s, since=utcnow() - dt.timedelta(hours=1))
    engine.dispose()
    assert statuses == {"scored": 5, "failed": 3}
    assert shared >= 1  # the pattern vectors went to the database for other hosts too
    assert (profile.worker, profile.backend) == (f"scan@{socket.gethostname()}", "fake")
    assert {c["scale"] for c in profile.categories.values()} == {"fake_cosine"}


def test_scan_of_an_empty_folder_is_a_clear_error(tmp_path: Path):
    result = run_cli("scan", str(tmp_path), "--url", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode == 2 and "no files in" in result.stderr


def test_a_folder_is_registered_and_scored_in_chunks(tmp_path: Path, sqlite_url: str):
    """Bounded statements and memory: files go in ``intake_chunk`` at a time."""
    from moderation.config import Settings
    from moderation.db.migrate import upgrade
    from moderation.db.session import make_sessionmaker
    from moderation.pipeline.scan import find_files, scan_paths
    from moderation.scoring.scorers import build_scorer

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(7):
        (folder / f"{i}.png").write_bytes(png_bytes((30 * i, 5, 5)))
    (folder / "z-empty.png").write_bytes(b"")
    upgrade(sqlite_url)
    settings = Settings(_env_file=None, database_url=sqlite_url, backend="fake", batch_size=2)
    engine = make_engine(sqlite_url)
    progress: list[int] = []
    report = scan_paths(
        settings,
        build_scorer(settings),
        make_sessionmaker(engine),
        find_files(folder).entries,
        on_progress=progress.append,
        intake_chunk=3,
    )
    engine.dispose()
    assert len(report.job_ids) == 8 and sum(progress) == 8
    assert progress == [2, 1, 2, 1, 2]  # chunks of 3, 3, 2 files; batches of 2 within each
    assert sum(report.decisions.values()) == 7 == report.scored
    assert [f.error_code for f in report.failures] == ["empty"]


def test_the_readme_scan_of_the_samples_says_what_the_readme_says(tmp_path: Path):
    """README command 1: the 4 photos scored, broken/ named as not scanned, exit 0; with -r
    the two broken files fail with their codes, nothing else in the folder (the licences live
    beside it), exit 1 because of the two."""
    import json

    from tests.samples import SAMPLES_DIR

    db = f"sqlite:///{tmp_path / 'scan.sqlite3'}"
    env = {"MODERATION_PATTERN_CACHE_DIR": str(tmp_path / "pattern-cache")}
    top = run_cli("scan", str(SAMPLES_DIR), "--url", db, env=env)
    assert top.returncode == 0, top.stderr
    assert "4 images scored, 0 files failed" in top.stdout
    assert "broken: a subfolder (use --recursive)" in top.stdout
    result = run_cli("scan", "-r", str(SAMPLES_DIR), "--url", db, env=env)
    assert result.returncode == 1, result.stderr
    assert "4 images scored, 2 files failed" in result.stdout
    as_json = run_cli("scan", "-r", str(SAMPLES_DIR), "--url", db, "--json", env=env)
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    failed = {Path(r["path"]).name: r["error_code"] for r in rows if r["status"] != "scored"}
    assert failed == {"not-an-image.jpg": "not_an_image", "truncated.jpg": "truncated"}
    assert sum(r["status"] == "scored" for r in rows) == 4
