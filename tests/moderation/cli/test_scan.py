"""``moderation scan``: a folder in, tiers per category and failures with reasons out."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from moderation.db import make_engine
from moderation.db.models import Job
from tests.fakes import noise_jpeg, png_bytes

from .test_db import run_cli


def test_scan_scores_a_folder_and_reports_failures(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        (folder / f"ok{i}.png").write_bytes(png_bytes((40 * i, 10, 10)))
    (folder / "cut.jpg").write_bytes(noise_jpeg()[:-600])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image file: skipped by suffix")
    db = tmp_path / "scan.sqlite3"
    result = run_cli("scan", str(folder), "--url", f"sqlite:///{db}", "--backend", "fake")
    assert result.returncode == 0, result.stderr
    assert "Tiers per category (7 images" in result.stdout
    assert "Failures (2)" in result.stdout and "zero bytes" in result.stdout
    assert "cut.jpg" in result.stdout
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    engine.dispose()
    assert statuses == {"scored": 5, "failed": 2}


def test_scan_of_an_empty_folder_is_a_clear_error(tmp_path: Path):
    result = run_cli("scan", str(tmp_path), "--url", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    assert result.returncode == 2 and "no image files" in result.stderr
