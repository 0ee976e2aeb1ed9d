"""Policy core: the seed's content-safety ladder and the worst-tier decision."""

from __future__ import annotations

import pytest

from moderation.domain import RiskTier
from moderation.policy import (
    CONTENT_SAFETY_CUTOFFS,
    CategoryThresholds,
    decide,
    preset_thresholds,
    tier_for,
)

GME = CONTENT_SAFETY_CUTOFFS["gme_cosine"]


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0.05, RiskTier.CLEAR),
        (0.1199, RiskTier.CLEAR),
        (0.12, RiskTier.WARNING),
        (0.1799, RiskTier.WARNING),
        (0.18, RiskTier.MEDIUM),
        (0.2199, RiskTier.MEDIUM),
        (0.22, RiskTier.HIGH),
        (0.2999, RiskTier.HIGH),
        (0.30, RiskTier.EXTREME),
        (0.45, RiskTier.EXTREME),
    ],
)
def test_seed_content_safety_ladder(score, tier):
    assert tier_for(score, GME) is tier


def test_decision_takes_the_worst_category_and_records_versions():
    th = preset_thresholds({"weapons": "gme_cosine", "sexual": "probability"}, {"weapons": 3})
    th["weapons"] = CategoryThresholds("weapons", GME, severity=3, version_id=42)
    d = decide({"weapons": 0.23, "sexual": 0.20}, th)
    assert (d.tier, d.category, d.action) == (RiskTier.HIGH, "weapons", "review_now")
    assert d.category_tiers == {"weapons": RiskTier.HIGH, "sexual": RiskTier.WARNING}
    assert d.threshold_versions == {"weapons": 42, "sexual": None}


def test_clear_image_is_allowed_with_no_category():
    th = preset_thresholds({"weapons": "gme_cosine"})
    d = decide({"weapons": 0.01}, th)
    assert (d.tier, d.action, d.category) == (RiskTier.CLEAR, "allow", None)


def test_severity_breaks_ties_between_equal_tiers():
    th = {
        "drugs": CategoryThresholds("drugs", GME, severity=1),
        "self_harm": CategoryThresholds("self_harm", GME, severity=4),
    }
    d = decide({"drugs": 0.25, "self_harm": 0.23}, th)
    assert d.category == "self_harm"


def test_unthresholded_category_is_an_error_not_a_pass():
    with pytest.raises(KeyError, match="gore"):
        decide({"gore": 0.9}, preset_thresholds({"weapons": "gme_cosine"}))


def test_cutoffs_must_be_monotone():
    bad = dict(GME)
    bad[RiskTier.HIGH] = 0.10
    with pytest.raises(ValueError, match="must not decrease"):
        CategoryThresholds("x", bad)


def test_a_catalog_base_threshold_shifts_the_whole_ladder():
    th = preset_thresholds(
        {"weapons": "gme_cosine", "drugs": "gme_cosine"}, {"weapons": 2}, bases={"weapons": 0.25}
    )
    assert th["weapons"].base == pytest.approx(0.25)
    shifted = {tier: round(v, 6) for tier, v in th["weapons"].cutoffs.items()}
    assert shifted == {
        RiskTier.WARNING: 0.19,
        RiskTier.MEDIUM: 0.25,
        RiskTier.HIGH: 0.29,
        RiskTier.EXTREME: 0.37,
    }
    assert th["drugs"].cutoffs == GME  # categories without a base keep the preset
    assert tier_for(0.23, th["weapons"].cutoffs) is RiskTier.WARNING


def test_fake_cosine_preset_exists_for_pipeline_tests():
    th = preset_thresholds({"weapons": "fake_cosine"})
    assert th["weapons"].scale == "fake_cosine" and th["weapons"].base == GME[RiskTier.MEDIUM]
