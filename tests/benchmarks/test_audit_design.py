"""A short seeded run of the audit-design comparison: per-image draws vs per-(image, category)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "audit_design.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("audit_design", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_design"] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("audit_design", None)


def test_per_image_design_needs_far_fewer_audit_reviews_at_equal_ci_width(bench, capsys):
    numbers = bench.compare(seed=3, uploads=30_000, fraction=0.05, draws=4)
    out = capsys.readouterr().out
    assert "audit reviews / 1000 uploads" in out
    # same band rates: the same images are reviewed (one review per drawn image either way)…
    assert numbers["v2_same_rates_reviews_per_1000"] == pytest.approx(
        numbers["v1_reviews_per_1000"], rel=0.1
    )
    # …and at equal CI width for every category, at most a third of the audit reviews
    assert numbers["v2_equal_width_review_ratio"] <= 1 / 3


def test_same_rates_narrow_every_category(bench):
    pop = bench.make_population(5, uploads=20_000)
    designs = bench._designs(pop, 0.05)
    old = bench.run_design(pop, designs, False, draws=3, seed=5)
    new = bench.run_design(pop, designs, True, draws=3, seed=5)
    assert (new.width < old.width).all()
    assert np.isfinite(new.recall_estimate).all()
