"""Action rules as use cases: show the rules in force, list versions, set, roll back.

``moderation actions`` and the admin API (``/v1/admin/action-rules``) call these with a session
in a transaction. ``write_rules`` is the one writer of rule versions: every new version lands
with its audit-log entry (``action_rules.set`` / ``action_rules.rollback``) in the same
transaction. A request that cannot be carried out raises ``ActionRulesChangeError`` (one line
for the user); invalid rules raise ``ActionRulesError`` (a ``ValueError``, one line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from moderation.actions.resolver import RulesInForce, rules_in_force
from moderation.actions.rules import ActionRules, ActionRulesError, parse_rules, parse_rules_text
from moderation.db.repositories import action_rules as repo
from moderation.db.repositories import audit_log
from moderation.db.repositories.action_rules import ActionRuleVersionRecord

__all__ = [
    "ActionRuleVersionRecord",
    "ActionRulesChangeError",
    "ActionRulesError",
    "RulesChange",
    "UnknownActionRuleVersion",
    "in_force",
    "list_versions",
    "rollback",
    "set_rules",
    "show_version",
    "write_rules",
]


class ActionRulesChangeError(ValueError):
    """The change or lookup cannot be done; the message says why."""


class UnknownActionRuleVersion(ActionRulesChangeError):
    """No action rule version with that id."""


@dataclass(frozen=True)
class RulesChange:
    version: ActionRuleVersionRecord
    previous_id: int | None = None
    restored_from_id: int | None = None


def in_force(session: Session, rules_file: Path | str | None = None) -> RulesInForce:
    """The rules the pipeline decides with now (DB version > file > packaged)."""
    return rules_in_force(session, rules_file)


def list_versions(session: Session, *, limit: int = 100) -> list[ActionRuleVersionRecord]:
    """Versions newest first (the first is in force)."""
    return repo.history(session, limit=limit)


def show_version(session: Session, version_id: int) -> ActionRuleVersionRecord:
    version = repo.get_version(session, version_id)
    if version is None:
        raise UnknownActionRuleVersion(f"no action rule version {version_id}")
    return version


def write_rules(
    session: Session,
    rules: ActionRules,
    *,
    kind: str,
    reason: str,
    actor: str,
    restored_from_id: int | None = None,
) -> RulesChange:
    """The one writer: append ``rules`` as the version in force and its audit-log entry
    (``action_rules.<kind>``, the previous version's id and the rules in the details)."""
    previous = repo.active_version(session)
    record = repo.append_version(
        session,
        rules=rules.as_dict(),
        reason=reason,
        created_by=actor,
        restored_from_id=restored_from_id,
    )
    audit_log.record_action(
        session,
        actor=actor,
        action=f"action_rules.{kind}",
        target_type="action_rule_version",
        target_id=record.id,
        details={
            "previous_version_id": previous.id if previous else None,
            "restored_from_id": restored_from_id,
            "reason": reason,
            "rules": rules.as_dict(),
        },
    )
    return RulesChange(record, previous.id if previous else None, restored_from_id)


def set_rules(
    session: Session,
    rules: str | Mapping[str, Any],
    *,
    reason: str,
    actor: str,
    categories: Iterable[str] | None = None,
) -> RulesChange:
    """Validate ``rules`` (YAML text or a parsed mapping; with ``categories``, rule
    categories must be among them) and make them the version in force."""
    if not reason.strip():
        raise ActionRulesChangeError("a rule change needs a reason")
    parsed = (
        parse_rules_text(rules, categories=categories)
        if isinstance(rules, str)
        else parse_rules(rules, categories=categories)
    )
    return write_rules(session, parsed, kind="set", reason=reason, actor=actor)


def rollback(
    session: Session, *, actor: str, to: int | None = None, reason: str | None = None
) -> RulesChange:
    """Make version ``to`` (default: the one before the version in force) in force again, as a
    new version carrying its rules (history is kept)."""
    versions = repo.history(session, limit=2)
    if not versions:
        raise ActionRulesChangeError("no action rule versions yet: nothing to roll back")
    if to is None and len(versions) < 2:
        raise ActionRulesChangeError(
            f"only one action rule version ({versions[0].id}): nothing to roll back to"
        )
    target = repo.get_version(session, to) if to is not None else versions[1]
    if target is None:
        raise UnknownActionRuleVersion(f"no action rule version {to}")
    return write_rules(
        session,
        parse_rules(target.rules),
        kind="rollback",
        reason=reason or f"rollback to version {target.id}",
        actor=actor,
        restored_from_id=target.id,
    )
