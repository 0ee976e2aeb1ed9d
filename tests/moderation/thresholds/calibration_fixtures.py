"""Test data for calibration: a fake colour scorer, labelled image files, stored scored jobs."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from moderation.db.models import Image, Job, Score
from moderation.domain import JobStatus, RiskTier, ScoreSource
from moderation.scoring.base import CategoryScore, ScoreSet

CATEGORIES = ("weapons", "gore")


class FakeColourScorer:
    """Scores by colour, in GME-cosine-like units: weapons = mean red/255 × 0.5, gore = green."""

    model_id = "fake-colour-v1"
    catalog_version = ""
    categories = CATEGORIES
    scales = {"weapons": "gme_cosine", "gore": "gme_cosine"}
    severities = {"weapons": 3, "gore": 2}
    base_thresholds: dict[str, float] = {}

    def __init__(self) -> None:
        self.batches: list[int] = []

    def score_images(self, images: Sequence[PILImage.Image]) -> list[ScoreSet]:
        self.batches.append(len(images))
        out = []
        for image in images:
            mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0) / 255 * 0.5
            out.append({
                c: CategoryScore(c, float(mean[i]), ScoreSource.EMBEDDING)
                for i, c in enumerate(CATEGORIES)
            })  # fmt: skip
        return out


def colour_scores(n_pos: int, n_neg: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Channel values 0–255: violations around 150, non-violations around 70."""
    rng = np.random.default_rng(seed)
    pos = np.clip(rng.normal(150, 25, n_pos), 0, 255).round()
    neg = np.clip(rng.normal(70, 25, n_neg), 0, 255).round()
    return np.r_[pos, neg], np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]


def write_labelled_images(directory: Path, n_pos: int = 30, n_neg: int = 30, seed: int = 1) -> Path:
    """Solid-colour PNGs labelled for both categories; returns the labels CSV (relative paths)."""
    directory.mkdir(parents=True, exist_ok=True)
    values, labels = colour_scores(n_pos, n_neg, seed)
    rows = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        name = f"img{i:03d}.png"
        PILImage.new("RGB", (8, 8), (int(value), int(255 - value), 0)).save(directory / name)
        rows.append({"image": name, "category": "weapons", "is_violation": int(label)})
        rows.append({"image": name, "category": "gore", "is_violation": int(not label)})
    path = directory / "labels.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "category", "is_violation"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def add_scored_jobs(
    session: Session,
    scores: Sequence[float],
    *,
    category: str = "weapons",
    model_id: str = "stored-model",
    version_id: int | None = None,
    tag: str = "",
) -> list[tuple[int, str]]:
    """One scored job per score (each on its own image); returns (job id, image sha256)."""
    out = []
    for i, score in enumerate(scores):
        sha = hashlib.sha256(f"{tag}{category}{i}".encode()).hexdigest()
        image = Image(sha256=sha, byte_size=1)
        session.add(image)
        session.flush()
        job = Job(image_id=image.id, status=JobStatus.SCORED, scorer=model_id)
        session.add(job)
        session.flush()
        session.add(Score(job_id=job.id, category=category, score=float(score),
                          source=ScoreSource.EMBEDDING, tier=RiskTier.CLEAR,
                          threshold_version_id=version_id))  # fmt: skip
        out.append((job.id, sha))
    session.flush()
    return out


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path
