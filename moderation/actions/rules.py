"""Action rules (pure): parse and validate a rule set, and evaluate it on a decision.

A rule set maps (category, tier[, source]) to an action — ``allow``, ``blur``,
``age_restrict``, ``hold``, ``block`` or a custom name placed in ``order`` — and an
``escalate`` flag (send the item to human review). For one category the most specific
matching rule wins: an exact ``source`` beats ``any``, then an exact category beats ``*``;
two rules of the same category and source may not cover the same tier, so the answer is never
ambiguous. No rule matching gives ``default``. A job's overall action is the most severe of
its categories' actions in ``order`` (its first entry the mildest); it escalates when any of
them does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from moderation.domain import RiskTier

__all__ = [
    "BUILTIN_ACTIONS",
    "SOURCES",
    "ActionRule",
    "ActionRules",
    "ActionRulesError",
    "CategoryAction",
    "Enforcement",
    "evaluate",
    "evaluate_change",
    "parse_rules",
    "parse_rules_text",
]

BUILTIN_ACTIONS: tuple[str, ...] = ("allow", "blur", "age_restrict", "hold", "block")
SOURCES: tuple[str, ...] = ("model", "bank", "retro")  # where a category's tier came from
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_RULES = 1000
_TIERS = ", ".join(t.value for t in RiskTier)


class ActionRulesError(ValueError):
    """The rule set is invalid; the message is one line naming the place (``rules[2].tier``)."""


@dataclass(frozen=True)
class ActionRule:
    category: str  # a category name or "*"
    tiers: frozenset[RiskTier]
    source: str  # "model", "bank", "retro" or "any"
    action: str
    escalate: bool = False

    @property
    def specificity(self) -> tuple[int, int]:
        return (self.source != "any", self.category != "*")

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "tier": [t.value for t in RiskTier if t in self.tiers],
            "source": self.source,
            "action": self.action,
            "escalate": self.escalate,
        }


@dataclass(frozen=True)
class ActionRules:
    """A validated rule set (build it with ``parse_rules``)."""

    order: tuple[str, ...]
    default_action: str
    default_escalate: bool
    rules: tuple[ActionRule, ...]

    def rank(self, action: str) -> int:
        """0 (mildest) … len(order) − 1 (most severe)."""
        return self.order.index(action)

    def as_dict(self) -> dict[str, Any]:
        """The normalised document: ``parse_rules(rules.as_dict()) == rules``."""
        return {
            "order": list(self.order),
            "default": {"action": self.default_action, "escalate": self.default_escalate},
            "rules": [r.as_dict() for r in self.rules],
        }


@dataclass(frozen=True)
class CategoryAction:
    action: str
    escalate: bool
    source: str


@dataclass(frozen=True)
class Enforcement:
    """What the rules say about one job: its overall action and per-category detail."""

    action: str
    escalate: bool
    categories: Mapping[str, CategoryAction] = field(default_factory=dict)
    rules_version: int | None = None  # action_rule_versions.id; None = file or packaged

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "escalate": self.escalate,
            "rules_version": self.rules_version,
            "categories": {
                c: {"action": a.action, "escalate": a.escalate, "source": a.source}
                for c, a in sorted(self.categories.items())
            },
        }


def _key(value: Any) -> str:
    # name a key only when it is a plain identifier: the message never echoes hostile input
    return f" {value!r}" if isinstance(value, str) and _NAME.fullmatch(value) else ""


def _fail(where: str, why: str) -> ActionRulesError:
    return ActionRulesError(f"{where}: {why}")


def _action(value: Any, where: str, order: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _fail(where, "an action is a name of 1-32 lower-case letters, digits or _")
    if value not in order:
        raise _fail(where, f"action {value!r} is not in order ({', '.join(order)})")
    return value


def _escalate(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, "escalate must be true or false")
    return value


def _tiers(value: Any, where: str) -> frozenset[RiskTier]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _fail(where, "needs at least one tier")
    out = set()
    for item in items:
        try:
            out.add(RiskTier(item))
        except ValueError:
            raise _fail(where, f"not a tier (one of {_TIERS})") from None
    return frozenset(out)


def _order(value: Any) -> tuple[str, ...]:
    if value is None:
        return BUILTIN_ACTIONS
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail("order", "must be a list of action names, mildest first")
    for i, name in enumerate(value):
        if not _NAME.fullmatch(name):
            raise _fail(
                f"order[{i}]", "an action is a name of 1-32 lower-case letters, digits or _"
            )
    if len(set(value)) != len(value):
        raise _fail("order", "lists an action twice")
    missing = [a for a in BUILTIN_ACTIONS if a not in value]
    if missing:
        raise _fail(
            "order", f"must contain the built-in actions too (missing {', '.join(missing)})"
        )
    return tuple(value)


_RULE_KEYS = {"category", "tier", "source", "action", "escalate"}


def _rule(
    raw: Any, i: int, order: tuple[str, ...], categories: frozenset[str] | None
) -> ActionRule:
    where = f"rules[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be a mapping with category, tier, action")
    unknown = sorted(set(map(str, raw)) - _RULE_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_RULE_KEYS))
        raise _fail(where, f"unknown key{_key(unknown[0])} (allowed: {allowed})")
    for key in ("category", "tier", "action"):
        if key not in raw:
            raise _fail(where, f"{key} is required")
    category = raw["category"]
    if not isinstance(category, str) or not (category == "*" or _NAME.fullmatch(category)):
        raise _fail(f"{where}.category", "must be a category name or '*'")
    if categories is not None and category != "*" and category not in categories:
        raise _fail(f"{where}.category", f"{category!r} is not a catalog category")
    source = raw.get("source", "any")
    if source not in (*SOURCES, "any"):
        raise _fail(f"{where}.source", f"must be one of {', '.join(SOURCES)} or any")
    return ActionRule(
        category=category,
        tiers=_tiers(raw["tier"], f"{where}.tier"),
        source=source,
        action=_action(raw["action"], f"{where}.action", order),
        escalate=_escalate(raw.get("escalate", False), f"{where}.escalate"),
    )


def parse_rules(doc: Any, *, categories: Iterable[str] | None = None) -> ActionRules:
    """A validated ``ActionRules`` of a mapping (``order``, ``default``, ``rules``), or
    ``ActionRulesError`` with one line. With ``categories`` a rule's category must be one of
    them (or ``*``)."""
    if not isinstance(doc, Mapping):
        raise ActionRulesError("action rules must be a mapping with order, default and rules")
    unknown = sorted(set(map(str, doc)) - {"order", "default", "rules"})
    if unknown:
        raise ActionRulesError(f"unknown key{_key(unknown[0])} (allowed: order, default, rules)")
    order = _order(doc.get("order"))
    default = doc.get("default", {"action": "allow"})
    if isinstance(default, str):
        default = {"action": default}
    if not isinstance(default, Mapping) or set(map(str, default)) - {"action", "escalate"}:
        raise _fail("default", "must be a mapping with action (and escalate)")
    default_action = _action(default.get("action"), "default.action", order)
    default_escalate = _escalate(default.get("escalate", False), "default.escalate")
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list):
        raise _fail("rules", "must be a list")
    if len(raw_rules) > _MAX_RULES:
        raise _fail("rules", f"at most {_MAX_RULES} rules")
    known = frozenset(categories) if categories is not None else None
    rules = tuple(_rule(r, i, order, known) for i, r in enumerate(raw_rules))
    seen: dict[tuple[str, str, RiskTier], int] = {}
    for i, rule in enumerate(rules):
        for tier in sorted(rule.tiers, key=lambda t: t.rank):
            key = (rule.category, rule.source, tier)
            if key in seen:
                raise _fail(
                    f"rules[{i}]",
                    f"overlaps rules[{seen[key]}] on (category {rule.category}, tier "
                    f"{tier.value}, source {rule.source}): which one applies would be ambiguous",
                )
            seen[key] = i
    return ActionRules(order, default_action, default_escalate, rules)


def parse_rules_text(text: str, *, categories: Iterable[str] | None = None) -> ActionRules:
    """``parse_rules`` of a YAML (or JSON) document."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ActionRulesError(f"action rules are not valid YAML{where}") from None
    return parse_rules(doc, categories=categories)


def _for_category(rules: ActionRules, category: str, tier: RiskTier, source: str) -> CategoryAction:
    best: ActionRule | None = None
    for rule in rules.rules:
        if tier not in rule.tiers or rule.category not in (category, "*"):
            continue
        if rule.source not in (source, "any"):
            continue
        if best is None or rule.specificity > best.specificity:
            best = rule
    if best is None:
        return CategoryAction(rules.default_action, rules.default_escalate, source)
    return CategoryAction(best.action, best.escalate, source)


def evaluate(
    rules: ActionRules,
    category_tiers: Mapping[str, RiskTier],
    sources: Mapping[str, str] | None = None,
    *,
    rules_version: int | None = None,
) -> Enforcement:
    """The action of every category (its tier and ``sources[category]``, default ``model``)
    and the job's overall action: the most severe in ``rules.order``; ties keep the first.
    No categories at all (nothing scored) is the default action of a clear tier."""
    sources = sources or {}
    per = {
        c: _for_category(rules, c, tier, sources.get(c, "model"))
        for c, tier in category_tiers.items()
    }
    if not per:
        clear = _for_category(rules, "*", RiskTier.CLEAR, "model")
        return Enforcement(clear.action, clear.escalate, {}, rules_version)
    worst = max(per.values(), key=lambda a: rules.rank(a.action))
    escalate = any(a.escalate for a in per.values())
    return Enforcement(worst.action, escalate, per, rules_version)


def evaluate_change(
    rules: ActionRules,
    previous: Mapping[str, Any] | None,
    category: str,
    tier: RiskTier,
    source: str,
    *,
    rules_version: int | None = None,
) -> Enforcement:
    """A re-decision's action (e.g. a retro-match raising ``category`` to ``tier``): the
    categories of ``previous`` (an ``Enforcement.as_dict()``, or None) keep their actions,
    ``category`` gets the rules' action for ``tier`` from ``source``; the overall action is
    the most severe. A previous action the rules no longer order counts as the mildest."""
    per: dict[str, CategoryAction] = {}
    for name, detail in ((previous or {}).get("categories") or {}).items():
        if isinstance(detail, Mapping) and detail.get("action") in rules.order:
            per[name] = CategoryAction(
                str(detail["action"]), bool(detail.get("escalate")), str(detail.get("source"))
            )
    per[category] = _for_category(rules, category, tier, source)
    worst = max(per.values(), key=lambda a: rules.rank(a.action))
    return Enforcement(worst.action, any(a.escalate for a in per.values()), per, rules_version)
