"""Scorer profiles as stored, and their union for the adjuster (pure)."""

from __future__ import annotations

import json

from moderation.scoring.profiles import (
    profile_categories,
    profile_from_categories,
    union_profiles,
)
from moderation.scoring.scorers import ScorerProfile
from tests.fakes import ColourScorer

GME = ScorerProfile(
    {"sexual": "gme_cosine", "weapons": "gme_cosine"},
    {"sexual": 3, "weapons": 2},
    {"weapons": 0.2},
)
NSFW = ScorerProfile({"sexual": "probability"}, {"sexual": 4}, {})


def test_categories_round_trip_through_json():
    stored = json.loads(json.dumps(profile_categories(GME)))
    assert stored["weapons"] == {"scale": "gme_cosine", "severity": 2, "base": 0.2}
    assert stored["sexual"]["base"] is None
    assert profile_from_categories(stored) == GME
    colour = profile_categories(ColourScorer())
    assert colour["violence"] == {"scale": "probability", "severity": 4, "base": None}


def test_union_of_agreeing_profiles_keeps_every_category():
    newer = ScorerProfile(
        {"sexual": "gme_cosine", "drugs": "gme_cosine"}, {"sexual": 4, "drugs": 2}, {"sexual": 0.19}
    )
    merged, skipped = union_profiles([("gpu1@b", newer), ("gpu0@a", GME)])
    assert skipped == {}
    assert merged.scales == dict.fromkeys(["sexual", "drugs", "weapons"], "gme_cosine")
    # severity and base from the most recently seen profile that has them
    assert merged.severities == {"sexual": 4, "drugs": 2, "weapons": 2}
    assert merged.base_thresholds == {"sexual": 0.19, "weapons": 0.2}


def test_a_category_on_two_scales_is_left_out_with_the_reason():
    merged, skipped = union_profiles([("cpu@x", NSFW), ("gpu0@a", GME), ("gpu1@b", GME)])
    assert skipped == {
        "sexual": "live scorers disagree on its scale: gme_cosine (gpu0@a, gpu1@b); "
        "probability (cpu@x)"
    }
    assert merged.scales == {"weapons": "gme_cosine"}
    assert merged.severities == {"weapons": 2} and merged.base_thresholds == {"weapons": 0.2}


def test_no_profile_is_an_empty_union():
    assert union_profiles([]) == (ScorerProfile({}, {}, {}), {})
