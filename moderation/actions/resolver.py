"""The one resolver of the action rules in force: DB version > rules file > packaged default.

The pipeline (``pipeline.batch``: every decision it writes), retro-matching re-decisions and
the admin surfaces (``services.actions``) ask ``rules_in_force``, so a job gets the same
action wherever it is decided.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy.orm import Session

from moderation.actions.rules import ActionRules, ActionRulesError, parse_rules, parse_rules_text
from moderation.db.repositories import action_rules as repo

__all__ = ["RulesInForce", "load_rules_file", "packaged_rules", "rules_in_force"]


@dataclass(frozen=True)
class RulesInForce:
    rules: ActionRules
    source: str  # "version" (DB), "file" (MODERATION_ACTION_RULES_FILE) or "packaged"
    version_id: int | None = None


@functools.cache
def packaged_rules() -> ActionRules:
    text = resources.files("moderation.actions").joinpath("default_rules.yaml").read_text("utf-8")
    return parse_rules_text(text)


@functools.lru_cache(maxsize=8)
def _file_rules(path: str, mtime_ns: int) -> ActionRules:
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ActionRulesError(f"{path}: cannot read the action rules file ({exc})") from None
    try:
        return parse_rules_text(text)
    except ActionRulesError as exc:
        raise ActionRulesError(f"{path}: {exc}") from None


def load_rules_file(path: Path | str) -> ActionRules:
    """The rules of a YAML file (re-read when it changes); ``ActionRulesError`` naming it."""
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError as exc:
        raise ActionRulesError(f"{path}: cannot read the action rules file ({exc})") from None
    return _file_rules(str(path), mtime)


@functools.lru_cache(maxsize=32)
def _version_rules(version_id: int, doc_key: str) -> ActionRules:
    return parse_rules(json.loads(doc_key))


def rules_in_force(session: Session | None, rules_file: Path | str | None = None) -> RulesInForce:
    """The newest DB version when there is one (and ``session``), else the rules file, else
    the packaged default. A stored version was validated when written."""
    if session is not None:
        version = repo.active_version(session)
        if version is not None:
            doc = json.dumps(dict(version.rules), sort_keys=True)
            return RulesInForce(_version_rules(version.id, doc), "version", version.id)
    if rules_file is not None:
        return RulesInForce(load_rules_file(rules_file), "file")
    return RulesInForce(packaged_rules(), "packaged")
