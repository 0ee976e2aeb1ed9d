"""Read side of jobs: one job with its scores and decision, and filtered listings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from moderation.db.models import BankEntry, Decision, Image, Job, Score
from moderation.domain import JobStatus

__all__ = [
    "BankMatchView",
    "JobView",
    "ScoreView",
    "StoppedJob",
    "get_job_view",
    "list_job_views",
    "list_stopped_jobs",
]


@dataclass(frozen=True)
class ScoreView:
    category: str
    score: float
    tier: str
    source: str
    phrasing: str | None


@dataclass(frozen=True)
class BankMatchView:
    """Why a job matched a hash bank: the entry, its bank and category, and how near it was
    (Hamming distance of 256 bits). ``enabled`` is the entry's state now, not at match time."""

    entry_id: int
    bank: str
    category: str | None
    distance: int | None
    enabled: bool
    reason: str | None


@dataclass(frozen=True)
class JobView:
    id: int
    status: JobStatus
    sha256: str
    source: str
    external_id: str | None
    submitted_by: str | None
    priority: int
    attempts: int
    error_code: str | None
    error: str | None
    submitted_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    scorer: str | None
    catalog_version: str | None
    callback_url: str | None
    callback_state: str | None
    callback_attempts: int = 0
    tier: str | None = None
    action: str | None = None
    category: str | None = None
    policy: str | None = None
    threshold_versions: dict[str, Any] = field(default_factory=dict)
    matched_bank_entry_id: int | None = None
    bank_match: BankMatchView | None = None
    scores: list[ScoreView] = field(default_factory=list)
    match_text: str | None = None  # what the job asked for (0012) …
    want_tags: bool | None = None
    context: dict[str, Any] | None = None
    scenario: dict[str, Any] | None = None  # … and what its decision made of it
    frame: int | None = None  # the animation frame that decided (0014)
    decision_version: int | None = None  # 2… after re-decisions (retro-matching)
    decision_reason: str | None = None  # why the last re-decision, e.g. "retro_match: …"
    # the action rules' verdict (0014): {action, escalate, rules_version, categories}; None
    # before the job is decided (and for decisions made before 0014)
    enforcement: Mapping[str, Any] | None = None


def _base_query() -> Select[Any]:
    return (
        select(Job, Image.sha256, Decision)
        .join(Image, Image.id == Job.image_id)
        .outerjoin(Decision, Decision.job_id == Job.id)
    )


def _views(session: Session, rows: Sequence[Any]) -> list[JobView]:
    ids = [job.id for job, _, _ in rows]
    scores: dict[int, list[ScoreView]] = {}
    if ids:
        query = select(Score).where(Score.job_id.in_(ids)).order_by(Score.job_id, Score.category)
        for s in session.scalars(query):
            scores.setdefault(s.job_id, []).append(
                ScoreView(s.category, s.score, str(s.tier), str(s.source), s.phrasing)
            )
    matches = _bank_matches(session, [d for _, _, d in rows if d is not None])
    return [
        _view(job, sha, decision, scores.get(job.id, []), matches.get(job.id))
        for job, sha, decision in rows
    ]


def _bank_matches(session: Session, decisions: Sequence[Decision]) -> dict[int, BankMatchView]:
    """The bank entry behind each decision that matched one (one query for the page)."""
    entry_ids = {d.matched_bank_entry_id for d in decisions if d.matched_bank_entry_id}
    if not entry_ids:
        return {}
    entries = {
        e.id: e for e in session.scalars(select(BankEntry).where(BankEntry.id.in_(entry_ids)))
    }
    out = {}
    for d in decisions:
        entry = entries.get(d.matched_bank_entry_id) if d.matched_bank_entry_id else None
        if entry is not None:
            out[d.job_id] = BankMatchView(
                entry_id=entry.id,
                bank=str(entry.bank),
                category=entry.category,
                distance=d.match_distance,
                enabled=entry.enabled,
                reason=entry.reason,
            )
    return out


def _view(
    job: Job,
    sha256: str,
    decision: Decision | None,
    scores: list[ScoreView],
    bank_match: BankMatchView | None = None,
) -> JobView:
    return JobView(
        id=job.id,
        status=JobStatus(job.status),
        sha256=sha256,
        source=job.source,
        external_id=job.external_id,
        submitted_by=job.submitted_by,
        priority=job.priority,
        attempts=job.attempts,
        error_code=job.error_code,
        error=job.error,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        scorer=job.scorer,
        catalog_version=job.catalog_version,
        callback_url=job.callback_url,
        callback_state=job.callback_state,
        callback_attempts=job.callback_attempts or 0,
        tier=str(decision.tier) if decision else None,
        action=decision.action if decision else None,
        category=decision.category if decision else None,
        policy=decision.policy if decision else None,
        threshold_versions=dict(decision.threshold_versions) if decision else {},
        matched_bank_entry_id=decision.matched_bank_entry_id if decision else None,
        bank_match=bank_match,
        scores=scores,
        match_text=job.match_text,
        want_tags=job.want_tags,
        context=dict(job.context) if job.context is not None else None,
        scenario=dict(decision.scenario) if decision and decision.scenario else None,
        frame=decision.frame if decision else None,
        decision_version=decision.version if decision else None,
        decision_reason=decision.reason if decision else None,
        enforcement=_enforcement(decision) if decision else None,
    )


def get_job_view(session: Session, job_id: int) -> JobView | None:
    row = session.execute(_base_query().where(Job.id == job_id)).first()
    return _views(session, [row])[0] if row is not None else None


def list_job_views(
    session: Session,
    *,
    status: JobStatus | None = None,
    since: dt.datetime | None = None,
    submitted_by: str | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[JobView]:
    """Jobs in id order (a stable cursor: pass the last id as ``after_id`` for the next page)."""
    query = _base_query().where(Job.id > after_id).order_by(Job.id).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if since is not None:
        query = query.where(Job.submitted_at >= since)
    if submitted_by is not None:
        query = query.where(Job.submitted_by == submitted_by)
    return _views(session, session.execute(query).all())


@dataclass(frozen=True)
class StoppedJob:
    """A failed or quarantined job with its reason (``moderation jobs failed|quarantined``)."""

    id: int
    external_id: str | None
    attempts: int
    error_code: str | None
    error: str | None
    finished_at: dt.datetime | None


def list_stopped_jobs(session: Session, status: JobStatus, limit: int) -> list[StoppedJob]:
    """The newest ``limit`` jobs in ``status``, newest first."""
    rows = session.execute(
        select(Job.id, Job.external_id, Job.attempts, Job.error_code, Job.error, Job.finished_at)
        .where(Job.status == status)
        .order_by(Job.id.desc())
        .limit(limit)
    ).all()
    return [StoppedJob(*row) for row in rows]


def _enforcement(decision: Decision) -> dict[str, Any] | None:
    if decision.enforcement is None:
        return None
    return {**dict(decision.enforcement_detail or {}), "action": decision.enforcement}
