"""The one writer of threshold versions: a new version and its audit-log entry, together.

Every change of a category's thresholds — ``moderation thresholds set / rollback / pin /
unpin`` (``moderation.services.thresholds``), calibration (``calibration.write_versions``) and
the adaptive adjuster (``adjusting``) — goes through ``write_version``, so each version lands
with exactly one audit-log entry in the same transaction, shaped the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from moderation.db.repositories import audit_log
from moderation.db.repositories import thresholds as repo
from moderation.db.repositories.thresholds import ThresholdVersionRecord
from moderation.domain import RiskTier

__all__ = ["ACTIONS", "write_version"]

# The audit-log action of each kind of change (``thresholds.<kind>``).
ACTIONS = frozenset({"set", "rollback", "pin", "unpin", "calibrate", "adjust"})


def write_version(
    session: Session,
    *,
    kind: str,
    category: str,
    cutoffs: Mapping[RiskTier, float],
    scale: str,
    policy: str,
    strategy: str,
    reason: str,
    actor: str,
    stats: Mapping[str, Any] | None = None,
    restored_from_id: int | None = None,
    pinned: bool = False,
    details: Mapping[str, Any] | None = None,
) -> ThresholdVersionRecord:
    """Append a new active version of ``category`` and its audit-log entry
    (action ``thresholds.<kind>``, target the new version) in the caller's transaction.

    The entry's details always carry the category and the new base value, plus ``details``.
    ``ValueError`` for cut-offs the policy could not use (nothing is written then).
    """
    if kind not in ACTIONS:
        raise ValueError(f"unknown threshold change {kind!r}; one of {sorted(ACTIONS)}")
    record = repo.append_version(
        session,
        category=category,
        policy=policy,
        cutoffs=cutoffs,
        scale=scale,
        strategy=strategy,
        reason=reason,
        created_by=actor,
        stats=stats,
        restored_from_id=restored_from_id,
        pinned=pinned,
    )
    audit_log.record_action(
        session,
        actor=actor,
        action=f"thresholds.{kind}",
        target_type="threshold_version",
        target_id=record.id,
        details={"category": category, "value": record.value, **(details or {})},
    )
    return record
