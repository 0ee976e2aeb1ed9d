"""Retro-matching runs, the stored hashes they scan, and re-decisions with their history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from moderation.db.models import (
    BankEntry,
    Decision,
    Image,
    Job,
    RetroMatch,
    RetroRun,
)
from moderation.db.types import utcnow
from moderation.domain import BankKind, JobStatus, RiskTier

from .results import locked_decision, supersede

__all__ = [
    "RedecideJob",
    "RetroEntry",
    "RunRecord",
    "create_run",
    "entries_needing_retro",
    "mark_covered",
    "runs_to_resume",
    "entries_for",
    "get_run",
    "jobs_of_images",
    "latest_runs",
    "record_redecision",
    "stored_hashes",
    "update_run",
]


@dataclass(frozen=True)
class RunRecord:
    id: int
    entry_ids: list[int]
    trigger: str
    status: str
    since: dt.datetime
    cursor: int
    total: int
    scanned: int
    matched: int
    redecided: int
    error: str | None
    created_at: dt.datetime
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class RetroEntry:
    id: int
    bank: BankKind
    category: str | None
    pdq_hash: str
    crop_hashes: str | None
    image_id: int | None
    enabled: bool


@dataclass(frozen=True)
class RedecideJob:
    """A scored job whose image matched: its current decision, and whether it was already
    re-decided for an entry (``done_entries``)."""

    job_id: int
    image_id: int
    callback_url: str | None
    callback_state: str | None
    tier: RiskTier
    priority: float
    category: str | None
    version: int
    done_entries: frozenset[int]
    enforcement_detail: Mapping[str, Any] | None = None  # the action rules' verdict (0014)


def _record(row: RetroRun) -> RunRecord:
    return RunRecord(
        row.id, list(row.entry_ids), row.trigger, row.status, row.since, row.cursor, row.total,
        row.scanned, row.matched, row.redecided, row.error, row.created_at, row.finished_at,
    )  # fmt: skip


def create_run(
    session: Session, entry_ids: Sequence[int], *, trigger: str, since: dt.datetime
) -> RunRecord:
    # one pass to size the run and find where the window starts (ids grow with time), so
    # the pages below are plain primary-key ranges whatever the planner thinks of the filters
    total, first = session.execute(
        select(func.count(), func.min(Image.id)).where(*_window(since))
    ).one()
    row = RetroRun(
        entry_ids=sorted(set(entry_ids)),
        trigger=trigger[:100],
        status="pending",
        since=since,
        # nothing in the window: start past the newest image (the run ends at once)
        cursor=(first - 1)
        if first is not None
        else (session.scalar(select(func.max(Image.id))) or 0),
        total=total,
    )
    session.add(row)
    session.flush()
    return _record(row)


def get_run(session: Session, run_id: int) -> RunRecord | None:
    row = session.get(RetroRun, run_id)
    return _record(row) if row is not None else None


def latest_runs(session: Session, limit: int = 20) -> list[RunRecord]:
    query = select(RetroRun).order_by(RetroRun.id.desc()).limit(limit)
    return [_record(row) for row in session.scalars(query)]


def update_run(session: Session, run_id: int, **values: object) -> None:
    row = session.get(RetroRun, run_id, with_for_update=True)
    if row is None:
        raise LookupError(f"no retro-match run {run_id}")
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()


def entries_for(session: Session, entry_ids: Sequence[int]) -> list[RetroEntry]:
    query = select(
        BankEntry.id, BankEntry.bank, BankEntry.category, BankEntry.pdq_hash,
        BankEntry.crop_hashes, BankEntry.image_id, BankEntry.enabled,
    ).where(BankEntry.id.in_(list(entry_ids))).order_by(BankEntry.id)  # fmt: skip
    return [RetroEntry(r[0], BankKind(r[1]), *r[2:]) for r in session.execute(query)]


def _window(since: dt.datetime) -> list:  # type: ignore[type-arg]
    return [Image.created_at >= since, Image.pdq_hash.is_not(None)]


def stored_hashes(
    session: Session, *, since: dt.datetime, after_id: int, limit: int
) -> tuple[int | None, list[tuple[int, str, int | None]]]:
    """One page of a retro scan: the id range (``after_id``, ``after_id + limit``] — a
    primary-key range scan whatever the planner thinks of the other filters — and, of it, the
    (image id, PDQ hash, quality) of images stored since ``since`` that have a hash. Returns
    the range's end as the next cursor, or None once ``after_id`` is past the newest image.
    Read on the Core connection: no ORM row loading for a million rows."""
    newest = session.scalar(select(func.max(Image.id)))
    if newest is None or after_id >= newest:
        return None, []
    end = after_id + limit
    query = select(Image.id, Image.pdq_hash, Image.pdq_quality).where(
        Image.id > after_id, Image.id <= end, *_window(since)
    )
    result = session.connection().execute(query)
    # the driver's tuples as they are (ints and strings: no result processing to apply)
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    return min(end, newest), rows


def jobs_of_images(session: Session, image_ids: Sequence[int]) -> list[RedecideJob]:
    """The scored jobs (with a decision) of these images."""
    if not image_ids:
        return []
    query = (
        select(
            Job.id, Job.image_id, Job.callback_url, Job.callback_state, Decision.tier,
            Decision.priority, Decision.category, Decision.version, Decision.enforcement_detail,
        )
        .join(Decision, Decision.job_id == Job.id)
        .where(Job.image_id.in_(list(image_ids)), Job.status == JobStatus.SCORED)
        .order_by(Job.id)
    )  # fmt: skip
    rows = list(session.execute(query))
    done: dict[int, set[int]] = {}
    ids = [r[0] for r in rows]
    if ids:
        pairs = select(RetroMatch.job_id, RetroMatch.entry_id).where(RetroMatch.job_id.in_(ids))
        for job_id, entry_id in session.execute(pairs):
            done.setdefault(job_id, set()).add(entry_id)
    return [
        RedecideJob(
            r[0],
            r[1],
            r[2],
            r[3],
            RiskTier(r[4]),
            r[5],
            r[6],
            r[7],
            frozenset(done.get(r[0], ())),
            r[8],
        )  # fmt: skip
        for r in rows
    ]


def record_redecision(
    session: Session,
    *,
    job_id: int,
    entry_id: int,
    run_id: int | None,
    distance: int,
    tier: RiskTier,
    action: str,
    category: str | None,
    priority: float,
    reason: str,
    enforcement: str | None = None,
    enforcement_detail: Mapping[str, Any] | None = None,
) -> bool:
    """Keep the job's current decision in ``decision_history`` and replace it with a new
    version naming the entry. False (nothing written) if this (job, entry) pair was already
    re-decided — the unique pair, checked under the decision's row lock, keeps re-runs and
    concurrent runs from deciding twice."""
    decision = locked_decision(session, job_id)
    if decision is None:
        return False
    already = session.scalar(
        select(RetroMatch.id).where(RetroMatch.job_id == job_id, RetroMatch.entry_id == entry_id)
    )
    if already is not None:
        return False
    old_tier = RiskTier(decision.tier)
    supersede(session, decision, reason=reason, now=utcnow())
    decision.tier = tier
    decision.action = action
    decision.category = category
    decision.priority = priority
    decision.matched_bank_entry_id = entry_id
    decision.match_distance = distance
    decision.frame = None
    if enforcement is not None:
        decision.enforcement = enforcement
        decision.enforcement_detail = dict(enforcement_detail or {})
    session.add(
        RetroMatch(
            run_id=run_id, job_id=job_id, entry_id=entry_id, distance=distance,
            old_tier=old_tier.value, new_tier=tier.value,
        )
    )  # fmt: skip
    session.flush()
    return True


def mark_covered(session: Session, entry_ids: Sequence[int], when: dt.datetime) -> None:
    """Entries a run now covers (the sweep leaves them alone until changed again)."""
    if entry_ids:
        session.execute(
            update(BankEntry).where(BankEntry.id.in_(list(entry_ids))).values(retro_at=when)
        )


def entries_needing_retro(session: Session, limit: int = 100_000) -> list[int]:
    """Enabled violation entries no run has covered since they were added or re-enabled."""
    query = (
        select(BankEntry.id)
        .where(
            BankEntry.bank == BankKind.CONFIRMED_VIOLATION,
            BankEntry.enabled.is_(True),
            or_(BankEntry.retro_at.is_(None), BankEntry.retro_at < BankEntry.changed_at),
        )
        .order_by(BankEntry.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def runs_to_resume(session: Session, stale_before: dt.datetime) -> list[int]:
    """Runs never started, or started before ``stale_before`` and not finished (their worker
    died): the sweep resumes them from their cursor."""
    query = select(RetroRun.id).where(
        or_(
            RetroRun.status == "pending",
            (RetroRun.status == "running") & (RetroRun.started_at < stale_before),
        )
    )
    return list(session.scalars(query.order_by(RetroRun.id)))
