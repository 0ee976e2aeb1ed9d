"""Seeded reviewer-feedback simulation: `seed` vs `recall_target` thresholds under drift.

A stream of uploads (violations and non-violations with GME-cosine-like scores) whose violation
scores and prevalence drift over time. Each method runs its own threshold on the same stream;
reviewers label everything they are shown — the queue at/above the threshold plus the audit
samples below it (same audit design for every method) — and the adjuster sees only those
labels. Per window it reports the TRUE recall (share of all violations that scored at/above the
threshold in force), the review load (queue + audit items per 1000 uploads) and the threshold
path; ``--plot`` writes a PNG. No database, no clock: everything is seeded.

    .venv/bin/python benchmarks/simulate_feedback.py --plot /tmp/feedback.png
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from moderation.thresholds.adjusters import CONTENT_SAFETY_BASE, RecallTargetAdjuster, SeedAdjuster
from moderation.thresholds.audit import AuditDesign, audit_decisions, image_audit_decisions
from moderation.thresholds.evidence import Evidence

__all__ = ["MethodRun", "Scenario", "SimConfig", "SimResult", "main", "simulate"]

Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # reviewed (scores, observed labels, π)
Adjust = Callable[[float, list[Batch]], float]  # (threshold, reviewed so far) → next threshold


@dataclass(frozen=True)
class Scenario:
    """Scores over time x ∈ [0, 1): non-violations N(0.12, 0.04); violations N(mu1(x), 0.045)
    with prevalence p(x). Phases: stable → violation scores drift down (evasion) → prevalence
    drops → a model update lifts violation scores (the task gets easier)."""

    mu0: float = 0.12
    sd0: float = 0.04
    sd1: float = 0.045
    phases: tuple[tuple[float, str], ...] = (
        (0.25, "stable"),
        (0.50, "scores drift down"),
        (0.70, "low prevalence"),
        (1.00, "recovery"),
    )

    def mu1(self, x: float) -> float:
        return float(np.interp(x, [0, 0.25, 0.5, 0.7, 0.85, 1], [0.28, 0.28, 0.24, 0.24, 0.3, 0.3]))

    def prevalence(self, x: float) -> float:
        xs = [0, 0.45, 0.55, 0.65, 0.75, 1]
        return float(np.interp(x, xs, [0.02, 0.02, 0.006, 0.006, 0.025, 0.025]))

    def phase(self, x: float) -> str:
        return next(name for end, name in self.phases if x < end)


@dataclass(frozen=True)
class SimConfig:
    seed: int = 7
    windows: int = 40
    uploads_per_window: int = 100_000
    periods_per_window: int = 2  # adjusters run at the end of every period
    horizon_periods: int = 8  # recall_target's sliding evidence window…
    recent_periods: float | None = 4.0  # …and its drift-sensitive recent part
    target: float = 0.95
    start: float = CONTENT_SAFETY_BASE  # both start at the seed's content-safety base, 0.18
    audit_scale: float = 0.5  # × AuditDesign.for_scale("gme_cosine") rates
    reviewer_error: float = 0.0  # chance a reviewer flips the true label
    load_cap: float | None = None  # adds "load_capped": recall_target with max_load_share…
    floor_target: float = 0.9  # …degrading to this recall floor under the cap
    adjuster: RecallTargetAdjuster = field(default_factory=RecallTargetAdjuster)
    scenario: Scenario = field(default_factory=Scenario)
    timeline: tuple[float, float] = (0.0, 1.0)  # the slice of the scenario's timeline to run

    def x(self, fraction: float) -> float:
        """Scenario time at ``fraction`` ∈ [0, 1) of this run."""
        return self.timeline[0] + fraction * (self.timeline[1] - self.timeline[0])


@dataclass(frozen=True)
class Stream:
    """The uploads, drawn once and shared by every method (common random numbers)."""

    scores: list[np.ndarray]  # per period
    labels: list[np.ndarray]
    flips: list[np.ndarray]  # reviewer mistakes, applied to whatever reviewers are shown


@dataclass
class MethodRun:
    """One method: per-window true recall and load, per-period threshold."""

    name: str
    caught: np.ndarray  # violations at/above the threshold in force, per window
    violations: np.ndarray
    queue_load: np.ndarray  # queue items per 1000 uploads
    audit_load: np.ndarray
    thresholds: np.ndarray
    seed_fn_rate: np.ndarray | None = None  # the seed's own FN rate at each window's end

    @property
    def recall(self) -> np.ndarray:
        """True recall per window."""
        return self.caught / self.violations

    @property
    def load(self) -> np.ndarray:
        return self.queue_load + self.audit_load

    def coverage(self, target: float) -> float:
        return float(np.mean(self.recall >= target))

    def guaranteed_recall(self, coverage: float = 0.95) -> float:
        """The highest recall held in at least ``coverage`` of the windows — what a
        recall-first policy promises ("recall ≥ r in ≥ 95 % of windows")."""
        k = int(math.floor((1.0 - coverage) * self.recall.size + 1e-9))
        return float(np.sort(self.recall)[k])

    def pooled_recall(self) -> float:
        """Share of all violations of the run that were caught."""
        return float(self.caught.sum() / self.violations.sum())


# Three readings of "recall" of a run, for comparisons at equal recall.
RECALL_MEASURES: dict[str, Callable[[MethodRun], float]] = {
    "guaranteed": MethodRun.guaranteed_recall,
    "mean": lambda run: float(run.recall.mean()),
    "pooled": MethodRun.pooled_recall,
}


@dataclass(frozen=True)
class SimResult:
    cfg: SimConfig
    stream: Stream
    runs: dict[str, MethodRun]


def make_stream(cfg: SimConfig) -> Stream:
    rng = np.random.default_rng(cfg.seed)
    n = cfg.uploads_per_window // cfg.periods_per_window
    total = cfg.windows * cfg.periods_per_window
    out = Stream([], [], [])
    for k in range(total):
        x = cfg.x((k + 0.5) / total)
        y = rng.random(n) < cfg.scenario.prevalence(x)
        s = np.where(
            y,
            rng.normal(cfg.scenario.mu1(x), cfg.scenario.sd1, n),
            rng.normal(cfg.scenario.mu0, cfg.scenario.sd0, n),
        )
        out.scores.append(np.clip(s, -1.0, 1.0))
        out.labels.append(y)
        out.flips.append(rng.random(n) < cfg.reviewer_error)
    return out


def run_method(cfg: SimConfig, stream: Stream, name: str, adjust: Adjust) -> MethodRun:
    """Drive one adjuster over the stream, calling it at the end of every period."""
    design = AuditDesign.for_scale("gme_cosine", cfg.audit_scale)
    # One generator per method, same seed: every period draws n uniforms whatever the
    # threshold, so all methods see the same audit coin flips.
    audit_rng = np.random.default_rng([cfg.seed, 1])
    ppw, t = cfg.periods_per_window, cfg.start
    reviewed: list[Batch] = []
    caught, violations, queue, audit = (np.zeros(cfg.windows) for _ in range(4))
    path = np.zeros(cfg.windows * ppw)
    for k, (s, y) in enumerate(zip(stream.scores, stream.labels, strict=True)):
        w = k // ppw
        path[k] = t
        in_queue = s >= t
        sampled, _, prob = audit_decisions(s, t, design, audit_rng)
        shown = in_queue | sampled
        reviewed.append((s[shown], y[shown] ^ stream.flips[k][shown], prob[shown]))
        caught[w] += (in_queue & y).sum()
        violations[w] += y.sum()
        queue[w] += in_queue.sum()
        audit[w] += sampled.sum()
        t = adjust(t, reviewed)
    per_1000 = 1000.0 / cfg.uploads_per_window
    return MethodRun(name, caught, violations, queue * per_1000, audit * per_1000, path)


def recall_target_adjust(cfg: SimConfig) -> Adjust:
    """The adjuster on its sliding window; the clock counts periods (now = periods elapsed)."""
    adjuster = replace(
        cfg.adjuster,
        target=cfg.target,
        horizon_s=float(cfg.horizon_periods),
        recent_s=cfg.recent_periods,
    )

    def adjust(t: float, reviewed: list[Batch]) -> float:
        first = max(0, len(reviewed) - cfg.horizon_periods)
        window = reviewed[first:]
        s, y, pi = (np.concatenate(parts) for parts in zip(*window, strict=True))
        at = np.concatenate([np.full(b[0].size, first + i, float) for i, b in enumerate(window)])
        evidence = Evidence.from_arrays(s, y, pi, at)
        return adjuster.propose(t, evidence, now=float(len(reviewed))).value

    return adjust


def seed_adjust(cfg: SimConfig, fn_rates: list[float]) -> Adjust:
    """The seed's system, fed every reviewed item of the period in arrival order."""
    seed = SeedAdjuster(cfg.start)
    rng = np.random.default_rng([cfg.seed, 2])

    def adjust(t: float, reviewed: list[Batch]) -> float:
        s, y, _ = reviewed[-1]
        # reviews arrive interleaved, not queue-then-audit; older ones fall out of its history
        for i in rng.permutation(s.size)[-1000:]:
            seed.add_feedback(float(s[i]), bool(y[i]), 0.0)
        proposal = seed.adjust()
        fn_rates.append(float(proposal.evidence.get("fn_rate", math.nan)))
        return proposal.value

    return adjust


def simulate(cfg: SimConfig) -> SimResult:
    """Both adjusters and the fixed content-safety preset on one shared stream."""
    stream = make_stream(cfg)
    fn_rates: list[float] = []
    seed = run_method(cfg, stream, "seed", seed_adjust(cfg, fn_rates))
    seed.seed_fn_rate = np.array(fn_rates).reshape(cfg.windows, -1)[:, -1]
    runs = {
        "recall_target": run_method(cfg, stream, "recall_target", recall_target_adjust(cfg)),
        "seed": seed,
        "fixed_preset": run_method(cfg, stream, "fixed_preset", lambda t, _reviewed: t),
    }
    if cfg.load_cap is not None:
        capped = replace(
            cfg,
            adjuster=replace(
                cfg.adjuster, max_load_share=cfg.load_cap, floor_target=cfg.floor_target
            ),
        )
        runs["load_capped"] = run_method(
            capped, stream, "load_capped", recall_target_adjust(capped)
        )
    return SimResult(cfg, stream, runs)


def _windows(cfg: SimConfig, stream: Stream) -> list[tuple[np.ndarray, np.ndarray]]:
    ppw = cfg.periods_per_window
    return [
        (
            np.concatenate(stream.scores[w * ppw : (w + 1) * ppw]),
            np.concatenate(stream.labels[w * ppw : (w + 1) * ppw]),
        )
        for w in range(cfg.windows)
    ]


def oracle(cfg: SimConfig, stream: Stream) -> tuple[np.ndarray, np.ndarray]:
    """Per window, in hindsight: the highest threshold meeting the target, and its queue load."""
    thr, load = np.zeros(cfg.windows), np.zeros(cfg.windows)
    for w, (s, y) in enumerate(_windows(cfg, stream)):
        v = np.sort(s[y])
        thr[w] = v[int(math.floor((1.0 - cfg.target) * v.size + 1e-9))]
        load[w] = (s >= thr[w]).sum() * 1000.0 / s.size
    return thr, load


def static_best(cfg: SimConfig, stream: Stream, coverage: float = 0.95) -> tuple[float, float]:
    """In hindsight: the highest fixed threshold meeting the target in ≥ ``coverage`` of the
    windows, and its mean queue load per 1000 uploads (no audits: it never looks)."""
    windows = _windows(cfg, stream)
    best = 0.10
    for t in np.round(np.arange(0.10, 0.30, 0.0025), 4):
        if np.mean([(s[y] >= t).mean() >= cfg.target for s, y in windows]) >= coverage:
            best = float(t)
    return best, float(np.mean([(s >= best).sum() * 1000.0 / s.size for s, _ in windows]))


@dataclass(frozen=True)
class Matched:
    """recall_target re-run at the lowest target whose recall (by one measure) reaches a level."""

    measure: str
    level: float  # the seed's recall by that measure
    target: float  # recall_target's target that got there
    reached: float
    load: float  # reviews per 1000 uploads (queue + audit)


def match_recall(cfg: SimConfig, stream: Stream, measure: str, level: float) -> Matched:
    """Bisect recall_target's target (over 0.05–0.995, 10 steps) for the lowest one whose
    recall by ``measure`` is at least ``level``: the cheapest recall_target at equal recall."""
    recall_of = RECALL_MEASURES[measure]
    lo, hi = 0.05, 0.995  # the seed can sit far below any sensible target
    best = Matched(measure, level, math.nan, math.nan, math.inf)
    for _ in range(10):
        mid = (lo + hi) / 2
        trial = replace(cfg, target=mid)
        run = run_method(trial, stream, "matched", recall_target_adjust(trial))
        reached = recall_of(run)
        if reached >= level:
            best = Matched(measure, level, mid, reached, float(run.load.mean()))
            hi = mid
        else:
            lo = mid
    return best


def print_tables(result: SimResult) -> None:
    cfg, runs = result.cfg, result.runs
    _, ora_load = oracle(cfg, result.stream)
    phases = np.array(
        [cfg.scenario.phase(cfg.x((w + 0.5) / cfg.windows)) for w in range(cfg.windows)]
    )
    print(f"per phase: mean true recall / reviews per 1000 uploads (target {cfg.target})")
    print(f"{'phase':<19}" + "".join(f"{n:>20}" for n in runs) + f"{'oracle load':>13}")
    for phase in dict.fromkeys(phases):
        m = phases == phase
        cells = "".join(
            f"{r.recall[m].mean():>11.3f} / {r.load[m].mean():>6.1f}" for r in runs.values()
        )
        print(f"{phase:<19}{cells}{ora_load[m].mean():>13.1f}")
    print(
        f"\n{'method':<15}{'windows ≥ target':>18}{'mean recall':>12}{'min recall':>11}"
        f"{'load':>7}{'queue':>7}{'audit':>7}{'peak':>7}{'peak/mean':>10}"
    )
    for r in runs.values():
        ok = int((r.recall >= cfg.target).sum())
        print(
            f"{r.name:<15}{f'{ok}/{cfg.windows} ({ok / cfg.windows:.1%})':>18}"
            f"{r.recall.mean():>12.3f}{r.recall.min():>11.3f}"
            f"{r.load.mean():>7.1f}{r.queue_load.mean():>7.1f}{r.audit_load.mean():>7.1f}"
            f"{r.load.max():>7.1f}{r.load.max() / r.load.mean():>10.2f}"
        )
    st_thr, st_load = static_best(cfg, result.stream)
    print(f"{'static best':<15}{f'(hindsight {st_thr:.4f})':>18}{'':>23}{st_load:>7.1f}")
    print(f"{'oracle/window':<15}{'(hindsight)':>18}{'':>23}{ora_load.mean():>7.1f}")


def summarise(result: SimResult, match: bool = True) -> dict[str, float]:
    """Print the tables, the seed's silent losses and the ratios; return the headline numbers."""
    cfg, rt, seed = result.cfg, result.runs["recall_target"], result.runs["seed"]
    print_tables(result)
    _, st_load = static_best(cfg, result.stream)
    fn = seed.seed_fn_rate if seed.seed_fn_rate is not None else np.zeros(cfg.windows)
    silent = (seed.recall < cfg.target) & (fn <= 0.15)
    worst = int(np.argmin(seed.recall))
    print(
        f"\nseed silently below target in {int(silent.sum())}/{cfg.windows} windows: its own "
        f"FN rate stayed ≤ 15% there, so it never lowered. Worst: window {worst}, true recall "
        f"{seed.recall[worst]:.3f}, seed's FN rate {fn[worst]:.3f}"
    )
    out = {
        "recall_target_coverage": rt.coverage(cfg.target),
        "seed_coverage": seed.coverage(cfg.target),
        "recall_target_load": float(rt.load.mean()),
        "seed_load": float(seed.load.mean()),
        "load_ratio_recall_target_vs_static_best": float(rt.load.mean()) / st_load,
        "load_ratio_recall_target_vs_fixed_preset": float(
            rt.load.mean() / result.runs["fixed_preset"].load.mean()
        ),
    }
    if match:
        print(f"\nequal recall (seed load {seed.load.mean():.1f} reviews / 1000):")
        for measure, recall_of in RECALL_MEASURES.items():
            m = match_recall(cfg, result.stream, measure, recall_of(seed))
            ratio = m.load / float(seed.load.mean())
            print(
                f"  {measure:<10} recall ≥ seed's {m.level:.3f}: recall_target with target "
                f"{m.target:.3f} reaches {m.reached:.3f}, load {m.load:.1f} ({ratio:.3f}× seed)"
            )
            out[f"load_ratio_recall_target_vs_seed_at_equal_{measure}_recall"] = ratio
    print("ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
    return out


def plot(result: SimResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result.cfg
    ora_thr, ora_load = oracle(cfg, result.stream)
    wins = np.arange(cfg.windows)
    periods = np.arange(cfg.windows * cfg.periods_per_window) / cfg.periods_per_window
    fig, ax = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for r in result.runs.values():
        ax[0].step(periods, r.thresholds, where="post", label=r.name)
        ax[1].plot(wins + 0.5, r.recall, marker=".", label=r.name)
        ax[2].plot(wins + 0.5, r.load, marker=".", label=f"{r.name} (queue + audit)")
    ax[0].step(wins, ora_thr, where="post", ls=":", c="k", label="oracle (hindsight)")
    ax[1].axhline(cfg.target, c="r", lw=0.8, ls="--", label=f"target {cfg.target}")
    ax[2].plot(wins + 0.5, ora_load, ls=":", c="k", label="oracle queue load")
    for a, label in zip(ax, ("threshold", "true recall", "reviews / 1000 uploads"), strict=True):
        a.set_ylabel(label)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    ax[2].set_xlabel(f"window ({cfg.uploads_per_window} uploads)")
    ax[0].set_title("seed vs recall_target under score and prevalence drift")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- realistic mode: 8 correlated categories, drift, reviewer error, bank hits -------------


@dataclass(frozen=True)
class RealConfig:
    """The realistic simulation (``--realistic``).

    Every upload has 8 category scores. A shared latent per image correlates both which
    categories it violates (Gaussian copula, ``rho``) and its scores. Each category follows the
    single-category :class:`Scenario` (violation scores drift down, prevalence drops, a model
    update lifts scores) shifted in time by ``c / categories`` of the run and with its own
    prevalence scale (``prevalence_scales``: 0.5–1.5 × the scenario's). ``bank_rate`` of the
    uploads are hash-bank matches: decided by the bank, never scored, reviewed or used as model
    evidence, and left out of recall (recall is the model path's). Reviewers err on
    ``reviewer_error`` of their labels of violations and of *look-alike* non-violations (score
    above the non-violation ``lookalike_quantile``); clear non-violations are never flagged.
    One review of an image labels every category (queue or per-image audit alike).
    """

    seed: int = 7
    windows: int = 40
    uploads_per_window: int = 100_000
    periods_per_window: int = 2
    categories: int = 8
    rho: float = 0.4
    bank_rate: float = 0.01
    reviewer_error: float = 0.04
    lookalike_quantile: float = 0.99
    target: float = 0.95
    start: float = CONTENT_SAFETY_BASE
    # × AuditDesign.for_scale("gme_cosine") rates per category: 0.25 draws ≈ 5.5 % of the
    # images; 0.1 (≈ 2.4 %, about the production MODERATION_AUDIT_FRACTION 0.02) is too few
    # to hold recall in every category (docs/adaptive.md, the audit-budget trade-off)
    audit_scale: float = 0.25
    horizon_periods: int = 8
    recent_periods: float | None = 4.0
    adjuster: RecallTargetAdjuster = field(default_factory=RecallTargetAdjuster)
    # "unsmoothed": the controller with ``thin_step_down=None`` (the pre-default; False: not run)
    unsmoothed: bool = True
    # the rates of the scale's audit bands (near, mid, far, rest) before ``audit_scale``; None:
    # the production bands. E.g. (0.2, 0.06, 0.012, 0.0015): a Neyman allocation for the miss
    # total under this score model (rate ∝ √(p(1−p)) of a violation in the band)
    audit_rates: tuple[float, ...] | None = None
    load_aware: RecallTargetAdjuster | None = None  # adds "load_capped" with these settings
    # non-violations tighter than the single-category scenario's: with 8 categories a
    # threshold 1.5 sd into their tail would queue a third of all uploads
    scenario: Scenario = field(default_factory=lambda: Scenario(mu0=0.10, sd0=0.03))
    prevalence_range: tuple[float, float] = (0.25, 1.0)  # × the scenario's, across categories

    @property
    def prevalence_scales(self) -> np.ndarray:
        return np.geomspace(*self.prevalence_range, self.categories)

    @property
    def periods(self) -> int:
        return self.windows * self.periods_per_window


@dataclass(frozen=True)
class Period:
    scores: np.ndarray  # (images, categories), model path only (bank hits removed)
    labels: np.ndarray
    flips: np.ndarray  # a reviewer's label of that (image, category) is wrong
    bank_hits: int


def real_truth(cfg: RealConfig, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Period ``k``'s true prevalence and mean violation score per category (each category
    runs the scenario shifted by c/8 of the run)."""
    K, sc = cfg.categories, cfg.scenario
    x = ((k + 0.5) / cfg.periods + np.arange(K) / K) % 1.0  # each category's scenario time
    prev = np.array([sc.prevalence(v) for v in x]) * cfg.prevalence_scales
    return prev, np.array([sc.mu1(v) for v in x])


def real_period(cfg: RealConfig, k: int) -> Period:
    """Period ``k`` of the stream, drawn from its own seeded generator (every method sees the
    same uploads without keeping the whole stream in memory)."""
    from scipy.special import ndtri  # the standard normal quantile (scipy.stats is slow to load)

    rng = np.random.default_rng([cfg.seed, 7, k])
    n, K, sc = cfg.uploads_per_window // cfg.periods_per_window, cfg.categories, cfg.scenario
    prev, mu1 = real_truth(cfg, k)
    r = math.sqrt(cfg.rho), math.sqrt(1.0 - cfg.rho)
    latent = r[0] * rng.standard_normal((n, 1)) + r[1] * rng.standard_normal((n, K))
    labels = latent > ndtri(1.0 - prev)[None, :]
    z = r[0] * rng.standard_normal((n, 1)) + r[1] * rng.standard_normal((n, K))
    scores = np.clip(np.where(labels, mu1 + sc.sd1 * z, sc.mu0 + sc.sd0 * z), -1.0, 1.0)
    lookalike = sc.mu0 + sc.sd0 * ndtri(cfg.lookalike_quantile)
    prone = labels | (scores > lookalike)
    flips = prone & (rng.random((n, K)) < cfg.reviewer_error)
    bank = rng.random(n) < cfg.bank_rate
    return Period(scores[~bank], labels[~bank], flips[~bank], int(bank.sum()))


@dataclass
class RealRun:
    """One method over the realistic stream."""

    name: str
    caught: np.ndarray  # (windows, categories): model-path violations at/above the threshold
    violations: np.ndarray
    queue: np.ndarray  # per window: images reviewed via the queue, per 1000 uploads
    audit: np.ndarray  # per window: audit-only images reviewed, per 1000 uploads
    thresholds: np.ndarray  # (periods, categories)
    wrong_labels: float = 0.0  # share of the labels the method's evidence got that are wrong
    margins: np.ndarray | None = None  # causal_floor: its margin z per category

    @property
    def recall(self) -> np.ndarray:
        return self.caught / np.maximum(self.violations, 1)

    @property
    def load(self) -> np.ndarray:
        return self.queue + self.audit

    def coverage(self, target: float) -> np.ndarray:
        """Per category: share of windows with true recall ≥ ``target``."""
        return (self.recall >= target).mean(axis=0)

    @property
    def peak_to_mean(self) -> float:
        return float(self.load.max() / self.load.mean())


RealAdjust = Callable[[int, np.ndarray, list[list[tuple]]], np.ndarray]


def run_real(
    cfg: RealConfig,
    name: str,
    adjust: RealAdjust | None,
    fixed: np.ndarray | None = None,
    audits: bool = True,
) -> RealRun:
    """Drive one method: ``adjust(k, thresholds, evidence)`` after every period returns the
    next thresholds (``evidence[c]``: per period, (scores, observed labels, π, audited) of
    category c's reviewed items); ``fixed`` thresholds and no adjuster for the static ones.
    Audits are per image (``image_audit_decisions``) at ``audit_scale`` × the default bands."""
    K, ppw = cfg.categories, cfg.periods_per_window
    design = AuditDesign.for_scale("gme_cosine")
    if cfg.audit_rates is not None:
        bands = zip(design.bands, cfg.audit_rates, strict=True)
        design = AuditDesign(tuple(replace(b, rate=r) for b, r in bands))
    designs = [design.scaled(cfg.audit_scale)] * K
    rng = np.random.default_rng([cfg.seed, 1])  # same audit coin flips for every method
    t = np.full(K, cfg.start) if fixed is None else np.asarray(fixed, float).copy()
    caught, violations = np.zeros((cfg.windows, K)), np.zeros((cfg.windows, K))
    queue, audit = np.zeros(cfg.windows), np.zeros(cfg.windows)
    path = np.zeros((cfg.periods, K))
    evidence: list[list[tuple]] = [[] for _ in range(K)]
    wrong = labelled = 0
    for k in range(cfg.periods):
        p, w = real_period(cfg, k), k // ppw
        path[k] = t
        s, y = p.scores, p.labels
        above = s >= t[None, :]
        queued = above.any(axis=1)
        caught[w] += (above & y).sum(axis=0)
        violations[w] += y.sum(axis=0)
        queue[w] += queued.sum()
        if audits:
            sampled, pi, below = image_audit_decisions(s, t, designs, rng)
            audit[w] += (sampled & ~queued).sum()
            drawn = sampled[:, None] & below
        else:
            pi, drawn = np.ones(s.shape[0]), np.zeros_like(above)
        observed = y ^ p.flips
        for c in range(K):
            shown = above[:, c] | drawn[:, c]
            prob = np.where(above[:, c], 1.0, pi)[shown]
            evidence[c].append((s[shown, c], observed[shown, c], prob, drawn[shown, c]))
            evidence[c] = evidence[c][-max(cfg.horizon_periods, 1) :]
            wrong += int(p.flips[shown, c].sum())
            labelled += int(shown.sum())
        if adjust is not None:
            t = adjust(k, t, evidence)
    per_1000 = 1000.0 / cfg.uploads_per_window
    run = RealRun(name, caught, violations, queue * per_1000, audit * per_1000, path)
    run.wrong_labels = wrong / max(labelled, 1)
    return run


def real_recall_target(cfg: RealConfig, adjuster: RecallTargetAdjuster) -> RealAdjust:
    """Per category, ``adjuster`` on its sliding window (the clock counts periods; the
    evidence passed in is already cut to the horizon, so ``horizon_s`` need not cut it)."""
    tuned = replace(adjuster, target=cfg.target, horizon_s=None, recent_s=cfg.recent_periods)

    def adjust(k: int, t: np.ndarray, evidence: list[list[tuple]]) -> np.ndarray:
        out = t.copy()
        first = k + 1 - len(evidence[0])
        for c, window in enumerate(evidence):
            s, y, pi, audited = (np.concatenate(parts) for parts in zip(*window, strict=True))
            at = np.concatenate(
                [np.full(b[0].size, first + i, float) for i, b in enumerate(window)]
            )
            ev = Evidence.from_arrays(s, y, pi, at, audited)
            out[c] = tuned.propose(float(t[c]), ev, now=float(k + 1)).value
        return out

    return adjust


def real_seed(cfg: RealConfig) -> RealAdjust:
    """The seed's adjuster per category, fed that category's reviewed items in random order."""
    seeds = [SeedAdjuster(cfg.start) for _ in range(cfg.categories)]
    rng = np.random.default_rng([cfg.seed, 2])

    def adjust(k: int, t: np.ndarray, evidence: list[list[tuple]]) -> np.ndarray:
        for c, seed in enumerate(seeds):
            s, y, _, _ = evidence[c][-1]
            for i in rng.permutation(s.size)[-1000:]:
                seed.add_feedback(float(s[i]), bool(y[i]), 0.0)
            seed.adjust()
        return np.array([seed.threshold for seed in seeds])

    return adjust


STATIC_GRID = np.round(np.arange(0.10, 0.30 + 1e-9, 0.0025), 4)


def real_oracle_queue(cfg: RealConfig) -> float:
    """Mean queue per 1000 uploads of the hindsight oracle that, in every window and category,
    sits exactly at recall = target (the highest threshold catching ⌈target · violations⌉):
    the least queue *any* threshold path can have while holding the target in every window,
    and it pays no audits. A floor, not a method: nobody knows these thresholds in advance."""
    load = np.zeros(cfg.windows)
    for w in range(cfg.windows):
        parts = [
            real_period(cfg, w * cfg.periods_per_window + i) for i in range(cfg.periods_per_window)
        ]
        s = np.concatenate([p.scores for p in parts])
        y = np.concatenate([p.labels for p in parts])
        thr = np.full(cfg.categories, np.inf)
        for c in range(cfg.categories):
            v = np.sort(s[y[:, c], c])
            if v.size:
                thr[c] = v[int(math.floor((1.0 - cfg.target) * v.size + 1e-9))]
        load[w] = (s >= thr[None, :]).any(axis=1).sum() * 1000.0 / cfg.uploads_per_window
    return float(load.mean())


CAUSAL_Z_GRID = np.round(np.arange(0.0, 4.0 + 1e-9, 0.1), 1)


def causal_thresholds(cfg: RealConfig, k: int, z: np.ndarray) -> np.ndarray:
    """Period ``k``'s thresholds for a controller that knows each category's true score
    distribution and prevalence (never its sample): the quantile whose expected recall is the
    target plus ``z`` binomial standard errors of one window's realised recall, √(τ(1 − τ)/V).
    ``z`` per category, or a grid of them (shape (G, 1) → (G, categories))."""
    from scipy.special import ndtri

    prev, mu1 = real_truth(cfg, k)
    violations = prev * cfg.uploads_per_window * (1.0 - cfg.bank_rate)  # expected, per window
    tau = cfg.target + z * np.sqrt(cfg.target * (1.0 - cfg.target) / violations)
    return mu1 + cfg.scenario.sd1 * ndtri(1.0 - np.minimum(tau, 0.999))


def holds_target(
    cfg: RealConfig, candidates: Callable[[int], np.ndarray], coverage: float = 0.95
) -> np.ndarray:
    """In hindsight (every true label known): for candidate thresholds ``candidates(k)`` of
    shape (G, categories) in period k, whether candidate g of category c has true recall ≥
    target in ≥ ``coverage`` of the windows — (G, categories) booleans."""
    caught = np.zeros((cfg.windows, *candidates(0).shape))
    violations = np.zeros((cfg.windows, cfg.categories))
    for k in range(cfg.periods):
        p, w, t = real_period(cfg, k), k // cfg.periods_per_window, candidates(k)
        violations[w] += p.labels.sum(axis=0)
        for c in range(cfg.categories):
            v = np.sort(p.scores[p.labels[:, c], c])
            caught[w, :, c] += v.size - np.searchsorted(v, t[:, c], side="left")
    return (caught / np.maximum(violations[:, None, :], 1) >= cfg.target).mean(axis=0) >= coverage


def real_causal_floor(cfg: RealConfig, coverage: float = 0.95) -> RealRun:
    """A floor for controllers that decide *before* each period: ``causal_thresholds`` with,
    per category, the smallest margin z of ``CAUSAL_Z_GRID`` whose true recall is ≥ target in
    ≥ ``coverage`` of the windows, chosen in hindsight like ``static_best`` (the largest z
    when none is). It needs no audits and learns nothing, so a real controller pays its audits
    and its learning on top. (A reference, not a proof: time-varying margins could undercut
    it.)"""
    ok = holds_target(cfg, lambda k: causal_thresholds(cfg, k, CAUSAL_Z_GRID[:, None]), coverage)
    first = [np.flatnonzero(col)[:1] for col in ok.T]
    z = np.array([CAUSAL_Z_GRID[f[0] if f.size else -1] for f in first])
    run = causal_run(cfg, z)
    run.margins = z
    return run


def causal_run(cfg: RealConfig, z: np.ndarray, name: str = "causal_floor") -> RealRun:
    """The stream under ``causal_thresholds`` with margins ``z`` (per category), no audits."""
    return run_real(
        cfg,
        name,
        lambda k, t, ev: causal_thresholds(cfg, k + 1, z),
        fixed=causal_thresholds(cfg, 0, z),
        audits=False,
    )


def real_static_best(cfg: RealConfig, coverage: float = 0.95) -> np.ndarray:
    """Per category, in hindsight (knowing every true label): the highest threshold of
    ``STATIC_GRID`` whose true recall is ≥ target in ≥ ``coverage`` of the windows — the
    cheapest fixed threshold with the same guarantee the controller is held to (the lowest
    grid value when none is). Raising one category's threshold never adds reviews, so
    per-category maxima minimise the total."""
    grid = np.repeat(STATIC_GRID[:, None], cfg.categories, axis=1)
    ok = holds_target(cfg, lambda k: grid, coverage)
    last = [np.flatnonzero(col)[-1:] for col in ok.T]
    return np.array([STATIC_GRID[f[0] if f.size else 0] for f in last])


def simulate_real(cfg: RealConfig) -> dict[str, RealRun]:
    """Every method on the same stream: the seed's adjuster and the controller (both with
    per-image audits), the fixed content-safety preset and the hindsight-best static
    thresholds (neither needs audits, so neither gets any), the causal floor (knows each
    period's true distributions, no audits), the controller without smoothed
    descents (``thin_step_down=None``, the default before) and, when configured, with a load
    cap."""
    runs = {
        "recall_target": run_real(cfg, "recall_target", real_recall_target(cfg, cfg.adjuster)),
        "seed": run_real(cfg, "seed", real_seed(cfg)),
        "fixed_preset": run_real(cfg, "fixed_preset", None, audits=False),
        "static_best": run_real(
            cfg, "static_best", None, fixed=real_static_best(cfg), audits=False
        ),
        "causal_floor": real_causal_floor(cfg),
    }
    if cfg.unsmoothed:
        plain = replace(cfg.adjuster, thin_step_down=None)
        runs["unsmoothed"] = run_real(cfg, "unsmoothed", real_recall_target(cfg, plain))
    if cfg.load_aware is not None:
        runs["load_capped"] = run_real(cfg, "load_capped", real_recall_target(cfg, cfg.load_aware))
    return runs


def real_summary(cfg: RealConfig, runs: dict[str, RealRun]) -> dict[str, dict[str, float]]:
    """Per method: the worst category's share of windows with recall ≥ target, reviews
    (queue + audit) per 1000 uploads, audit reviews, peak-to-mean load, load vs static_best."""
    static = float(runs["static_best"].load.mean())
    return {
        name: {
            "min_coverage": float(r.coverage(cfg.target).min()),
            "min_recall": float(r.recall.min()),
            "reviews_per_1000": float(r.load.mean()),
            "audit_per_1000": float(r.audit.mean()),
            "peak_to_mean": r.peak_to_mean,
            "vs_static_best": float(r.load.mean()) / static,
            "wrong_labels": r.wrong_labels,
        }
        for name, r in runs.items()
    }


def print_real(cfg: RealConfig, runs: dict[str, RealRun]) -> dict[str, dict[str, float]]:
    summary = real_summary(cfg, runs)
    print(
        f"seed {cfg.seed}: {cfg.categories} categories, {cfg.windows} windows × "
        f"{cfg.uploads_per_window} uploads, bank {cfg.bank_rate:.1%}, reviewer error "
        f"{cfg.reviewer_error:.0%} (violations and look-alikes), target {cfg.target}"
    )
    print(
        f"{'method':<14}{'windows ≥ target per category':>58}{'min':>7}{'reviews':>9}"
        f"{'audit':>7}{'peak/mean':>10}{'vs static':>10}{'wrong':>7}"
    )
    for name, r in runs.items():
        m = summary[name]
        cov = " ".join(f"{v:5.0%}" for v in r.coverage(cfg.target))
        print(
            f"{name:<14}{cov:>58}{m['min_recall']:>7.3f}{m['reviews_per_1000']:>9.1f}"
            f"{m['audit_per_1000']:>7.1f}{m['peak_to_mean']:>10.2f}{m['vs_static_best']:>10.3f}"
            f"{m['wrong_labels']:>7.1%}"
        )
    return summary


def plot_real(cfg: RealConfig, runs: dict[str, RealRun], out_dir: Path) -> list[Path]:
    """Three PNGs: worst category's recall per window, review load per window, and one
    category's threshold path (category 0), each method one line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    wins = np.arange(cfg.windows) + 0.5
    periods = np.arange(cfg.periods) / cfg.periods_per_window
    paths = []
    for name, draw in (
        ("recall", lambda ax, r: ax.plot(wins, r.recall.min(axis=1), marker=".", label=r.name)),
        ("load", lambda ax, r: ax.plot(wins, r.load, marker=".", label=r.name)),
        (
            "thresholds",
            lambda ax, r: ax.step(periods, r.thresholds[:, 0], where="post", label=r.name),
        ),
    ):
        fig, ax = plt.subplots(figsize=(9, 4))
        for r in runs.values():
            draw(ax, r)
        if name == "recall":
            ax.axhline(cfg.target, c="r", lw=0.8, ls="--", label=f"target {cfg.target}")
            ax.set_ylim(max(0.0, min(r.recall.min() for r in runs.values()) - 0.02), 1.0)
        ax.set_ylabel(
            {
                "recall": "true recall, worst of 8 categories",
                "load": "reviews / 1000 uploads (queue + audit)",
                "thresholds": "threshold of category 0",
            }[name]
        )
        ax.set_xlabel(f"window ({cfg.uploads_per_window} uploads)")
        ax.set_title(f"realistic simulation, seed {cfg.seed}: {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"adaptive_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main_real(args: argparse.Namespace) -> int:
    load_aware = None
    if args.load_cap is not None:
        load_aware = RecallTargetAdjuster(
            confidence=args.confidence,
            max_load_share=args.load_cap,
            floor_target=args.floor,
            thin_step_down=args.thin_step_down,
        )
    rates = tuple(float(r) for r in args.audit_rates.split(",")) if args.audit_rates else None
    cfg = RealConfig(
        seed=args.seed,
        windows=args.windows,
        uploads_per_window=args.uploads,
        target=args.target,
        audit_scale=args.audit_scale,
        reviewer_error=args.reviewer_error,
        horizon_periods=args.horizon,
        recent_periods=args.recent or None,
        adjuster=RecallTargetAdjuster(
            confidence=args.confidence,
            thin_step_down=args.thin_step_down,
            max_step_down=args.max_step_down,
        ),
        load_aware=load_aware,
        bank_rate=args.bank_rate,
        audit_rates=rates,
    )
    rows: dict[str, list[dict[str, float]]] = {}
    held: dict[str, list[np.ndarray]] = {}  # per method, per seed: windows ≥ target per category
    for seed in range(args.seed, args.seed + args.seeds):
        run_cfg = replace(cfg, seed=seed)
        runs = simulate_real(run_cfg)
        for name, m in print_real(run_cfg, runs).items():
            rows.setdefault(name, []).append(m)
            held.setdefault(name, []).append((runs[name].recall >= cfg.target).sum(axis=0))
        floor = real_oracle_queue(run_cfg)
        static = float(runs["static_best"].load.mean())
        print(
            f"oracle per window (hindsight, recall exactly {cfg.target} in every window and "
            f"category, no audits): {floor:.1f} per 1000 ({floor / static:.3f}× static_best)"
        )
        margins = " ".join(f"{z:.1f}" for z in runs["causal_floor"].margins)
        print(f"causal_floor margins z per category (least meeting the coverage): {margins}")
        if args.plot and seed == args.seed:
            for path in plot_real(run_cfg, runs, args.plot):
                print(f"plot: {path}")
        print()
    print(f"over seeds {args.seed}…{args.seed + args.seeds - 1} (worst seed, mean over seeds):")
    print(
        f"{'method':<14}{'min coverage':>13}{'pooled':>8}{'reviews/1000':>13}{'audit/1000':>11}"
        f"{'max peak/mean':>14}{'max vs static':>14}{'mean vs static':>15}"
    )
    for name, ms in rows.items():
        col = {k: np.array([m[k] for m in ms]) for k in ms[0]}
        # per category, all seeds' windows together; the worst category
        pooled = float((np.sum(held[name], axis=0) / (cfg.windows * len(ms))).min())
        print(
            f"{name:<14}{col['min_coverage'].min():>13.1%}{pooled:>8.1%}"
            f"{col['reviews_per_1000'].mean():>13.1f}"
            f"{col['audit_per_1000'].mean():>11.1f}{col['peak_to_mean'].max():>14.2f}"
            f"{col['vs_static_best'].max():>14.3f}{col['vs_static_best'].mean():>15.3f}"
        )
    print(
        "min coverage: the worst (seed, category) share of windows with true recall ≥ target; "
        "pooled: the worst category over all seeds' windows"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--seeds", type=int, default=1, help="repeat with seeds seed…seed+N-1")
    ap.add_argument("--windows", type=int, default=40)
    ap.add_argument("--uploads", type=int, default=100_000, help="uploads per window")
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument(
        "--audit-scale", type=float, help="× default audit band rates (0.5; realistic 0.25)"
    )
    ap.add_argument("--reviewer-error", type=float, help="label flip rate (0; realistic 0.04)")
    ap.add_argument(
        "--realistic",
        action="store_true",
        help="8 correlated categories, drift, reviewer error, bank hits (RealConfig)",
    )
    ap.add_argument("--bank-rate", type=float, default=0.01, help="realistic: bank-hit share")
    ap.add_argument(
        "--thin-step-down",
        type=lambda v: None if v == "none" else float(v),
        default=RecallTargetAdjuster.thin_step_down,
        help="the controller's thin_step_down ('none': off; realistic: 'unsmoothed' has none)",
    )
    ap.add_argument(
        "--audit-rates",
        help="realistic: band rates near,mid,far,rest before --audit-scale (default: production)",
    )
    ap.add_argument("--horizon", type=int, default=8, help="evidence window, in periods")
    ap.add_argument("--recent", type=float, default=4.0, help="recent part, periods (0: off)")
    ap.add_argument("--confidence", type=float, default=0.9, help="of the recall lower bound")
    ap.add_argument(
        "--max-step-down",
        type=float,
        default=RecallTargetAdjuster.max_step_down,
        help="realistic: the controller's largest step down per run",
    )
    ap.add_argument(
        "--plot", type=Path, help="write a PNG of the first seed here (realistic: a directory)"
    )
    ap.add_argument(
        "--load-cap", type=float, help="add recall_target with this max queue share (load_capped)"
    )
    ap.add_argument("--floor", type=float, default=0.9, help="its degraded recall floor")
    args = ap.parse_args(argv)
    if args.realistic:
        args.audit_scale = 0.25 if args.audit_scale is None else args.audit_scale
        args.reviewer_error = 0.04 if args.reviewer_error is None else args.reviewer_error
        return main_real(args)
    args.audit_scale = 0.5 if args.audit_scale is None else args.audit_scale
    args.reviewer_error = args.reviewer_error or 0.0
    cfg = SimConfig(
        seed=args.seed,
        windows=args.windows,
        uploads_per_window=args.uploads,
        horizon_periods=args.horizon,
        recent_periods=args.recent or None,
        target=args.target,
        audit_scale=args.audit_scale,
        reviewer_error=args.reviewer_error,
        adjuster=RecallTargetAdjuster(
            confidence=args.confidence, thin_step_down=args.thin_step_down
        ),
        load_cap=args.load_cap,
        floor_target=args.floor,
    )
    result = simulate(cfg)
    summarise(result)
    if args.plot:
        plot(result, args.plot)
        print(f"plot: {args.plot}")
    if args.seeds > 1:
        print(f"\nacross seeds {args.seed}…{args.seed + args.seeds - 1} (load = reviews / 1000):")
        for seed in range(args.seed, args.seed + args.seeds):
            res = result if seed == args.seed else simulate(replace(cfg, seed=seed))
            cells = [
                f"{n} {r.coverage(cfg.target):6.1%} ≥ target, load {r.load.mean():5.1f} "
                f"(peak/mean {r.load.max() / r.load.mean():.2f})"
                for n, r in res.runs.items()
            ]
            cells.append(f"static best load {static_best(res.cfg, res.stream)[1]:5.1f}")
            seed_run = res.runs["seed"]
            ratios = (
                match_recall(res.cfg, res.stream, m, recall_of(seed_run)).load
                / seed_run.load.mean()
                for m, recall_of in RECALL_MEASURES.items()
            )
            cells.append(
                "recall_target/seed load at equal recall: "
                + ", ".join(f"{m} {r:.3f}" for m, r in zip(RECALL_MEASURES, ratios, strict=True))
            )
            print(f"seed {seed}: " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
