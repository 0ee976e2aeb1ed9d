"""Retention: which images' stored bytes may be deleted, marking them purged, legal holds,
and the record of each run (what it deleted, for the dashboard).

Only bytes this deployment stores are candidates (an ``image_blobs`` row or a blob-store
``blob_uri``); a reference's bytes (``image_uri``) belong to the submitter's bucket and are
never deleted. An image's bytes go only when *every* job on it allows it:

- ``clear``: the job is scored, every decision it had is ``clear``, it has no review and no
  open review item, and it finished before the clear cut-off;
- ``reviewed``: the job is scored, every review of it says ``not_violation``, none is newer
  than the reviewed cut-off and no review item of it is open.

A confirmed violation (any ``violation``/``other_category`` review: evidence), a job under
appeal (``held_jobs``), an image on legal hold, and any job not scored keep the bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, exists, false, func, not_, or_, select, update
from sqlalchemy.orm import Session, aliased

from moderation.db.models import Decision, Image, ImageBlob, Job, RetentionRun, Review, ReviewItem
from moderation.domain import JobStatus, ReviewItemStatus, ReviewLabel, RiskTier

__all__ = [
    "PurgeCandidate",
    "RunTotals",
    "image_of_job",
    "mark_purged",
    "purge_candidates",
    "record_run",
    "runs_since",
    "set_legal_hold",
]


@dataclass(frozen=True)
class PurgeCandidate:
    image_id: int
    reason: str  # clear | reviewed
    byte_size: int
    blob_uri: str | None  # None: the bytes are an image_blobs row


@dataclass(frozen=True)
class RunTotals:
    started_at: dt.datetime
    dry_run: bool
    purged_clear: int
    purged_reviewed: int
    purged_bytes: int
    errors: int


def purge_candidates(
    session: Session,
    *,
    clear_before: dt.datetime,
    reviewed_before: dt.datetime,
    held_jobs: Collection[int] = (),
    after_id: int = 0,
    limit: int = 500,
) -> list[PurgeCandidate]:
    """Up to ``limit`` images (id order, after ``after_id``) whose stored bytes the policy
    (module docstring) lets go."""
    j = aliased(Job)
    reviewed = exists().where(Review.job_id == j.id)
    keeps = or_(
        j.status != JobStatus.SCORED,
        exists().where(Review.job_id == j.id, Review.label != ReviewLabel.NOT_VIOLATION),
        exists().where(ReviewItem.job_id == j.id, ReviewItem.status != ReviewItemStatus.DONE),
        and_(
            # not releasable as clear ...
            or_(
                reviewed,
                not_(exists().where(Decision.job_id == j.id)),
                exists().where(Decision.job_id == j.id, Decision.tier != RiskTier.CLEAR),
                j.finished_at.is_(None),
                j.finished_at > clear_before,
            ),
            # ... nor as a reviewed non-violation
            or_(
                not_(reviewed),
                exists().where(Review.job_id == j.id, Review.created_at > reviewed_before),
            ),
        ),
        j.id.in_(list(held_jobs)) if held_jobs else false(),
    )
    any_reviewed = exists(
        select(1).select_from(j).join(Review, Review.job_id == j.id).where(j.image_id == Image.id)
    )
    in_db = exists().where(ImageBlob.image_id == Image.id)
    query = (
        select(Image.id, any_reviewed, Image.byte_size, Image.blob_uri)
        .where(
            Image.id > after_id,
            Image.purged_at.is_(None),
            Image.legal_hold.is_(False),
            or_(Image.blob_uri.is_not(None), in_db),
            exists().where(Job.image_id == Image.id),
            not_(exists(select(1).select_from(j).where(j.image_id == Image.id, keeps))),
        )
        .order_by(Image.id)
        .limit(limit)
    )
    return [
        PurgeCandidate(image_id, "reviewed" if was_reviewed else "clear", size, blob_uri)
        for image_id, was_reviewed, size, blob_uri in session.execute(query).all()
    ]


def mark_purged(session: Session, image_ids: Sequence[int], now: dt.datetime) -> list[int]:
    """Delete the ``image_blobs`` rows of ``image_ids`` and mark them purged (the rows, their
    hashes and jobs stay); images held meanwhile are skipped. The ids marked."""
    if not image_ids:
        return []
    marked = session.scalars(
        update(Image)
        .where(
            Image.id.in_(list(image_ids)),
            Image.purged_at.is_(None),
            Image.legal_hold.is_(False),
        )
        .values(purged_at=now, blob_uri=None)
        .returning(Image.id)
    ).all()
    if marked:
        session.execute(delete(ImageBlob).where(ImageBlob.image_id.in_(list(marked))))
    return list(marked)


def image_of_job(session: Session, job_id: int) -> int | None:
    return session.scalar(select(Job.image_id).where(Job.id == job_id))


def set_legal_hold(session: Session, image_id: int, held: bool) -> bool:
    """Put (or lift) a legal hold on an image's bytes; False when there is no such image."""
    done = session.execute(update(Image).where(Image.id == image_id).values(legal_hold=held))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def record_run(session: Session, totals: RunTotals, finished_at: dt.datetime) -> None:
    session.add(
        RetentionRun(
            started_at=totals.started_at,
            finished_at=finished_at,
            dry_run=totals.dry_run,
            purged_clear=totals.purged_clear,
            purged_reviewed=totals.purged_reviewed,
            purged_bytes=totals.purged_bytes,
            errors=totals.errors,
        )
    )
    session.flush()


def runs_since(session: Session, since: dt.datetime) -> list[RunTotals]:
    """The real (not dry) runs started since ``since``, oldest first."""
    rows = session.execute(
        select(
            RetentionRun.started_at,
            RetentionRun.dry_run,
            func.coalesce(RetentionRun.purged_clear, 0),
            RetentionRun.purged_reviewed,
            RetentionRun.purged_bytes,
            RetentionRun.errors,
        )
        .where(RetentionRun.started_at >= since, RetentionRun.dry_run.is_(False))
        .order_by(RetentionRun.started_at)
    ).all()
    return [RunTotals(*row) for row in rows]
