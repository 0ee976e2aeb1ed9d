"""Action rules (pure): specificity, the overall action's order, re-decisions, validation."""

from __future__ import annotations

import pytest

from moderation.actions.resolver import packaged_rules
from moderation.actions.rules import (
    ActionRulesError,
    evaluate,
    evaluate_change,
    parse_rules,
    parse_rules_text,
)
from moderation.domain import RiskTier as T

RULES = parse_rules(
    {
        "order": ["allow", "blur", "label", "age_restrict", "hold", "block"],
        "default": {"action": "hold", "escalate": True},
        "rules": [
            {"category": "*", "tier": ["clear", "warning"], "action": "allow"},
            {"category": "*", "tier": "medium", "action": "blur"},
            {"category": "drugs", "tier": "medium", "action": "label"},
            {"category": "*", "tier": "medium", "source": "bank", "action": "block"},
            {"category": "drugs", "tier": "medium", "source": "retro", "action": "age_restrict"},
        ],
    }
)


@pytest.mark.parametrize(
    "category,tier,source,action",
    [
        ("weapons", T.WARNING, "model", "allow"),
        ("weapons", T.MEDIUM, "model", "blur"),  # "*"
        ("drugs", T.MEDIUM, "model", "label"),  # exact category beats "*"
        ("drugs", T.MEDIUM, "bank", "block"),  # exact source beats exact category
        ("drugs", T.MEDIUM, "retro", "age_restrict"),  # both exact
        ("weapons", T.HIGH, "model", "hold"),  # no rule: the default
    ],
)
def test_the_most_specific_rule_wins(category, tier, source, action):
    assert evaluate(RULES, {category: tier}, {category: source}).action == action


def test_the_overall_action_is_the_most_severe_in_order_and_escalation_is_any():
    out = evaluate(RULES, {"weapons": T.MEDIUM, "drugs": T.MEDIUM, "sexual": T.CLEAR})
    assert (out.action, out.escalate) == ("label", False)  # label after blur in `order`
    out = evaluate(RULES, {"weapons": T.HIGH, "drugs": T.MEDIUM})
    assert (out.action, out.escalate) == ("hold", True)
    assert evaluate(RULES, {}).action == "allow"  # nothing scored: a clear tier's action


def test_a_re_decision_keeps_the_other_categories_and_takes_the_most_severe():
    before = evaluate(RULES, {"weapons": T.MEDIUM, "drugs": T.CLEAR}).as_dict()
    after = evaluate_change(RULES, before, "drugs", T.MEDIUM, "retro", rules_version=3)
    assert after.action == "age_restrict" and after.rules_version == 3
    assert after.categories["weapons"].action == "blur"
    assert evaluate_change(RULES, None, "drugs", T.MEDIUM, "bank").action == "block"


def test_packaged_rules_parse_and_round_trip():
    rules = packaged_rules()
    assert parse_rules(rules.as_dict()) == rules
    assert evaluate(rules, {"sexual": T.HIGH}).action == "age_restrict"
    assert evaluate(rules, {"sexual": T.HIGH}, {"sexual": "bank"}).action == "block"
    assert evaluate(rules, {"weapons": T.HIGH}).action == "hold"


@pytest.mark.parametrize(
    "doc,message",
    [
        ("[1, 2]", "action rules must be a mapping with order, default and rules"),
        ("rules: {}", "rules: must be a list"),
        ("rules: [{category: '*', tier: high}]", "rules[0]: action is required"),
        ("rules: [{category: '*', tier: [], action: block}]",
         "rules[0].tier: needs at least one tier"),
        ("rules: [{category: '*', tier: high, action: block, source: web}]",
         "rules[0].source: must be one of model, bank, retro or any"),
        ("rules: [{category: 'Bad Name', tier: high, action: block}]",
         "rules[0].category: must be a category name or '*'"),
        ("rules: [{category: '*', tier: high, action: block, escalate: maybe}]",
         "rules[0].escalate: escalate must be true or false"),
        ("default: {action: Nope}", "default.action: an action is a name of 1-32 lower-case"),
        ("order: [allow, blur, age_restrict, hold, block, allow]", "order: lists an action twice"),
        ("colour: red", "unknown key 'colour' (allowed: order, default, rules)"),
        ("rules: [\n  - {category: '*'\n", "action rules are not valid YAML at line"),
    ],
)  # fmt: skip
def test_invalid_rules_give_one_clear_line(doc, message):
    with pytest.raises(ActionRulesError) as err:
        parse_rules_text(doc)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_categories_are_checked_when_given():
    doc = {"rules": [{"category": "weapons", "tier": "high", "action": "block"}]}
    assert parse_rules(doc, categories={"weapons"}).rules[0].category == "weapons"
    with pytest.raises(ActionRulesError, match="'weapons' is not a catalog category"):
        parse_rules(doc, categories={"sexual"})
