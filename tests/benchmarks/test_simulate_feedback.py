"""A short seeded run of the feedback simulation: recall_target holds recall, the seed loses it."""

from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "simulate_feedback.py"


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("simulate_feedback", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulate_feedback"] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("simulate_feedback", None)


def test_recall_target_holds_recall_where_the_seed_silently_loses_it(sim):
    # 12 windows over the stable → drift-down part of the timeline, at the default drift speed
    cfg = sim.SimConfig(seed=0, windows=12, timeline=(0.2, 0.5))
    result = sim.simulate(cfg)
    rt, seed, fixed = (result.runs[k] for k in ("recall_target", "seed", "fixed_preset"))
    assert rt.coverage(cfg.target) >= 0.95
    assert seed.coverage(cfg.target) < 0.5
    assert fixed.coverage(cfg.target) < rt.coverage(cfg.target)
    # the seed never notices: wherever it is short of target its own FN rate looks harmless
    short = seed.recall < cfg.target
    assert short.any() and (seed.seed_fn_rate[short] <= 0.15).all()
    # recall_target's steps stay bounded (0.01 up, 0.02 down per period)
    steps = np.diff(rt.thresholds)
    assert steps.max() <= 0.01 + 1e-9 and steps.min() >= -0.02 - 1e-9


def test_summary_and_plot(sim, tmp_path, capsys):
    cfg = sim.SimConfig(seed=1, windows=4, uploads_per_window=20_000)
    result = sim.simulate(cfg)
    numbers = sim.summarise(result, match=False)
    out = capsys.readouterr().out
    assert "windows ≥ target" in out and "seed silently below target" in out
    assert set(numbers) >= {"recall_target_coverage", "seed_coverage", "recall_target_load"}
    sim.plot(result, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run(sim, recall, caught_scale=10):
    recall = np.asarray(recall, float)
    violations = np.full(recall.size, 10.0 * caught_scale)
    zeros = np.zeros(recall.size)
    return sim.MethodRun("r", recall * violations, violations, zeros, zeros, zeros)


def test_recall_measures(sim):
    run = _run(sim, [0.9] * 18 + [0.5, 0.7])
    # 95 % of 20 windows = 19: the level held in 19 of them is the second lowest
    assert run.guaranteed_recall() == pytest.approx(0.7)
    assert run.guaranteed_recall(coverage=1.0) == pytest.approx(0.5)
    assert sim.RECALL_MEASURES["mean"](run) == pytest.approx((0.9 * 18 + 1.2) / 20)
    # pooled weighs windows by their violations
    weighted = sim.MethodRun(
        "w", np.array([9.0, 1.0]), np.array([10.0, 100.0]), *(np.zeros(2) for _ in range(3))
    )
    assert weighted.pooled_recall() == pytest.approx(10 / 110)
    assert float(weighted.recall.mean()) == pytest.approx(0.455)


def test_match_recall_finds_the_cheapest_target_reaching_the_level(sim):
    cfg = sim.SimConfig(seed=3, windows=8, uploads_per_window=20_000, timeline=(0.2, 0.5))
    stream = sim.make_stream(cfg)
    matched = sim.match_recall(cfg, stream, "guaranteed", 0.6)
    assert matched.reached >= 0.6 and matched.target <= 0.6 + 0.01
    # the match is a real run: re-running at its target reproduces what it reports
    again = replace(cfg, target=matched.target)
    run = sim.run_method(again, stream, "again", sim.recall_target_adjust(again))
    assert run.guaranteed_recall() == matched.reached and run.load.mean() == matched.load
    # asking for more recall never costs fewer reviews
    higher = sim.match_recall(cfg, stream, "guaranteed", 0.8)
    assert higher.reached >= 0.8 and higher.load >= matched.load


def test_load_cap_bounds_the_peak_and_keeps_the_floor(sim):
    cfg = sim.SimConfig(seed=2, windows=12, timeline=(0.45, 0.75), load_cap=0.25)
    result = sim.simulate(cfg)
    capped, rt = result.runs["load_capped"], result.runs["recall_target"]
    assert capped.load.max() < rt.load.max()  # the low-prevalence peak is cut…
    assert capped.coverage(cfg.floor_target) >= 0.95  # …and recall holds the stated floor


# --- realistic mode: 8 correlated categories, drift, reviewer error, bank hits ---------------


def test_realistic_stream_bank_hits_and_reviewer_error(sim):
    cfg = sim.RealConfig(seed=3, windows=8, uploads_per_window=10_000)
    p = sim.real_period(cfg, 0)
    # bank hits never reach the model: 43 of 5,000 uploads decided by the bank
    assert (p.bank_hits, p.scores.shape) == (43, (4957, 8))
    assert p.labels.sum(axis=0).tolist() == [31, 28, 39, 39, 20, 18, 91, 115]
    # reviewers err on violations and look-alikes only (4 %), never on clear non-violations
    lookalike = cfg.scenario.mu0 + cfg.scenario.sd0 * 2.3263478740408408
    assert not (p.flips & ~p.labels & (p.scores <= lookalike)).any()
    assert (int(p.flips.sum()), int((p.flips & p.labels).sum())) == (23, 14)
    # the same period is the same for every method (drawn from its own seeded generator)
    again = sim.real_period(cfg, 0)
    assert (again.scores == p.scores).all() and (again.flips == p.flips).all()


def test_realistic_methods_side_by_side_exact(sim, tmp_path):
    cfg = sim.RealConfig(seed=3, windows=8, uploads_per_window=10_000)
    runs = sim.simulate_real(cfg)
    assert list(runs) == [
        "recall_target",
        "seed",
        "fixed_preset",
        "static_best",
        "causal_floor",
        "unsmoothed",
    ]
    summary = sim.real_summary(cfg, runs)
    assert summary["static_best"]["reviews_per_1000"] == pytest.approx(202.1125)
    assert (
        summary["static_best"]["audit_per_1000"] == 0.0
        and summary["static_best"]["min_coverage"] == 1.0
    )
    # the default controller smooths its descents (thin_step_down 0.0025); without: 180.125
    assert summary["recall_target"]["reviews_per_1000"] == pytest.approx(179.3125)
    assert summary["unsmoothed"]["reviews_per_1000"] == pytest.approx(180.125)
    assert summary["unsmoothed"]["audit_per_1000"] == pytest.approx(55.9625)
    assert summary["seed"]["reviews_per_1000"] == pytest.approx(124.4375)
    assert summary["recall_target"]["vs_static_best"] == pytest.approx(179.3125 / 202.1125)
    # total = queue + audit images per 1000 uploads, per window
    rt = runs["recall_target"]
    assert rt.load.mean() == pytest.approx(rt.queue.mean() + rt.audit.mean())
    assert rt.peak_to_mean == pytest.approx(rt.load.max() / rt.load.mean())
    # recall counts the model path only: every method saw the same violations
    for r in runs.values():
        assert (r.violations == rt.violations).all()
    # the controller beats the seed's adjuster on recall
    assert (rt.coverage(cfg.target) >= runs["seed"].coverage(cfg.target)).all()
    assert rt.coverage(cfg.target).sum() > runs["seed"].coverage(cfg.target).sum()


def test_static_best_is_the_highest_threshold_with_the_guarantee(sim):
    cfg = sim.RealConfig(seed=3, windows=8, uploads_per_window=10_000)
    best = sim.real_static_best(cfg)
    assert best.tolist() == [0.15, 0.1775, 0.1575, 0.1575, 0.155, 0.1525, 0.1725, 0.1625]
    at = sim.run_real(cfg, "at", None, fixed=best, audits=False)
    assert (at.coverage(cfg.target) >= 0.95).all()
    # one grid step higher, every category misses the target in some window
    higher = sim.run_real(cfg, "higher", None, fixed=best + 0.0025, audits=False)
    assert (higher.coverage(cfg.target) < 0.95).all()


def test_realistic_cli_writes_the_tables_and_plots(sim, tmp_path, capsys):
    argv = ["--realistic", "--windows", "4", "--uploads", "8000", "--seeds", "2"]
    assert sim.main([*argv, "--plot", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "over seeds 7…8" in out and "static_best" in out and "unsmoothed" in out
    assert "pooled: the worst category over all seeds' windows" in out
    for name in ("recall", "load", "thresholds"):
        assert (tmp_path / f"adaptive_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_realistic_audit_rates_replace_the_band_rates(sim):
    cfg = sim.RealConfig(seed=3, windows=2, uploads_per_window=10_000)
    fixed = np.full(cfg.categories, 0.18)
    default = sim.run_real(cfg, "d", None, fixed=fixed)
    # the production rates given explicitly draw exactly the same audits
    same = sim.run_real(replace(cfg, audit_rates=(0.2, 0.075, 0.02, 0.005)), "s", None, fixed=fixed)
    assert (same.audit == default.audit).all() and default.audit.sum() > 0
    # thinner far bands (a Neyman allocation for the miss total) draw fewer
    neyman = replace(cfg, audit_rates=(0.2, 0.06, 0.012, 0.0015))
    assert sim.run_real(neyman, "n", None, fixed=fixed).audit.sum() < default.audit.sum()
    with pytest.raises(ValueError):
        sim.run_real(replace(cfg, audit_rates=(0.2, 0.06)), "bad", None, fixed=fixed)


def test_realistic_oracle_queue_is_a_floor_below_static_best(sim):
    cfg = sim.RealConfig(seed=3, windows=8, uploads_per_window=10_000)
    floor = sim.real_oracle_queue(cfg)
    static = sim.run_real(cfg, "s", None, fixed=sim.real_static_best(cfg), audits=False)
    # per window and category exactly at the target: far less queue than the static threshold
    # that must hold the target through every drift phase at once
    assert 0.0 < floor < static.load.mean()


def test_causal_floor_knows_the_distributions_and_the_least_margin(sim):
    # at production-like volume (the margin is for windows of hundreds of violations)
    cfg = sim.RealConfig(seed=3, windows=20, uploads_per_window=50_000)
    # period 5, category 7 by hand: expected recall 0.95 + z binomial s.e. of a window's recall
    prev, mu1 = sim.real_truth(cfg, 5)
    tau = 0.95 + 1.5 * math.sqrt(0.95 * 0.05 / (prev[7] * 50_000 * 0.99))
    want = mu1[7] + cfg.scenario.sd1 * NormalDist().inv_cdf(1.0 - tau)
    assert sim.causal_thresholds(cfg, 5, np.full(8, 1.5))[7] == pytest.approx(want, abs=1e-12)

    run = sim.real_causal_floor(cfg)
    assert run.audit.sum() == 0.0 and (run.coverage(cfg.target) >= 0.95).all()
    # per category the least margin of the grid: one step less misses the coverage there
    assert run.margins is not None and (run.margins > 0).all()
    less = sim.causal_run(cfg, run.margins - 0.1, "less")
    assert (less.coverage(cfg.target) < 0.95).all()
    # it does not know the sample: above the hindsight per-window oracle
    assert sim.real_oracle_queue(cfg) < run.load.mean()
