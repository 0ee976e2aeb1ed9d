"""Review-queue rows for the review page tests: scored jobs with real image bytes.

Three open items, highest priority first: an extreme ``weapons`` item (blurred on the page),
a high ``sexual`` item (blurred) and a medium ``weapons`` item (not blurred), plus a job whose
stored bytes are not an image and one kept as a ``file://`` location.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from sqlalchemy.orm import Session

from moderation.db.models import Decision, Image, ImageBlob, Job, ReviewItem, Score
from moderation.domain import JobStatus, ReviewItemKind, ReviewItemStatus, RiskTier, ScoreSource
from tests.fakes import noise_jpeg, png_bytes

NOW = dt.datetime(2026, 11, 20, 12, 30, tzinfo=dt.UTC)

# name: (image bytes, item tier, item category, priority, {category: (score, phrasing, tier)})
ITEMS = {
    "extreme": (
        noise_jpeg(seed=1),
        RiskTier.EXTREME,
        "weapons",
        9.0,
        {
            "weapons": (0.41, "a photo of a handgun pointed at the camera", RiskTier.EXTREME),
            "sexual": (0.07, "explicit nudity", RiskTier.CLEAR),
        },
    ),
    "high": (
        png_bytes((200, 30, 30), size=(48, 32)),
        RiskTier.HIGH,
        "sexual",
        5.0,
        {"sexual": (0.83, None, RiskTier.HIGH), "weapons": (0.02, "a rifle", RiskTier.CLEAR)},
    ),
    "medium": (
        png_bytes((30, 200, 30), size=(40, 40)),
        RiskTier.MEDIUM,
        "weapons",
        1.0,
        {"weapons": (0.19, "a knife on a table", RiskTier.MEDIUM)},
    ),
}


def _job(session: Session, data: bytes | None, uri: str | None = None) -> Job:
    image = Image(sha256=hashlib.sha256(data or (uri or "").encode()).hexdigest(),
                  byte_size=len(data or b""), storage_uri=uri)  # fmt: skip
    session.add(image)
    session.flush()
    if data is not None:
        session.add(ImageBlob(image_id=image.id, data=data))
    job = Job(image_id=image.id, status=JobStatus.SCORED, submitted_at=NOW, finished_at=NOW,
              external_id=f"ext-{image.id}")  # fmt: skip
    session.add(job)
    session.flush()
    return job


def seed_review_queue(session: Session, tmp_path: Path | None = None) -> dict[str, int]:
    """Insert the items above (and the odd payloads); review item ids by name."""
    ids: dict[str, int] = {}
    for n, (name, (data, tier, category, priority, scores)) in enumerate(ITEMS.items()):
        job = _job(session, data)
        session.add(
            Decision(job_id=job.id, tier=tier, action="review_now", category=category,
                     policy="content_safety", threshold_versions={}, decided_at=NOW)
        )  # fmt: skip
        for cat, (score, phrasing, cat_tier) in scores.items():
            session.add(Score(job_id=job.id, category=cat, score=score, phrasing=phrasing,
                              source=ScoreSource.EMBEDDING, tier=cat_tier))  # fmt: skip
        item = ReviewItem(job_id=job.id, kind=ReviewItemKind.QUEUE, category=category,
                          score=scores[category][0], tier=tier, priority=priority,
                          created_at=NOW - dt.timedelta(minutes=10 - n))  # fmt: skip
        session.add(item)
        session.flush()
        ids[name] = item.id
        ids[f"{name}_job"] = job.id
    # done already (never claimed again): only reached by id in the image-route tests
    for name, job in (
        ("html", _job(session, b"<html><script>alert(1)</script></html>")),
        ("missing", _job(session, None, "file:///nonexistent/moderation-test.png")),
    ) + ((("file", _job(session, None, _write(tmp_path))),) if tmp_path else ()):
        item = ReviewItem(job_id=job.id, kind=ReviewItemKind.QUEUE, category="weapons",
                          score=0.0, tier=RiskTier.MEDIUM, status=ReviewItemStatus.DONE,
                          created_at=NOW)  # fmt: skip
        session.add(item)
        session.flush()
        ids[name] = item.id
    return ids


def _write(tmp_path: Path) -> str:
    path = tmp_path / "stored image.png"
    path.write_bytes(png_bytes((1, 2, 3), size=(8, 8)))
    return path.as_uri()
