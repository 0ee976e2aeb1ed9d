"""Scores, decisions and review-queue entries of finished jobs; reuse of earlier scores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from moderation.db.models import AuditSample, Decision, DecisionHistory, Job, ReviewItem, Score
from moderation.domain import JobStatus, ReviewItemKind, ReviewItemStatus, RiskTier, ScoreSource
from moderation.scoring.base import CategoryScore, ScoreSet

from ._upsert import in_values, insert_ignore

__all__ = [
    "AuditSampleRow",
    "DecisionRow",
    "ReviewRow",
    "ScoreRow",
    "insert_audit_samples",
    "insert_decisions",
    "insert_review_items",
    "insert_scores",
    "recent_scores",
    "reusable_scores",
]


@dataclass(frozen=True)
class ScoreRow:
    job_id: int
    category: str
    score: float
    source: ScoreSource
    tier: RiskTier
    phrasing: str | None = None
    threshold_version_id: int | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DecisionRow:
    job_id: int
    tier: RiskTier
    action: str
    category: str | None
    priority: float
    policy: str
    threshold_versions: Mapping[str, int | None]
    matched_bank_entry_id: int | None = None
    match_distance: int | None = None
    scenario: Mapping[str, Any] | None = None  # match verdict, tags, context (0012)
    frame: int | None = None  # the animation frame that decided (0014)
    enforcement: str | None = None  # the action rules' overall action (0014)
    enforcement_detail: Mapping[str, Any] | None = None  # per category, escalate, version


@dataclass(frozen=True)
class ReviewRow:
    job_id: int
    kind: ReviewItemKind
    tier: RiskTier
    priority: float
    category: str | None = None
    score: float | None = None
    inclusion_probability: float = 1.0


def insert_scores(session: Session, rows: Sequence[ScoreRow]) -> None:
    """One row per (job, category); a second write of the same pair is ignored."""
    insert_ignore(
        session,
        Score.__table__,
        [
            {
                "job_id": r.job_id,
                "category": r.category,
                "score": float(r.score),
                "source": r.source,
                "tier": r.tier,
                "phrasing": r.phrasing,
                "threshold_version_id": r.threshold_version_id,
                "details": dict(r.details) if r.details else None,
            }
            for r in rows
        ],
        ["job_id", "category"],
    )


def insert_decisions(session: Session, rows: Sequence[DecisionRow]) -> None:
    """One decision per job; a second write is ignored."""
    insert_ignore(
        session,
        Decision.__table__,
        [
            {
                "job_id": r.job_id,
                "tier": r.tier,
                "action": r.action,
                "category": r.category,
                "priority": float(r.priority),
                "policy": r.policy,
                "threshold_versions": dict(r.threshold_versions),
                "matched_bank_entry_id": r.matched_bank_entry_id,
                "match_distance": r.match_distance,
                "scenario": dict(r.scenario) if r.scenario is not None else None,
                "frame": r.frame,
                "enforcement": r.enforcement,
                "enforcement_detail": (
                    dict(r.enforcement_detail) if r.enforcement_detail is not None else None
                ),
            }
            for r in rows
        ],
        ["job_id"],
    )


def insert_review_items(session: Session, rows: Sequence[ReviewRow]) -> None:
    """Open review-queue entries; at most one per job."""
    insert_ignore(
        session,
        ReviewItem.__table__,
        [
            {
                "job_id": r.job_id,
                "kind": r.kind,
                "category": r.category,
                "score": r.score,
                "tier": r.tier,
                "priority": float(r.priority),
                "inclusion_probability": r.inclusion_probability,
                "status": ReviewItemStatus.OPEN,
            }
            for r in rows
        ],
        ["job_id"],
    )


@dataclass(frozen=True)
class AuditSampleRow:
    job_id: int
    category: str
    stratum: str
    score: float
    inclusion_probability: float


def insert_audit_samples(session: Session, rows: Sequence[AuditSampleRow]) -> None:
    """One audit sample per (job, category); a second write of the same pair is ignored."""
    insert_ignore(
        session,
        AuditSample.__table__,
        [
            {
                "job_id": r.job_id,
                "category": r.category,
                "stratum": r.stratum,
                "score": float(r.score),
                "inclusion_probability": float(r.inclusion_probability),
            }
            for r in rows
        ],
        ["job_id", "category"],
    )


def locked_decision(session: Session, job_id: int) -> Decision | None:
    """The job's decision, row-locked for a re-decision (None: not decided)."""
    return session.scalars(
        select(Decision).where(Decision.job_id == job_id).with_for_update()
    ).one_or_none()


def supersede(session: Session, decision: Decision, *, reason: str, now: dt.datetime) -> None:
    """The one way a decision is replaced (retro-matching, an appeal): copy it whole into
    ``decision_history``, then stamp the next version on it. The caller sets the new tier,
    action, enforcement… on ``decision`` (locked with ``locked_decision``) and flushes."""
    session.add(
        DecisionHistory(
            job_id=decision.job_id, version=decision.version, tier=RiskTier(decision.tier).value,
            action=decision.action, category=decision.category, priority=decision.priority,
            policy=decision.policy, threshold_versions=decision.threshold_versions,
            matched_bank_entry_id=decision.matched_bank_entry_id,
            match_distance=decision.match_distance, frame=decision.frame,
            scenario=decision.scenario, reason=decision.reason,
            enforcement=decision.enforcement,
            decided_at=decision.decided_at, superseded_at=now,
        )
    )  # fmt: skip
    decision.version += 1
    decision.reason = reason
    decision.decided_at = now


def recent_scores(session: Session, category: str, limit: int) -> list[float]:
    """The ``limit`` newest model scores of ``category`` (what the audit budget is sized on;
    hash-match similarities are on another scale)."""
    query = (
        select(Score.score)
        .where(Score.category == category, Score.source != ScoreSource.HASH_MATCH)
        .order_by(Score.id.desc())
        .limit(limit)
    )
    return [float(v) for v in session.scalars(query)]


def reusable_scores(
    session: Session, image_ids: Sequence[int], *, scorer: str, catalog_version: str
) -> dict[int, ScoreSet]:
    """Scores an earlier job already got for the same image from the same model and catalog.

    Per image the newest such job the model actually scored is used; hash-match scores are
    not reused (bank matches are decided afresh for every job), and a job a bank hit decided
    without the model has nothing to reuse.
    """
    if not image_ids:
        return {}
    model_scored = (
        select(Score.id)
        .where(Score.job_id == Job.id, Score.source != ScoreSource.HASH_MATCH)
        .exists()
    )
    newest = (
        select(func.max(Job.id))
        .where(
            in_values(session, Job.image_id, image_ids),
            Job.status == JobStatus.SCORED,
            Job.scorer == scorer,
            Job.catalog_version == catalog_version,
            model_scored,
        )
        .group_by(Job.image_id)
    )
    query = (
        select(Job.image_id, Job.id, Score.category, Score.score, Score.source, Score.phrasing)
        .join(Score, Score.job_id == Job.id)
        .where(Job.id.in_(newest), Score.source != ScoreSource.HASH_MATCH)
    )
    out: dict[int, ScoreSet] = {}
    for image_id, job_id, category, score, source, phrasing in session.execute(query).all():
        out.setdefault(image_id, {})[category] = CategoryScore(
            category=category,
            score=score,
            source=ScoreSource(source),
            phrasing=phrasing,
            details={"reused_from_job": job_id},
        )
    return out
