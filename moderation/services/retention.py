"""Retention of stored image bytes: the run (beat task ``workers.ops.run_retention`` and
``moderation retention run``), legal holds, and what was deleted per day (dashboard).

The policy is in ``moderation.db.repositories.retention`` (which jobs let their image's bytes
go). Deleting bytes keeps the image row, its PDQ hashes, the jobs, scores and decisions:
``GET /v1/jobs/{id}`` answers as before, hash-based retro-matching keeps working, and a job
that needs the pixels again fails with ``purged``. Each batch is one transaction that marks
the images purged and deletes their ``image_blobs`` rows; blob-store copies (``dir``/``s3``)
are deleted after that commit (a crash in between leaves an orphan object, never a row that
points at nothing).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from moderation import metrics
from moderation.config import Settings
from moderation.db.repositories import appeals as appeals_repo
from moderation.db.repositories import retention as repo
from moderation.db.repositories.audit_log import record_action
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.storage.blobs import delete_blob

__all__ = [
    "DayPurged",
    "RetentionReport",
    "UnknownJob",
    "retention_by_day",
    "run_retention",
    "set_legal_hold",
    "under_appeal",
]

log = logging.getLogger(__name__)


class UnknownJob(LookupError):
    pass


@dataclass
class RetentionReport:
    dry_run: bool
    purged_clear: int = 0
    purged_reviewed: int = 0
    purged_bytes: int = 0
    errors: int = 0  # blob-store copies that could not be deleted (logged)
    image_ids: list[int] = field(default_factory=list)

    @property
    def purged(self) -> int:
        return self.purged_clear + self.purged_reviewed


@dataclass(frozen=True)
class DayPurged:
    day: dt.date
    clear: int
    reviewed: int
    bytes: int


def under_appeal(session: Session) -> set[int]:
    """Job ids under an open appeal: retention keeps their bytes until it is decided."""
    return appeals_repo.open_appeal_job_ids(session)


def run_retention(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    actor: str | None = None,
) -> RetentionReport:
    """Delete (or, ``dry_run``, count) the stored bytes the policy lets go, in batches of
    ``retention_batch_size``; record the run (a real one started by an ``actor`` — the CLI,
    an admin over the API — also in the audit log; the beat task's runs are in
    ``retention_runs``). Safe to run concurrently with intake and with itself (an image
    marked by one run is skipped by the other)."""
    now = now or utcnow()
    clear_before = now - dt.timedelta(days=settings.retention_clear_days)
    reviewed_before = now - dt.timedelta(days=settings.retention_reviewed_days)
    report = RetentionReport(dry_run=dry_run)
    after_id = 0
    while True:

        def batch(s: Session, after: int = after_id) -> tuple[int, list[repo.PurgeCandidate]]:
            found = repo.purge_candidates(
                s,
                clear_before=clear_before,
                reviewed_before=reviewed_before,
                held_jobs=under_appeal(s),
                after_id=after,
                limit=settings.retention_batch_size,
            )
            last = found[-1].image_id if found else after
            if not dry_run:  # an image held since the read is skipped
                marked = set(repo.mark_purged(s, [c.image_id for c in found], now))
                found = [c for c in found if c.image_id in marked]
            return last, found

        last, found = in_transaction(sessions, batch)
        for c in found:
            _count(report, c)
            if c.blob_uri is not None and not dry_run:
                try:
                    delete_blob(c.blob_uri, settings)
                except Exception as exc:
                    report.errors += 1
                    log.warning("retention: could not delete %s: %s", c.blob_uri, exc)
        if last == after_id or len(found) < settings.retention_batch_size:
            break
        after_id = last
    totals = repo.RunTotals(
        now, dry_run, report.purged_clear, report.purged_reviewed, report.purged_bytes,
        report.errors,
    )  # fmt: skip

    def record(s: Session) -> None:
        repo.record_run(s, totals, utcnow())
        if actor is not None and not dry_run:
            record_action(
                s,
                actor=actor,
                action="retention.run",
                target_type="retention",
                details={
                    "purged_clear": report.purged_clear,
                    "purged_reviewed": report.purged_reviewed,
                    "purged_bytes": report.purged_bytes,
                    "errors": report.errors,
                },
            )

    in_transaction(sessions, record)
    return report


def _count(report: RetentionReport, c: repo.PurgeCandidate) -> None:
    if c.reason == "clear":
        report.purged_clear += 1
    else:
        report.purged_reviewed += 1
    report.purged_bytes += c.byte_size
    report.image_ids.append(c.image_id)
    if not report.dry_run:
        metrics.RETENTION_PURGED.labels(reason=c.reason).inc()


def set_legal_hold(session: Session, job_id: int, held: bool, *, actor: str = "cli") -> int:
    """Put (``held``) or lift a legal hold on the image of ``job_id`` (audit-logged); its
    image id. Raises ``UnknownJob``."""
    image_id = repo.image_of_job(session, job_id)
    if image_id is None or not repo.set_legal_hold(session, image_id, held):
        raise UnknownJob(f"no job {job_id}")
    record_action(
        session,
        actor=actor,
        action="legal_hold.set" if held else "legal_hold.lift",
        target_type="image",
        target_id=image_id,
        details={"job_id": job_id},
    )
    return image_id


def retention_by_day(session: Session, now: dt.datetime, days: int = 14) -> list[DayPurged]:
    """Images whose bytes retention deleted, per UTC day of the last ``days`` days (newest
    first; days without a run are left out)."""
    since = dt.datetime.combine(
        (now - dt.timedelta(days=days - 1)).date(), dt.time(), tzinfo=dt.UTC
    )
    per_day: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for run in repo.runs_since(session, since):
        row = per_day[run.started_at.astimezone(dt.UTC).date()]
        row[0] += run.purged_clear
        row[1] += run.purged_reviewed
        row[2] += run.purged_bytes
    return [DayPurged(day, *per_day[day]) for day in sorted(per_day, reverse=True)]
