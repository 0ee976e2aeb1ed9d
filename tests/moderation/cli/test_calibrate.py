"""``moderation calibrate`` on both backends: versions + evidence, report with plots, dry run."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

from moderation.cli import calibrate as calibrate_cli
from moderation.db import make_engine, make_sessionmaker
from moderation.db.repositories import audit_log
from moderation.db.repositories import thresholds as repo
from moderation.embedders.fake import FakeEmbedder
from tests.moderation.cli.runner import db_session, fails, ok
from tests.moderation.thresholds.calibration_fixtures import (
    FakeColourScorer,
    add_scored_jobs,
    colour_scores,
    write_csv,
    write_labelled_images,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _stored_labels(url: str, tmp_path, n_pos: int = 30, n_neg: int = 30):
    """Scored jobs in the DB plus a labels CSV naming half by job id, half by sha256."""
    values, y = colour_scores(n_pos, n_neg, seed=5)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as s:
            refs = add_scored_jobs(s, values / 255 * 0.5)
    finally:
        engine.dispose()
    rows = [(j, "", "weapons", int(v)) if i % 2 else ("", sha, "weapons", int(v))
            for i, ((j, sha), v) in enumerate(zip(refs, y, strict=True))]  # fmt: skip
    return write_csv(
        tmp_path / "labels.csv", ["job_id", "sha256", "category", "is_violation"], rows
    )


def _counts(url: str) -> tuple[int, int]:
    with db_session(url) as s:
        return len(repo.history(s)), len(audit_log.entries(s))


def test_calibrate_writes_a_version_with_evidence_and_a_report(db_url, tmp_path):
    labels = _stored_labels(db_url, tmp_path)
    report = tmp_path / "report"
    out = ok("calibrate", str(labels), "--strategy", "recall_target", "--recall", "0.9",
             "--delta", "0.1", "--scale", "gme_cosine", "--report", str(report),
             "--actor", "ana", "--url", db_url)  # fmt: skip
    assert "threshold versions written" in out and "Clopper–Pearson" in out
    with db_session(db_url) as s:
        (version,) = repo.history(s)
        assert (version.category, version.strategy, version.created_by) == (
            "weapons", "recall_target", "ana")  # fmt: skip
        assert version.stats["positives"] == 30 and version.stats["recall"] >= 0.9
        (entry,) = audit_log.entries(s)
        assert (entry.action, entry.target_id) == ("thresholds.calibrate", str(version.id))
    assert (report / "hist_weapons.png").read_bytes().startswith(PNG)
    assert (report / "pr_weapons.png").read_bytes().startswith(PNG)
    html = (report / "report.html").read_text()
    assert '<img src="hist_weapons.png"' in html and '<img src="pr_weapons.png"' in html
    assert f"<td>{version.id}</td>" in html
    markdown = (report / "report.md").read_text()
    assert f"| weapons | gme_cosine | 60 | 30 | {version.value:.4f} |" in markdown
    assert "written as new threshold versions" in markdown


def test_dry_run_changes_nothing_but_still_reports(db_url, tmp_path):
    labels = _stored_labels(db_url, tmp_path)
    out = ok("calibrate", str(labels), "--strategy", "roc_optimal", "--scale", "gme_cosine",
             "--dry-run", "--report", str(tmp_path / "r"), "--url", db_url)  # fmt: skip
    assert "dry run: nothing written" in out
    assert _counts(db_url) == (0, 0)
    assert "not written (dry run)" in (tmp_path / "r" / "report.md").read_text()


def test_image_files_are_scored_with_the_configured_scorer(sqlite_url, tmp_path, monkeypatch):
    labels = write_labelled_images(tmp_path / "imgs", n_pos=30, n_neg=30)
    monkeypatch.setattr(calibrate_cli, "_scorer_factory", lambda settings: FakeColourScorer)
    out = ok("calibrate", str(labels), "--strategy", "precision_target", "--precision", "0.95",
             "--report", str(tmp_path / "r"), "--url", sqlite_url)  # fmt: skip
    assert "gore" in out and "weapons" in out
    with db_session(sqlite_url) as s:
        active = repo.active_versions(s)
    assert set(active) == {"gore", "weapons"}
    assert all(v.stats["precision"] >= 0.95 for v in active.values())
    assert active["weapons"].stats["model_ids"] == ["fake-colour-v1"]


def test_labels_problems_are_one_line_errors(sqlite_url, tmp_path):
    bad = write_csv(tmp_path / "bad.csv", ["job_id", "category", "is_violation"],
                    [(1, "weapons", "maybe")])  # fmt: skip
    fails("calibrate", str(bad), "--url", sqlite_url, match="line 2: is_violation 'maybe'")
    fails("calibrate", str(bad), "--strategy", "magic", "--url", sqlite_url,
          match="unknown --strategy 'magic'")  # fmt: skip
    unknown = write_csv(tmp_path / "u.csv", ["job_id", "category", "is_violation"],
                        [(7, "weapons", 1)])  # fmt: skip
    fails("calibrate", str(unknown), "--url", sqlite_url, match="no such scored job")
    assert _counts(sqlite_url) == (0, 0)


def test_too_few_violations_exit_2_with_one_line_and_nothing_written(sqlite_url, tmp_path):
    labels = _stored_labels(sqlite_url, tmp_path, n_pos=20, n_neg=20)
    env = {**os.environ, "COLUMNS": "200", "MODERATION_DATABASE_URL": sqlite_url}
    result = subprocess.run(
        [sys.executable, "-m", "moderation", "calibrate", str(labels), "--scale", "gme_cosine",
         "--report", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "needs at least 59 labelled violations; the sample has 20" in lines[0]
    assert "nothing written" in lines[0]
    assert _counts(sqlite_url) == (0, 0)
    assert "NOT written" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("command", ["calibrate", "thresholds"])
def test_help(command):
    assert "Usage" in ok(command, "--help")


def _fake_backend_images(directory, n_pos: int = 25, n_neg: int = 25):
    """PNGs for the fake embedder: violations blend the pixels that embed as "a gun" into noise
    (more of it → a higher weapons cosine), non-violations are noise (cosine ≈ 0 ± 0.04)."""
    directory.mkdir()
    gun = np.asarray(FakeEmbedder.image_matching("a gun"), dtype=np.float64)
    rng = np.random.default_rng(11)
    rows = []
    for i, alpha in enumerate(np.r_[rng.uniform(0.01, 0.25, n_pos), np.zeros(n_neg)]):
        pixels = alpha * gun + (1 - alpha) * rng.uniform(0, 255, size=gun.shape)
        PILImage.fromarray(pixels.astype(np.uint8)).save(directory / f"{i:02d}.png")
        rows.append((f"{i:02d}.png", "weapons", int(alpha > 0)))
    return write_csv(directory / "labels.csv", ["image", "category", "is_violation"], rows)


def test_end_to_end_with_the_fake_backend_on_image_files(db_url, tmp_path, monkeypatch):
    labels = _fake_backend_images(tmp_path / "imgs")
    monkeypatch.setenv("MODERATION_BACKEND", "fake")
    monkeypatch.setenv("MODERATION_PATTERN_CACHE_DIR", str(tmp_path / "cache"))
    out = ok("calibrate", str(labels), "--recall", "0.9", "--delta", "0.1",
             "--report", str(tmp_path / "r"), "--url", db_url)  # fmt: skip
    assert "threshold versions written" in out
    with db_session(db_url) as s:
        (version,) = repo.history(s)
    assert (version.category, version.scale) == ("weapons", "fake_cosine")
    assert version.stats["model_ids"] == ["fake-v1-pixelgrid16-wordhash"]
    assert version.stats["n"] == 50 and version.stats["positives"] == 25
    assert version.stats["recall"] >= 0.9 and 0 < version.value < 0.5
    assert (tmp_path / "r" / "hist_weapons.png").read_bytes().startswith(PNG)


def test_a_scorer_that_cannot_be_built_is_a_one_line_error(sqlite_url, tmp_path, monkeypatch):
    labels = _fake_backend_images(tmp_path / "imgs", n_pos=2, n_neg=2)
    monkeypatch.setenv("MODERATION_BACKEND", "gme")
    monkeypatch.delenv("MODERATION_GME_PATH", raising=False)
    fails("calibrate", str(labels), "--url", sqlite_url, match="needs MODERATION_GME_PATH")


def test_given_scores_calibrate_without_images_or_stored_jobs(sqlite_url, tmp_path):
    """A ``score`` column: labelled scores as given (here the API's example: precision 0.75 is
    first reached at 0.5, 4 of 5 flagged are violations); their scale is --scale."""
    rows = [(s, "weapons", 1) for s in (0.5, 0.6, 0.7, 0.8)]
    rows += [(s, "weapons", 0) for s in (0.1, 0.2, 0.3, 0.55)]
    labels = write_csv(tmp_path / "scores.csv", ["score", "category", "is_violation"], rows)
    fails("calibrate", str(labels), "--strategy", "precision_target", "--url", sqlite_url,
          match="pass --scale")  # fmt: skip
    ok("calibrate", str(labels), "--strategy", "precision_target", "--precision", "0.75",
       "--scale", "gme_cosine", "--appeals", "--url", sqlite_url)  # fmt: skip
    with db_session(sqlite_url) as s:
        (version,) = repo.history(s)
    assert (version.value, version.scale, version.strategy) == (
        0.5,
        "gme_cosine",
        "precision_target",
    )
    assert version.stats["precision"] == 0.8 and version.stats["appeal_labels"] == 0
