"""Context-aware adjustment: the seed's steps and clamp on GME cosine, per-scale rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moderation.thresholds.context import ContextRules, adjust_for_context
from moderation.thresholds.scales import SCALES

CONTEXT_RULES = {name: spec.context for name, spec in SCALES.items()}


def test_context_rules_are_the_seeds_on_gme_cosine():
    assert CONTEXT_RULES["gme_cosine"] == ContextRules(
        many_candidates=10, few_candidates=3, many_step=0.02, few_step=-0.01,
        high_criticality_step=0.03, low_criticality_step=-0.02, high_complexity_step=0.01,
        clamp=(0.1, 0.5),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 0.18),
        ({"candidates": 11}, 0.20),
        ({"candidates": 10}, 0.18),
        ({"candidates": 3}, 0.18),
        ({"candidates": 2}, 0.17),
        ({"criticality": "high"}, 0.21),
        ({"criticality": "low"}, 0.16),
        ({"image_complexity": "high"}, 0.19),
        ({"image_complexity": "low"}, 0.18),
        ({"candidates": 20, "criticality": "high", "image_complexity": "high"}, 0.24),
    ],
)
def test_context_adjustment_uses_the_seed_steps(kwargs, expected):
    assert adjust_for_context(0.18, **kwargs) == pytest.approx(expected)


def test_context_adjustment_clamps_to_the_seed_range():
    assert adjust_for_context(0.49, candidates=50, criticality="high") == 0.5
    assert adjust_for_context(0.11, candidates=1, criticality="low") == 0.1


def test_probability_scale_has_its_own_clamp_and_steps():
    rules = CONTEXT_RULES["probability"]
    assert rules.clamp == (0.05, 0.95)
    assert adjust_for_context(0.5, criticality="high", rules=rules) == pytest.approx(0.56)
    assert adjust_for_context(0.94, candidates=50, rules=rules) == 0.95


def test_context_adjustment_rejects_unknown_levels():
    with pytest.raises(ValueError, match="criticality"):
        adjust_for_context(0.2, criticality="extreme")


@given(
    base=st.floats(-1, 2),
    candidates=st.none() | st.integers(0, 100),
    criticality=st.sampled_from(["low", "normal", "high"]),
    complexity=st.sampled_from(["low", "normal", "high"]),
    scale=st.sampled_from(sorted(CONTEXT_RULES)),
)
def test_adjusted_thresholds_stay_inside_the_clamp(
    base, candidates, criticality, complexity, scale
):
    rules = CONTEXT_RULES[scale]
    t = adjust_for_context(base, candidates=candidates, criticality=criticality,
                           image_complexity=complexity, rules=rules)  # fmt: skip
    assert rules.clamp[0] <= t <= rules.clamp[1]
