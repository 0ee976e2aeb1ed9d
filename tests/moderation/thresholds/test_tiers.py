"""Policy core: the seed's content-safety ladder and the worst-tier decision."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moderation.domain import RiskTier
from moderation.thresholds.overrides import apply_overrides, parse_threshold_overrides
from moderation.thresholds.presets import (
    ALBUM_TAGGING,
    ECOMMERCE,
    POLICIES,
    AlbumTaggingPreset,
    album_tags,
    ecommerce_verdict,
    score_band,
)
from moderation.thresholds.scales import SCALES
from moderation.thresholds.tiers import (
    LADDER,
    CategoryThresholds,
    decide,
    ladder_from_base,
    preset_thresholds,
    review_priority,
    summarise,
    tier_for,
)

CONTENT_SAFETY_CUTOFFS = {name: spec.cutoffs for name, spec in SCALES.items()}


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


def test_priority_is_the_highest_severity_weighted_over_categories():
    th = {
        "drugs": CategoryThresholds("drugs", GME, severity=1),
        "self_harm": CategoryThresholds("self_harm", GME, severity=4),
    }
    d = decide({"drugs": 0.23, "self_harm": 0.19}, th)  # drugs high, self_harm medium
    assert (d.tier, d.category) == (RiskTier.HIGH, "drugs")
    assert d.priority == review_priority(0.19, RiskTier.MEDIUM, th["self_harm"])
    assert d.priority > review_priority(0.23, RiskTier.HIGH, th["drugs"])


def test_summary_counts_violations_and_warnings():
    th = preset_thresholds({"weapons": "gme_cosine"})
    decisions = [decide({"weapons": s}, th) for s in (0.05, 0.13, 0.15, 0.19, 0.25, 0.4)]
    summary = summarise(decisions)
    assert (summary["violations"], summary["warnings"], summary["clear"]) == (3, 2, 1)
    assert (summary["tier_extreme"], summary["total"]) == (1, 6)


# --- the seed's other presets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "band"),
    [(0.55, "very_high"), (0.4, "very_high"), (0.39, "high"), (0.3, "high"), (0.29, "medium"),
     (0.2, "medium"), (0.19, "low"), (0.1, "low"), (0.099, "none"), (-0.2, "none")],
)  # fmt: skip
def test_seed_score_bands(score, band):
    assert score_band(score) == band


@pytest.mark.parametrize(
    ("score", "verdict"),
    [(0.5, "accept"), (0.32, "accept"), (0.3199, "review"), (0.25, "review"), (0.2499, "reject")],
)
def test_ecommerce_preset(score, verdict):
    assert (ECOMMERCE.accept, ECOMMERCE.review) == (0.32, 0.25)
    assert ecommerce_verdict(score) == verdict


def test_album_tagging_constants_are_the_seeds():
    assert ALBUM_TAGGING == AlbumTaggingPreset(
        threshold=0.25, max_tags=10, min_tags=3, fallback_factor=0.8, max_retries=5,
        full_confidence_at=0.5,
    )  # fmt: skip
    assert set(POLICIES) == {"content_safety", "ecommerce", "album_tagging"}


def test_album_tags_keep_at_most_ten_best_with_capped_confidence():
    scores = {f"t{i:02d}": 0.25 + i / 100 for i in range(15)}
    result = album_tags(scores)
    assert [t.label for t in result.tags] == [f"t{i:02d}" for i in range(14, 4, -1)]
    assert (result.threshold, result.retries) == (0.25, 0)
    assert result.tags[0].confidence == pytest.approx(0.39 / 0.5)
    assert result.tags[-1].confidence == pytest.approx(0.30 / 0.5)


def test_album_tags_fall_back_to_lower_thresholds_when_too_few():
    # 0.25 → 0.2 → 0.16 → 0.128: the third tag (0.13) appears after three retries
    result = album_tags({"a": 0.3, "b": 0.21, "c": 0.13, "d": 0.01})
    assert [t.label for t in result.tags] == ["a", "b", "c"]
    assert result.retries == 3
    assert result.threshold == pytest.approx(0.25 * 0.8**3)


def test_album_tags_stop_after_five_retries():
    result = album_tags({"a": 0.7, "b": 0.01})
    assert result.retries == 5 and result.threshold == pytest.approx(0.25 * 0.8**5)
    assert [(t.label, t.confidence) for t in result.tags] == [("a", 1.0)]  # min(0.7/0.5, 1)


# --- calibrated ladders and thresholds-file overrides -------------------------------------------


def test_ladder_from_the_preset_base_is_the_preset():
    for scale, preset in CONTENT_SAFETY_CUTOFFS.items():
        assert ladder_from_base(preset[RiskTier.MEDIUM], scale) == preset


def test_ladder_follows_a_calibrated_base():
    ladder = ladder_from_base(0.20, "gme_cosine")
    assert ladder[RiskTier.MEDIUM] == 0.20
    assert ladder[RiskTier.WARNING] == pytest.approx(0.12 * 0.20 / 0.18)
    assert ladder[RiskTier.HIGH] == pytest.approx(0.20 + 0.04 * 0.80 / 0.82)
    with pytest.raises(ValueError, match="outside"):
        ladder_from_base(1.2, "probability")


@given(
    base=st.floats(0, 1),
    scores=st.tuples(st.floats(-1, 2), st.floats(-1, 2)).map(sorted),
    scale=st.sampled_from(sorted(CONTENT_SAFETY_CUTOFFS)),
)
def test_tiers_are_monotone_in_score(base, scores, scale):
    ladder = ladder_from_base(base, scale)
    values = [ladder[t] for t in LADDER]
    assert values == sorted(values) and all(0 <= v <= 1 for v in values)
    th = CategoryThresholds("x", ladder, scale=scale)
    low, high = scores
    assert tier_for(low, ladder).rank <= tier_for(high, ladder).rank
    t_low, t_high = tier_for(low, ladder), tier_for(high, ladder)
    assert review_priority(low, t_low, th) <= review_priority(high, t_high, th)


def test_overrides_parse_base_and_cutoffs():
    parsed = parse_threshold_overrides({
        "categories": {
            "weapons": {"scale": "gme_cosine", "base": 0.2},
            "sexual": {"scale": "probability", "severity": 4,
                       "cutoffs": {"warning": 0.2, "medium": 0.35, "high": 0.6, "extreme": 0.9}},
        }
    })  # fmt: skip
    assert parsed["weapons"].base == 0.2 and parsed["weapons"].source == "file"
    assert parsed["sexual"].cutoffs[RiskTier.HIGH] == 0.6 and parsed["sexual"].severity == 4


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"weapons": {}}, "top-level `categories:`"),
        ({"categories": {"w": {"scale": "cosine", "base": 0.2}}}, "scale must be one of"),
        ({"categories": {"w": {"scale": "gme_cosine"}}}, "exactly one of base or cutoffs"),
        ({"categories": {"w": {"scale": "gme_cosine", "base": 0.2, "bass": 1}}}, "unknown keys"),
        ({"categories": {"w": {"scale": "gme_cosine", "cutoffs": {"medium": 0.2}}}}, "exactly"),
        ({"categories": {"w": "0.2"}}, "expected a mapping"),
        ({"categories": {"w": {"scale": "gme_cosine", "base": 0.2}}, "x": 1}, "unknown top-level"),
    ],
)
def test_bad_overrides_name_the_problem(document, message):
    with pytest.raises(ValueError, match=message):
        parse_threshold_overrides(document)


def test_overrides_apply_only_on_the_same_scale_and_keep_scorer_severity():
    resolved = preset_thresholds({"weapons": "gme_cosine", "sexual": "probability"}, {"weapons": 3})
    overrides = parse_threshold_overrides({"categories": {
        "weapons": {"scale": "gme_cosine", "base": 0.2, "severity": 1},
        "sexual": {"scale": "gme_cosine", "base": 0.2},
    }})  # fmt: skip
    out = apply_overrides(resolved, overrides, {"weapons": 3})
    assert (out["weapons"].base, out["weapons"].severity, out["weapons"].source) == (0.2, 3, "file")
    assert out["sexual"] is resolved["sexual"]


def test_a_catalog_base_threshold_moves_the_ladder_like_calibration_does():
    th = preset_thresholds(
        {"weapons": "gme_cosine", "drugs": "gme_cosine"}, {"weapons": 2}, bases={"weapons": 0.25}
    )
    assert th["weapons"].base == pytest.approx(0.25)
    assert th["weapons"].cutoffs == ladder_from_base(0.25, "gme_cosine")
    moved = {tier: round(v, 4) for tier, v in th["weapons"].cutoffs.items()}
    # piecewise-linear map fixing [0, 1]: 0.12·0.25/0.18; 0.25 + (0.22−0.18)·0.75/0.82; …
    assert moved == {
        RiskTier.WARNING: 0.1667,
        RiskTier.MEDIUM: 0.25,
        RiskTier.HIGH: 0.2866,
        RiskTier.EXTREME: 0.3598,
    }
    assert th["drugs"].cutoffs == GME  # categories without a base keep the preset
    assert tier_for(0.23, th["weapons"].cutoffs) is RiskTier.WARNING


def test_fake_cosine_preset_exists_for_pipeline_tests():
    th = preset_thresholds({"weapons": "fake_cosine"})
    assert th["weapons"].scale == "fake_cosine" and th["weapons"].base == GME[RiskTier.MEDIUM]
