"""Appeals: a submitter contests a job's decision; a reviewer other than those who reviewed
the job upholds or overturns it. The outcome writes a new decision version (the old one kept
in ``decision_history``), sends the callback again, is audit-logged, and becomes labelled
evidence for calibration with its own weight (``MODERATION_APPEAL_EVIDENCE_WEIGHT``) — never
an audit: appeals are not a random sample, so the adjusters' estimators
(``repositories.reviews.evidence_records``) do not see them.

The API (``/v1/jobs/{id}/appeal``, ``/v1/appeals``) and the dashboard's Appeals page call
these; the storage is ``moderation.db.repositories.appeals``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from moderation.actions.resolver import rules_in_force
from moderation.actions.rules import evaluate_change
from moderation.db.repositories import appeals as repo
from moderation.db.repositories.appeals import AppealRow, CategoryAppeals
from moderation.db.repositories.audit_log import record_action
from moderation.db.repositories.jobs import set_callback_state
from moderation.domain import JobStatus, RiskTier
from moderation.thresholds.labels import LabelRow
from moderation.thresholds.tiers import ACTIONS

__all__ = [
    "OUTCOMES",
    "AppealConflict",
    "AppealForbidden",
    "AppealLabel",
    "AppealRow",
    "CategoryAppeals",
    "UnknownAppeal",
    "appeal_labels",
    "appeal_rates",
    "claim_appeal",
    "claim_next_appeal",
    "decide_appeal",
    "get_appeal",
    "list_appeals",
    "submit_appeal",
]

OUTCOMES = ("upheld", "overturned")


class UnknownAppeal(LookupError):
    """No such appeal (or job, or not the caller's job)."""


class AppealConflict(RuntimeError):
    """Not possible in the current state: already appealed, not decided, claimed by another
    reviewer, already decided."""


class AppealForbidden(PermissionError):
    """The reviewer reviewed the appealed job: someone else must judge the appeal."""


def submit_appeal(
    session: Session, job_id: int, *, submitter: str, reason: str, now: dt.datetime
) -> AppealRow:
    """Open an appeal of ``job_id`` by the submitter that owns it (``UnknownAppeal`` for
    anyone else's job, ``AppealConflict`` when it is not decided or already appealed)."""
    target = repo.target_of(session, job_id)
    if target is None or target.submitted_by != submitter:
        raise UnknownAppeal(f"no job {job_id}")
    if target.status != JobStatus.SCORED or target.tier is None:
        raise AppealConflict(f"job {job_id} has no decision to appeal yet")
    if repo.appeal_of_job(session, job_id) is not None:
        raise AppealConflict(f"job {job_id} was already appealed")
    appeal = repo.insert_appeal(session, target, submitted_by=submitter, reason=reason, now=now)
    record_action(
        session, actor=submitter, action="appeal.submit", target_type="job", target_id=job_id,
        details={"appeal_id": appeal.id, "tier": appeal.tier, "category": appeal.category},
    )  # fmt: skip
    return appeal


def get_appeal(session: Session, appeal_id: int) -> AppealRow:
    found = repo.get_appeal(session, appeal_id)
    if found is None:
        raise UnknownAppeal(f"no appeal {appeal_id}")
    return found


def list_appeals(
    session: Session, *, status: str | None = None, limit: int = 100, before_id: int | None = None
) -> list[AppealRow]:
    return repo.list_appeals(session, status=status, limit=limit, before_id=before_id)


def _take(appeal: repo.Appeal, reviewer: str, now: dt.datetime, lease_s: float) -> AppealRow:
    return repo.take(appeal, reviewer, now + dt.timedelta(seconds=lease_s))


def claim_next_appeal(
    session: Session, reviewer: str, *, now: dt.datetime, lease_s: float
) -> AppealRow | None:
    """The oldest open appeal this reviewer may judge (never one of a job they reviewed)."""
    appeal = repo.next_claimable(session, reviewer, now)
    return None if appeal is None else _take(appeal, reviewer, now, lease_s)


def _check_judge(session: Session, appeal: repo.Appeal, reviewer: str, now: dt.datetime) -> None:
    if reviewer in repo.deciders_of(session, appeal.job_id):
        raise AppealForbidden(
            f"{reviewer} reviewed job {appeal.job_id}: another reviewer must judge its appeal"
        )
    if appeal.status != "open":
        raise AppealConflict(f"appeal {appeal.id} is already decided")
    held = appeal.claim_expires_at is not None and appeal.claim_expires_at > now
    if appeal.claimed_by not in (None, reviewer) and held:
        raise AppealConflict(f"appeal {appeal.id} is claimed by another reviewer")


def claim_appeal(
    session: Session, appeal_id: int, reviewer: str, *, now: dt.datetime, lease_s: float
) -> AppealRow:
    """Claim one appeal (``AppealForbidden`` for a reviewer of its job)."""
    appeal = repo.lock_appeal(session, appeal_id)
    if appeal is None:
        raise UnknownAppeal(f"no appeal {appeal_id}")
    _check_judge(session, appeal, reviewer, now)
    return _take(appeal, reviewer, now, lease_s)


@dataclass(frozen=True)
class AppealDecided:
    appeal: AppealRow
    decision_version: int
    callback_due: bool  # the job's callback was made pending: publish it


def decide_appeal(
    session: Session,
    appeal_id: int,
    reviewer: str,
    *,
    outcome: str,
    tier: RiskTier | None,
    note: str | None,
    now: dt.datetime,
    action_rules_file: Path | None = None,
) -> AppealDecided:
    """Uphold or overturn (``tier``: the corrected tier, required and different from the
    appealed one when overturning). The reviewer must hold the claim or the appeal must be
    unclaimed; a reviewer of the job may not decide. Writes the new decision version, marks
    the callback due, audit-logs."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    appeal = repo.lock_appeal(session, appeal_id)
    if appeal is None:
        raise UnknownAppeal(f"no appeal {appeal_id}")
    _check_judge(session, appeal, reviewer, now)
    appealed = RiskTier(appeal.tier)
    if outcome == "overturned":
        if tier is None or tier == appealed:
            raise ValueError("overturning needs the corrected tier, different from the appealed")
        final = tier
    else:
        final = appealed
    # the appealed category's action follows the corrected tier (judged like the model's);
    # the other categories keep theirs (``MODERATION_ACTION_RULES_FILE``: ``action_rules_file``)
    rules = rules_in_force(session, action_rules_file)
    enforced = evaluate_change(
        rules.rules, repo.enforcement_detail_of(session, appeal.job_id), appeal.category or "",
        final, "model", rules_version=rules.version_id,
    )  # fmt: skip
    version = repo.redecide(
        session, appeal.job_id, tier=final, action=ACTIONS[final],
        reason=f"appeal #{appeal.id} {outcome} by {reviewer}", now=now,
        enforcement=enforced.action, enforcement_detail=enforced.as_dict(),
    )  # fmt: skip
    row = repo.close(
        appeal, outcome=outcome, new_tier=final.value, reviewer=reviewer, note=note, now=now
    )
    has_callback = repo.job_callback_url(session, appeal.job_id) is not None
    if has_callback:
        set_callback_state(session, [appeal.job_id], "pending")
    record_action(
        session, actor=reviewer, action=f"appeal.{outcome}", target_type="job",
        target_id=appeal.job_id,
        details={"appeal_id": appeal.id, "from": appealed.value, "to": final.value,
                 "decision_version": version, "note": note},
    )  # fmt: skip
    return AppealDecided(row, version, has_callback)


def appeal_rates(session: Session, since: dt.datetime) -> list[CategoryAppeals]:
    """Appeal rate (appeals / decisions) and overturn rate (overturned / decided appeals) per
    category since ``since`` (the dashboard)."""
    return repo.appeal_rates(session, since)


@dataclass(frozen=True)
class AppealLabel:
    """A decided appeal as a calibration label, with the weight appeals get."""

    row: LabelRow
    score: float
    weight: float


def appeal_labels(
    session: Session,
    *,
    weight: float,
    category: str | None = None,
    since: dt.datetime | None = None,
) -> list[AppealLabel]:
    """Decided appeals as labelled evidence (``appeal`` rows: the job id and the job's stored
    score) weighted by ``weight`` (``MODERATION_APPEAL_EVIDENCE_WEIGHT``): calibration adds
    them to the labels (``services.thresholds.calibrate`` with ``appeal_weight``); never
    counted as an audit."""
    return [
        AppealLabel(LabelRow(0, "appeal", str(job_id), cat, violation), score, weight)
        for job_id, cat, score, violation in repo.decided_appeal_labels(
            session, category=category, since=since
        )
    ]
