"""Intake: turn submitted bytes (or files) into image rows and queued jobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy.orm import Session

from moderation.db.repositories.images import NewImage, upsert_images
from moderation.db.repositories.jobs import NewJob, create_jobs
from moderation.images import sha256_hex
from moderation.storage.blobs import BlobStore
from moderation.storage.refs import reference_key
from moderation.thresholds.scenarios import JobOptions

__all__ = [
    "OptionsRefused",
    "Submission",
    "check_options",
    "keep_bytes",
    "register_submissions",
]


class OptionsRefused(ValueError):
    """A job asks for something this deployment cannot do (e.g. text matching without an
    embedding backend); the message says why."""


def check_options(options: JobOptions, backend: str) -> None:
    """Refuse, before a job is queued, what the configured backend cannot do: ``match_text``
    and album tags need a backend that embeds text (``gme`` or ``fake``)."""
    from moderation.scoring.texts import backend_embeds_text

    if backend_embeds_text(backend):
        return
    asked = [n for n, v in (("match_text", options.match_text), ("tags", options.tags)) if v]
    if asked:
        raise OptionsRefused(
            f"{' and '.join(asked)} need a backend that embeds text (gme or fake); "
            f"MODERATION_BACKEND={backend} cannot"
        )


@dataclass(frozen=True)
class Submission:
    """One image to moderate. Either ``data`` (kept in the DB) or a ``file://`` location."""

    sha256: str
    byte_size: int
    data: bytes | None = None
    storage_uri: str | None = None
    blob_uri: str | None = None  # the blob store's copy (dir/s3), instead of ``data``
    source: str = "api"
    external_id: str | None = None
    submitted_by: str | None = None
    priority: int = 0
    callback_url: str | None = None
    # names the submission across re-runs of its insert transaction (``create_jobs``)
    intake_key: str | None = None
    options: JobOptions = field(default_factory=JobOptions)  # match_text, tags, context

    @classmethod
    def from_bytes(cls, data: bytes, **fields: object) -> Submission:
        return cls(sha256=sha256_hex(data), byte_size=len(data), data=data, **fields)  # type: ignore[arg-type]

    @classmethod
    def from_reference(cls, uri: str, **fields: object) -> Submission:
        """An ``image_uri`` already checked (``moderation.storage.refs.check_image_uri``): the
        worker reads the bytes when it scores the job; the image row is keyed by the URI."""
        return cls(sha256=reference_key(uri), byte_size=0, storage_uri=uri, **fields)  # type: ignore[arg-type]


def keep_bytes(store: BlobStore, submissions: Sequence[Submission]) -> list[Submission]:
    """Put uploaded bytes in the blob store (``MODERATION_BLOB_STORE``) before the intake
    transaction: ``db`` leaves them for ``image_blobs``; ``dir``/``s3`` write them (keyed by
    sha256, so the same upload is stored once) and the image row keeps their ``blob_uri``."""
    if store.kind == "db":
        return list(submissions)
    out = []
    for s in submissions:
        if s.data is None:
            out.append(s)
            continue
        stored = store.put(s.sha256, s.data)
        out.append(replace(s, data=stored.data, blob_uri=stored.blob_uri))
    return out


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
        [NewImage(s.sha256, s.byte_size, s.data, s.storage_uri, s.blob_uri) for s in submissions],
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
                match_text=s.options.match_text,
                want_tags=s.options.tags,
                context=s.options.context.as_dict() if s.options.context else None,
            )
            for s in submissions
        ],
        now,
        publishing=publishing,
    )
