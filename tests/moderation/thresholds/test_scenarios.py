"""The pure scenario functions: policies, context-adjusted thresholds, match verdicts, the
policy's action, tags and confidence levels (SEED-DIGEST §3 steps 3–4, §4)."""

from __future__ import annotations

import pytest

from moderation.domain import RiskTier
from moderation.thresholds.presets import POLICIES, POLICY_NAMES, policy_named
from moderation.thresholds.scenarios import (
    JobContext,
    JobOptions,
    MatchOutcome,
    apply_policy,
    confidence_level,
    context_thresholds,
    match_outcome,
    scenario_record,
    tags_for,
    wants_tags,
)
from moderation.thresholds.tiers import decide, preset_thresholds

GME = preset_thresholds({"weapons": "gme_cosine", "sexual": "probability"})


def test_policies_are_named_and_unknown_names_list_them():
    assert POLICY_NAMES == ("album_tagging", "content_safety", "ecommerce")
    assert policy_named("ecommerce").match_decides and not POLICIES["content_safety"].match_decides
    assert policy_named("album_tagging").tags_by_default
    with pytest.raises(ValueError, match="album_tagging, content_safety, ecommerce"):
        policy_named("nonsense_xyz")


def test_context_is_validated():
    assert JobContext.parse(None) is None
    assert JobContext.parse({"criticality": "high"}) == JobContext(criticality="high")
    with pytest.raises(ValueError, match="unknown context keys"):
        JobContext.parse({"mood": "x"})
    with pytest.raises(ValueError, match="criticality"):
        JobContext(criticality="extreme")
    with pytest.raises(ValueError, match="candidates"):
        JobContext(candidates=-1)
    with pytest.raises(ValueError, match="integer"):
        JobContext(candidates=True)
    with pytest.raises(ValueError, match="blank"):
        JobOptions(match_text="  ")


def test_context_moves_each_categorys_base_by_its_scales_rules():
    assert context_thresholds(GME, None) == GME
    assert context_thresholds(GME, JobContext()) == GME  # neutral: unchanged
    strict = context_thresholds(GME, JobContext(criticality="high", candidates=20))
    # gme_cosine: seed steps +0.03 +0.02 on base 0.18; probability: doubled, on base 0.30
    assert strict["weapons"].base == pytest.approx(0.23)
    assert strict["sexual"].base == pytest.approx(0.40)
    loose = context_thresholds(GME, JobContext(criticality="low", candidates=1))
    assert loose["weapons"].base == pytest.approx(0.15)
    # the ladder follows its base, in order
    ladder = [strict["weapons"].cutoffs[t] for t in (RiskTier.WARNING, RiskTier.MEDIUM)]
    assert ladder[0] < ladder[1]
    # the seed's clamp [0.1, 0.5] on GME cosine
    many = context_thresholds(
        preset_thresholds({"w": "gme_cosine"}, bases={"w": 0.49}),
        JobContext(criticality="high", image_complexity="high"),
    )
    assert many["w"].base == 0.5
    # a score between the two bases tiers differently
    assert decide({"weapons": 0.2}, GME).tier is RiskTier.MEDIUM
    assert decide({"weapons": 0.2}, strict).tier is RiskTier.WARNING


@pytest.mark.parametrize(
    ("score", "verdict"), [(0.32, "accept"), (0.4, "accept"), (0.25, "review"), (0.2499, "reject")]
)
def test_match_verdicts_follow_the_seeds_ecommerce_preset(score, verdict):
    assert match_outcome(score, "gme_cosine").verdict == verdict


def test_context_moves_the_match_cut_offs():
    out = match_outcome(0.33, "gme_cosine", JobContext(criticality="high"))
    assert (out.accept, out.review, out.verdict) == (0.35, 0.28, "review")
    out = match_outcome(0.31, "gme_cosine", JobContext(criticality="low"))
    assert (out.accept, out.verdict) == (0.30, "accept")


def test_only_ecommerce_acts_on_the_match_and_safety_wins():
    clear = decide({"weapons": 0.05}, GME)
    violation = decide({"weapons": 0.25}, GME)
    reject = MatchOutcome(0.1, "reject", 0.32, 0.25)
    review = MatchOutcome(0.3, "review", 0.32, 0.25)
    accept = MatchOutcome(0.4, "accept", 0.32, 0.25)
    shop, safety = policy_named("ecommerce"), policy_named("content_safety")
    assert apply_policy(clear, shop, reject).action == "reject_listing"
    assert apply_policy(clear, shop, review).action == "review_match"
    assert apply_policy(clear, shop, accept).action == "allow"
    assert apply_policy(clear, shop, None).action == "allow"
    assert apply_policy(violation, shop, reject).action == "review_now"
    assert apply_policy(clear, safety, reject).action == "allow"


def test_tags_default_per_policy_and_follow_the_album_preset():
    album, safety = policy_named("album_tagging"), policy_named("content_safety")
    assert wants_tags(JobOptions(), album) and not wants_tags(JobOptions(), safety)
    assert not wants_tags(JobOptions(tags=False), album) and wants_tags(
        JobOptions(tags=True), safety
    )
    tagging = tags_for({"cat": 0.4, "sofa": 0.3, "lamp": 0.26, "dog": 0.1})
    assert [t.label for t in tagging.tags] == ["cat", "sofa", "lamp"]
    assert tagging.tags[0].confidence == pytest.approx(0.8)  # min(score / 0.5, 1)
    record = scenario_record(None, tagging, JobContext(criticality="low"))
    assert record["tags"][0] == {"label": "cat", "score": 0.4, "confidence": pytest.approx(0.8)}
    assert record["context"]["criticality"] == "low" and "match" not in record
    assert scenario_record(None, None, None) is None


def test_confidence_levels_are_the_seeds_percentiles():
    reference = [i / 100 for i in range(101)]  # p80 0.8, p40 0.4, p20 0.2
    assert confidence_level(0.85, reference) == "high"
    assert confidence_level(0.5, reference) == "medium"
    assert confidence_level(0.2, reference) == "low"
    assert confidence_level(0.1, reference) == "none"
    assert confidence_level(0.9, reference[:19]) is None  # too few observed scores
