"""Calibration runs on both backends: fresh scores via a Scorer, stored scores, the write."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from moderation.db import make_sessionmaker
from moderation.db.models import AuditLogEntry, ThresholdVersion
from moderation.db.repositories import thresholds as repo
from moderation.domain import RiskTier
from moderation.thresholds.calibration import CalibrationError, calibrate, write_versions
from moderation.thresholds.labels import read_labels
from moderation.thresholds.scales import SCALES
from moderation.thresholds.strategies import recall_target
from tests.moderation.thresholds.calibration_fixtures import (
    FakeColourScorer,
    add_scored_jobs,
    colour_scores,
    write_csv,
    write_labelled_images,
)

CONTENT_SAFETY_CUTOFFS = {name: spec.cutoffs for name, spec in SCALES.items()}


def _no_scorer():
    raise AssertionError("stored scores must not build a scorer")


def test_scores_image_files_in_batches_and_writes_one_version_per_category(engine, tmp_path):
    labels = write_labelled_images(tmp_path / "imgs", n_pos=30, n_neg=30)
    scorer = FakeColourScorer()
    progress: list[tuple[int, int]] = []
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        run = calibrate(
            s, read_labels(labels), strategy="recall_target", params={"recall": 0.9, "delta": 0.1},
            scorer_factory=lambda: scorer, batch_size=16, labels_file=str(labels),
            on_progress=lambda done, total: progress.append((done, total)),
        )  # fmt: skip
        write_versions(s, run, actor="tester", policy="content_safety")
    assert scorer.batches == [16, 16, 16, 12]  # 60 distinct files, each scored once
    assert progress[-1] == (60, 60)
    assert [c.category for c in run.categories] == ["gore", "weapons"]
    weapons = {c.category: c for c in run.categories}["weapons"]
    values, y = colour_scores(30, 30, seed=1)
    expected = recall_target(values / 255 * 0.5, y, 0.9, 0.1)
    assert weapons.result.threshold == pytest.approx(expected.threshold)
    with Session() as s:
        active = repo.active_versions(s)
        version = active["weapons"]
        assert version.value == pytest.approx(expected.threshold)
        assert version.strategy == "recall_target" and version.created_by == "tester"
        assert version.stats["positives"] == 30 and version.stats["n"] == 60
        assert "Clopper–Pearson" in version.stats["bound"]
        assert version.stats["model_ids"] == ["fake-colour-v1"]
        assert version.cutoffs[RiskTier.MEDIUM] == version.value
        actions = s.scalars(select(AuditLogEntry.action)).all()
        assert actions == ["thresholds.calibrate", "thresholds.calibrate"]


def test_stored_scores_by_job_id_and_sha256_need_no_model(engine, tmp_path):
    Session = make_sessionmaker(engine)
    values, y = colour_scores(25, 25, seed=3)
    scores = values / 255 * 0.5
    with Session.begin() as s:
        refs = add_scored_jobs(s, scores)
    rows = [
        (job_id, "", "weapons", int(label)) if i % 2 else ("", sha, "weapons", int(label))
        for i, ((job_id, sha), label) in enumerate(zip(refs, y, strict=True))
    ]
    labels = write_csv(tmp_path / "labels.csv", ["job_id", "sha256", "category", "is_violation"],
                       rows)  # fmt: skip
    with Session() as s:
        run = calibrate(s, read_labels(labels), strategy="roc_optimal", scale="gme_cosine",
                        scorer_factory=_no_scorer)  # fmt: skip
    (c,) = run.categories
    assert c.scale == "gme_cosine" and run.model_ids == ["stored-model"]
    assert np.sort(c.scores) == pytest.approx(np.sort(scores))
    assert c.result.strategy == "roc_optimal" and c.result.positives == 25


def test_scale_of_stored_scores_comes_from_the_version_they_were_tiered_with(engine, tmp_path):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        v = repo.append_version(
            s, category="weapons", policy="content_safety", scale="probability",
            cutoffs=CONTENT_SAFETY_CUTOFFS["probability"], strategy="preset", reason="t",
            created_by="t",
        )  # fmt: skip
        refs = add_scored_jobs(s, [0.9, 0.8, 0.3, 0.1], version_id=v.id)
    rows = [(j, "weapons", lab) for (j, _), lab in zip(refs, [1, 1, 0, 0], strict=True)]
    labels = write_csv(tmp_path / "l.csv", ["job_id", "category", "is_violation"], rows)
    with Session() as s:
        run = calibrate(s, read_labels(labels), strategy="precision_target",
                        params={"precision": 1.0})  # fmt: skip
    (c,) = run.categories
    assert (c.scale, c.result.threshold, c.previous.id) == ("probability", 0.8, v.id)


def test_undecodable_and_missing_files_are_skipped_and_listed(engine, tmp_path):
    labels = write_labelled_images(tmp_path, n_pos=25, n_neg=5)
    (tmp_path / "img000.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "img001.png").unlink()
    with make_sessionmaker(engine)() as s:
        run = calibrate(s, read_labels(labels), strategy="roc_optimal",
                        scorer_factory=FakeColourScorer)  # fmt: skip
    reasons = {s.ref.rsplit("/", 1)[-1]: s.reason for s in run.skipped}
    assert set(reasons) == {"img000.png", "img001.png"}
    assert reasons["img001.png"].startswith("unreadable: No such file")
    assert reasons["img000.png"].startswith(("corrupt", "truncated", "not_an_image"))
    assert len(run.skipped) == 4  # both categories of each bad file
    assert all(c.scores.size == 28 for c in run.categories)


def test_a_category_without_enough_violations_blocks_the_whole_write(engine, tmp_path):
    labels = write_labelled_images(tmp_path, n_pos=10, n_neg=40)  # gore has 40, weapons 10
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        params = {"recall": 0.95, "delta": 0.05}
        run = calibrate(s, read_labels(labels), strategy="recall_target", params=params,
                        scorer_factory=FakeColourScorer)  # fmt: skip
        assert [c.category for c in run.failed] == ["gore", "weapons"]
        assert "needs at least 59 labelled violations; the sample has 10" in run.failed[1].error
        with pytest.raises(CalibrationError, match="not writing"):
            write_versions(s, run, actor="t", policy="content_safety")
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(ThresholdVersion)) == 0


def test_category_filter(engine, tmp_path):
    labels = write_labelled_images(tmp_path, n_pos=20, n_neg=20)
    with make_sessionmaker(engine)() as s:
        run = calibrate(s, read_labels(labels), strategy="mean_std", categories=["gore"],
                        scorer_factory=FakeColourScorer)  # fmt: skip
    assert [c.category for c in run.categories] == ["gore"]
    assert run.categories[0].result.threshold == pytest.approx(
        run.categories[0].scores.mean() + 0.5 * run.categories[0].scores.std()
    )


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([(999, "weapons", 1)], {}, "no such scored job or image"),
        ([(1, "gore", 1)], {}, "no stored score for the row's category"),
        ([(1, "weapons", 1)], {}, "pass --scale"),
        ([(1, "weapons", 1), (2, "weapons", 0)], {"scale": "gme_cosine"}, "different models"),
        ([(1, "weapons", 1)], {"strategy": "magic"}, "unknown strategy"),
        ([(1, "weapons", 1)], {"categories": ["nudity"]}, "no label rows for categories"),
    ],
)
def test_stored_score_problems_are_clear_errors(engine, tmp_path, rows, kwargs, message):
    Session = make_sessionmaker(engine)
    with Session.begin() as s:
        add_scored_jobs(s, [0.3], model_id="model-a", tag="a")
        add_scored_jobs(s, [0.1], model_id="model-b", tag="b")
    labels = write_csv(tmp_path / "l.csv", ["job_id", "category", "is_violation"], rows)
    kwargs = {"strategy": "mean_std", **kwargs}
    with Session() as s, pytest.raises(CalibrationError, match=message):
        calibrate(s, read_labels(labels), **kwargs)


def test_categories_the_scorer_does_not_produce_are_an_error(engine, tmp_path):
    write_labelled_images(tmp_path, n_pos=2, n_neg=2)
    labels = write_csv(tmp_path / "l.csv", ["image", "category", "is_violation"],
                       [("img000.png", "nudity", 1)])  # fmt: skip
    with make_sessionmaker(engine)() as s, pytest.raises(CalibrationError, match="not scored by"):
        calibrate(s, read_labels(labels), strategy="mean_std", scorer_factory=FakeColourScorer)


def test_nothing_usable_is_an_error_not_an_empty_calibration(engine, tmp_path):
    labels = write_csv(tmp_path / "l.csv", ["image", "category", "is_violation"],
                       [("gone.png", "weapons", 1), ("also-gone.png", "weapons", 0)])  # fmt: skip
    with make_sessionmaker(engine)() as s, pytest.raises(CalibrationError, match="no usable"):
        calibrate(s, read_labels(labels), strategy="mean_std", scorer_factory=FakeColourScorer)
    with make_sessionmaker(engine)() as s, pytest.raises(CalibrationError, match="no scorer"):
        calibrate(s, read_labels(labels), strategy="mean_std")
