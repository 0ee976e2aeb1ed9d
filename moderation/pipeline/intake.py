"""Intake: turn submitted bytes (or files) into image rows and queued jobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from moderation.db.repositories.images import NewImage, upsert_images
from moderation.db.repositories.jobs import NewJob, create_jobs
from moderation.images import sha256_hex

__all__ = ["Submission", "register_submissions"]


@dataclass(frozen=True)
class Submission:
    """One image to moderate. Either ``data`` (kept in the DB) or a ``file://`` location."""

    sha256: str
    byte_size: int
    data: bytes | None = None
    storage_uri: str | None = None
    source: str = "api"
    external_id: str | None = None
    submitted_by: str | None = None
    priority: int = 0
    callback_url: str | None = None
    # names the submission across re-runs of its insert transaction (``create_jobs``)
    intake_key: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, **fields: object) -> Submission:
        return cls(sha256=sha256_hex(data), byte_size=len(data), data=data, **fields)  # type: ignore[arg-type]


def register_submissions(
    session: Session,
    submissions: Sequence[Submission],
    now: dt.datetime,
    *,
    publishing: bool = False,
) -> list[int]:
    """Insert (or find) each image by sha256 and queue one job per submission; job ids in order.

    Bytes are not decoded here: a bad image still gets a job, which the worker fails with a
    reason — the uploader can then look the failure up like any other result.
    """
    image_ids = upsert_images(
        session,
        [NewImage(s.sha256, s.byte_size, s.data, s.storage_uri) for s in submissions],
    )
    return create_jobs(
        session,
        [
            NewJob(
                image_id=image_ids[s.sha256],
                source=s.source,
                external_id=s.external_id,
                submitted_by=s.submitted_by,
                priority=s.priority,
                callback_url=s.callback_url,
                intake_key=s.intake_key,
            )
            for s in submissions
        ],
        now,
        publishing=publishing,
    )
