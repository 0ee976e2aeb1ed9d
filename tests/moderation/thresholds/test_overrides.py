"""Thresholds file: YAML in, validated overrides out; errors name the file; edits are seen."""

from __future__ import annotations

import os

import pytest

from moderation.domain import RiskTier
from moderation.thresholds.overrides import ThresholdsFileError, load_thresholds_file


def test_loads_and_reloads_when_the_file_changes(tmp_path):
    path = tmp_path / "thresholds.yaml"
    path.write_text("categories:\n  weapons: {scale: gme_cosine, base: 0.2}\n")
    assert load_thresholds_file(path)["weapons"].base == 0.2
    path.write_text("categories:\n  weapons: {scale: gme_cosine, base: 0.25}\n")
    os.utime(path, ns=(1, 2_000_000_000_000_000_000))  # a distinct mtime even on coarse clocks
    loaded = load_thresholds_file(path)
    assert loaded["weapons"].base == 0.25
    assert loaded["weapons"].cutoffs[RiskTier.WARNING] < 0.25


def test_empty_file_means_no_overrides(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_thresholds_file(path) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("categories: [\n", "thresholds file .*bad.yaml"),
        ("categories:\n  w: {scale: gme_cosine, base: high}\n", "w: base must be a number"),
        ("categories:\n  w: {scale: gme_cosine, base: 0.3, severity: 9}\n", "severity must be"),
    ],
)
def test_invalid_files_give_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ThresholdsFileError, match=message):
        load_thresholds_file(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ThresholdsFileError, match="No such file"):
        load_thresholds_file(tmp_path / "nope.yaml")
