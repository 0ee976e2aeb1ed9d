"""Reviews → threshold versions: run the configured adjuster per category on DB evidence.

The pure parts are elsewhere (``feedback.collate``, ``adaptive``); this module only loads the
evidence window, asks the adjuster, and — when the proposal differs from the active value —
appends a threshold version (``ladder_from_base``: the one re-basing rule) with the reason and
the evidence statistics, plus an audit-log entry. Thin evidence proposes no change, so nothing
is written.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy.orm import Session

from moderation.db.repositories import audit_log
from moderation.db.repositories import thresholds as versions
from moderation.db.repositories.reviews import category_evidence, reviewed_categories
from moderation.thresholds.adjusters import Proposal, RecallTargetAdjuster, seed_proposal
from moderation.thresholds.evidence import Evidence
from moderation.thresholds.resolver import thresholds_in_force
from moderation.thresholds.tiers import CategoryThresholds, ladder_from_base

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from moderation.config import Settings
    from moderation.scoring.base import Scorer

__all__ = [
    "ADJUSTERS",
    "AdjustOutcome",
    "AdjusterName",
    "adjust_category",
    "adjust_thresholds",
    "propose",
    "run_configured",
]

AdjusterName = Literal["recall_target", "seed"]
ADJUSTERS: tuple[AdjusterName, ...] = ("recall_target", "seed")


@dataclass(frozen=True)
class AdjustOutcome:
    """What the adjuster made of one category."""

    category: str
    scale: str
    proposal: Proposal
    version_id: int | None  # the version written; None when unchanged, dry run or skipped
    evidence: Mapping[str, Any]

    @property
    def changed(self) -> bool:
        return self.proposal.changed

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "scale": self.scale,
            "strategy": self.proposal.strategy,
            "previous": self.proposal.previous,
            "value": self.proposal.value,
            "changed": self.changed,
            "reason": self.proposal.reason,
            "version_id": self.version_id,
            "evidence": dict(self.evidence),
        }


def propose(
    adjuster: AdjusterName,
    current: float,
    scale: str,
    evidence: Evidence,
    *,
    now: float,
    recall_target: float = 0.95,
) -> Proposal:
    """The named adjuster's proposal for one category (pure)."""
    if adjuster == "seed":
        return seed_proposal(current, evidence.feedback())
    if adjuster == "recall_target":
        tuned = RecallTargetAdjuster.for_scale(scale, target=recall_target)
        return tuned.propose(current, evidence, now=now)
    raise ValueError(f"unknown adjuster {adjuster!r}; one of {ADJUSTERS}")


def adjust_category(
    session: Session,
    current: CategoryThresholds,
    *,
    adjuster: AdjusterName,
    now: dt.datetime,
    horizon_s: float,
    recall_target: float = 0.95,
    policy: str = "content_safety",
    created_by: str = "adjuster",
    dry_run: bool = False,
) -> AdjustOutcome:
    """Evidence of the last ``horizon_s`` → proposal → a new version when it differs."""
    category = current.category
    evidence = category_evidence(session, category, since=now - dt.timedelta(seconds=horizon_s))
    proposal = propose(
        adjuster,
        current.base,
        current.scale,
        evidence,
        now=now.timestamp(),
        recall_target=recall_target,
    )
    summary = evidence.summary()
    if not proposal.changed or dry_run:
        return AdjustOutcome(category, current.scale, proposal, None, summary)
    stats = {
        **_json_safe(proposal.evidence),
        "evidence": summary,
        "adjuster": adjuster,
        "previous_value": proposal.previous,
        "previous_version_id": current.version_id,
        "previous_source": current.source,
        "horizon_s": horizon_s,
    }
    record = versions.append_version(
        session,
        category=category,
        policy=policy,
        cutoffs=ladder_from_base(proposal.value, current.scale),
        scale=current.scale,
        strategy=proposal.strategy,
        reason=proposal.reason,
        created_by=created_by,
        stats=stats,
    )
    audit_log.record_action(
        session,
        actor=created_by,
        action="thresholds.adjust",
        target_type="threshold_version",
        target_id=record.id,
        details={
            "category": category,
            "adjuster": adjuster,
            "previous": proposal.previous,
            "value": record.value,
            "previous_version_id": current.version_id,
            "reason": proposal.reason,
        },
    )
    return AdjustOutcome(category, current.scale, proposal, record.id, summary)


def adjust_thresholds(
    session: Session,
    thresholds: Mapping[str, CategoryThresholds],
    *,
    adjuster: AdjusterName,
    now: dt.datetime,
    horizon_s: float,
    categories: Iterable[str] | None = None,
    recall_target: float = 0.95,
    policy: str = "content_safety",
    created_by: str = "adjuster",
    dry_run: bool = False,
) -> list[AdjustOutcome]:
    """Run ``adjuster`` for each category (default: every category of ``thresholds`` that had
    items routed to review within the horizon). ``thresholds`` are the ones in force
    (``resolve_thresholds``); a category not in them is an error (its scale is unknown)."""
    if categories is None:
        since = now - dt.timedelta(seconds=horizon_s)
        categories = [c for c in reviewed_categories(session, since=since) if c in thresholds]
    wanted = list(dict.fromkeys(categories))
    unknown = [c for c in wanted if c not in thresholds]
    if unknown:
        raise KeyError(f"no thresholds in force for {unknown} (known: {sorted(thresholds)})")
    return [
        adjust_category(
            session,
            thresholds[c],
            adjuster=adjuster,
            now=now,
            horizon_s=horizon_s,
            recall_target=recall_target,
            policy=policy,
            created_by=created_by,
            dry_run=dry_run,
        )
        for c in wanted
    ]


def run_configured(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    now: dt.datetime,
    scorer: Scorer | None = None,
    created_by: str = "adjuster",
) -> list[AdjustOutcome]:
    """One run of ``settings.adjuster`` over every reviewed category, in one transaction
    (what the beat task does)."""
    from moderation.db.retry import in_transaction

    def work(session: Session) -> list[AdjustOutcome]:
        return adjust_thresholds(
            session,
            thresholds_in_force(session, settings, scorer=scorer),
            adjuster=settings.adjuster,
            now=now,
            horizon_s=settings.adjust_horizon_s,
            recall_target=settings.recall_target,
            policy=settings.policy,
            created_by=created_by,
        )

    return in_transaction(sessions, work)


def _json_safe(value: Any) -> Any:
    """NaN/inf → None, recursively (threshold_versions.stats is JSON; JSONB refuses NaN)."""
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
