"""Audit sampling below the threshold and inverse-probability-weighted recall and precision."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaincinv

from moderation.thresholds.bounds import recall_lower, recall_upper
from moderation.thresholds.scales import scale_spec

__all__ = [
    "AuditBand",
    "AuditDecision",
    "AuditDesign",
    "ProportionEstimate",
    "RecallCurve",
    "audit_decision",
    "audit_decisions",
    "estimate_miss_rate",
    "estimate_precision",
    "estimate_recall",
    "image_audit_decisions",
    "image_inclusion_probability",
    "recall_curve",
    "weighted_proportion",
]

# Band edges are compared with this slack, so float noise (0.20 - 0.18 = 0.020000000000000018)
# cannot push an item that sits on an edge into the next band outwards.
EDGE_TOLERANCE = 1e-12
ABOVE = "above"  # the stratum of items at/above the threshold: reviewed through the queue, π = 1


@dataclass(frozen=True)
class AuditBand:
    """Items whose score is below the threshold by at most ``max_distance`` (score units)."""

    name: str
    max_distance: float
    rate: float  # inclusion probability, (0, 1]


@dataclass(frozen=True)
class AuditDesign:
    """Stratified Bernoulli sampling of below-threshold items by distance to the threshold.

    Bands are ordered by distance; the last must be unbounded so every below-threshold item has
    a positive inclusion probability — otherwise misses in an unsampled band are invisible and
    every recall estimate is biased upwards (the seed's blind spot, SEED-DIGEST §5).
    """

    bands: tuple[AuditBand, ...]

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError("an audit design needs at least one band")
        edges = self.edges
        if any(not a < b for a, b in zip(edges, edges[1:], strict=False)) or edges[0] <= 0:
            raise ValueError(f"band distances must be positive and increasing: {edges}")
        if not math.isinf(edges[-1]):
            raise ValueError("the last band must be unbounded (max_distance = inf)")
        for band in self.bands:
            if not 0.0 < band.rate <= 1.0:
                raise ValueError(f"band {band.name!r}: rate must be in (0, 1], got {band.rate}")
        if len({b.name for b in self.bands}) != len(self.bands) or ABOVE in {
            b.name for b in self.bands
        }:
            raise ValueError("band names must be unique and not 'above'")

    @classmethod
    def for_scale(cls, scale: str, factor: float = 1.0) -> AuditDesign:
        """The default design of a score scale (``ScaleSpec.audit_bands``), every rate ×
        ``factor`` (capped at 1); ``UnknownScale`` for an unregistered scale."""
        bands = tuple(AuditBand(*band) for band in scale_spec(scale).audit_bands)
        return cls(bands).scaled(factor)

    def scaled(self, factor: float) -> AuditDesign:
        """Every band's rate × ``factor``, capped at 1."""
        if not factor > 0:
            raise ValueError(f"scale factor must be positive, got {factor}")
        return AuditDesign(tuple(replace(b, rate=min(1.0, b.rate * factor)) for b in self.bands))

    def expected_share(self, scores: ArrayLike, threshold: float) -> float:
        """Expected share of the below-threshold items in ``scores`` that this design audits."""
        s = _finite(scores)
        below = s[s < threshold]
        if below.size == 0:
            return 0.0
        return float(self._rates(threshold - below).mean())

    def for_budget(self, fraction: float, scores: ArrayLike, threshold: float) -> AuditDesign:
        """This design rescaled so ``fraction`` of the below-threshold items in ``scores`` (a
        recent sample) are audited in expectation; the band ratios are kept. This is how the
        ``audit_fraction`` setting maps onto band rates."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"audit fraction must be in (0, 1], got {fraction}")
        if self.expected_share(scores, threshold) == 0.0:
            return self
        lo, hi = 1e-6, 1e6  # the share is monotone in the factor: bisect on a log scale
        for _ in range(80):
            mid = math.sqrt(lo * hi)
            if self.scaled(mid).expected_share(scores, threshold) < fraction:
                lo = mid
            else:
                hi = mid
        return self.scaled(hi)

    @property
    def edges(self) -> list[float]:
        """Each band's ``max_distance``, in order: d > 0 falls in the first band with
        d <= max_distance (less ``EDGE_TOLERANCE``)."""
        return [b.max_distance for b in self.bands]

    def band_of(self, distance: float) -> AuditBand:
        """The band of one below-threshold item at ``distance`` > 0 (scalar ``_band_index``:
        the pipeline draws item by item, where a numpy call per item costs more than this)."""
        return self.bands[bisect.bisect_left(self.edges, distance - EDGE_TOLERANCE)]

    def _band_index(self, distance: NDArray[np.float64]) -> NDArray[np.intp]:
        return np.searchsorted(self.edges, distance - EDGE_TOLERANCE, side="left")

    def _rates(self, distance: NDArray[np.float64]) -> NDArray[np.float64]:
        rates = np.array([b.rate for b in self.bands])
        return rates[self._band_index(distance)]


@dataclass(frozen=True)
class AuditDecision:
    """Whether one scored item goes to review as an audit, its stratum and inclusion prob."""

    sampled: bool
    stratum: str
    inclusion_probability: float


def audit_decision(score: float, threshold: float, design: AuditDesign, u: float) -> AuditDecision:
    """The audit decision for one item, given a uniform draw ``u`` in [0, 1) (the caller owns
    the randomness: the pipeline derives it from the item's id, so a redelivery draws the same).
    At/above the threshold the item is reviewed via the queue anyway: ``(False, "above", 1.0)``.
    Non-finite scores are an error, never a silent skip.
    """
    if not (math.isfinite(score) and math.isfinite(threshold)):
        raise ValueError(f"score and threshold must be finite, got {score!r}, {threshold!r}")
    if score >= threshold:
        return AuditDecision(False, ABOVE, 1.0)
    band = design.band_of(threshold - score)
    return AuditDecision(u < band.rate, band.name, band.rate)


def audit_decisions(
    scores: ArrayLike, threshold: float, design: AuditDesign, rng: np.random.Generator
) -> tuple[NDArray[np.bool_], NDArray[np.intp], NDArray[np.float64]]:
    """Vectorised :func:`audit_decision`: (sampled, band index (-1 = above), inclusion prob)."""
    s = np.asarray(scores, dtype=np.float64)
    if not (np.isfinite(s).all() and math.isfinite(threshold)):
        raise ValueError("scores and threshold must be finite")
    below = s < threshold
    band = np.full(s.shape, -1, dtype=np.intp)
    band[below] = design._band_index(threshold - s[below])
    prob = np.ones(s.shape)
    prob[below] = np.array([b.rate for b in design.bands])[band[below]]
    sampled = below & (rng.random(s.shape) < prob)
    return sampled, band, prob


def image_inclusion_probability(category_probabilities: ArrayLike) -> NDArray[np.float64]:
    """Per-image audit design: an image is drawn when any of its categories would be, with one
    uniform per image, so its inclusion probability is 1 − Π_c (1 − π_c) over the categories
    eligible for audit (last axis; π_c = 0 for the others: above the threshold, queued, or no
    threshold). One review then labels every category of the image, and each category's
    Horvitz–Thompson estimate weighs the image by 1/π_image (≥ its own 1/π_c would be)."""
    p = np.asarray(category_probabilities, dtype=np.float64)
    if ((p < 0.0) | (p > 1.0) | ~np.isfinite(p)).any():
        raise ValueError("category inclusion probabilities must be in [0, 1]")
    return 1.0 - np.prod(1.0 - p, axis=-1)


def image_audit_decisions(
    scores: ArrayLike,
    thresholds: ArrayLike,
    designs: Sequence[AuditDesign],
    rng: np.random.Generator,
    eligible: ArrayLike | None = None,
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.bool_]]:
    """Vectorised per-image draw over (images, categories) ``scores`` against one threshold
    and one design per category: (sampled per image, π per image, below-threshold mask). A
    sampled image is labelled for every category; each below-threshold (image, category) of
    it enters that category's evidence with the image's π. ``eligible`` (same shape, default
    all) leaves out pairs that are not drawn for (e.g. the queued category)."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if s.ndim != 2 or t.shape != (s.shape[1],) or len(designs) != s.shape[1]:
        raise ValueError("scores must be (images, categories) with one threshold/design each")
    if not (np.isfinite(s).all() and np.isfinite(t).all()):
        raise ValueError("scores and thresholds must be finite")
    below = s < t[None, :]
    if eligible is not None:
        below &= np.asarray(eligible, dtype=bool)
    pi_c = np.zeros(s.shape)
    for c, design in enumerate(designs):
        rows = below[:, c]
        pi_c[rows, c] = design._rates(t[c] - s[rows, c])
    pi = image_inclusion_probability(pi_c)
    sampled = rng.random(s.shape[0]) < pi
    return sampled, pi, below


@dataclass(frozen=True)
class ProportionEstimate:
    """A Hájek (IPW ratio) estimate of a proportion with a Korn–Graubard interval."""

    estimate: float  # NaN when the domain is empty
    lower: float
    upper: float
    n: int  # observations in the domain
    n_effective: float
    weighted_total: float  # Σ 1/π: the estimated domain size

    def as_dict(self) -> dict[str, float | int | None]:
        return {k: _json_float(v) for k, v in self.__dict__.items()}


def weighted_proportion(
    successes: ArrayLike, inclusion_probability: ArrayLike, confidence: float = 0.95
) -> ProportionEstimate:
    """Hájek estimate Σ y/π ÷ Σ 1/π with a two-sided Korn–Graubard interval at ``confidence``.

    Korn & Graubard (1998), the ``svyciprop(method="beta")`` of R's survey package: a
    Clopper–Pearson interval on the effective count n_eff = p(1−p)/Var̂(p̂), with the Poisson-
    sampling linearised variance Σ (1−π)/π² (y − p̂)² / N̂². Chosen over Wald or bootstrap:
    miss rates sit near 0, where those collapse to zero width (no miss sampled ⇒ no variance).
    n_eff is not capped at n: a design that samples densely where the events are has a design
    effect below 1. When p̂ is 0 or 1 the variance says nothing and n_eff falls back to n (as
    Korn–Graubard do).
    """
    y = np.asarray(successes, dtype=bool)
    pi = np.asarray(inclusion_probability, dtype=np.float64)
    if y.shape != pi.shape or y.ndim != 1:
        raise ValueError("successes and inclusion probabilities must be 1-D of the same length")
    if y.size == 0:
        return ProportionEstimate(math.nan, 0.0, 1.0, 0, 0.0, 0.0)
    w = 1.0 / pi
    total = float(w.sum())
    p = float(w[y].sum() / total)
    var = float(np.sum((1.0 - pi) * w * w * (y - p) ** 2) / total**2)
    n_eff = p * (1.0 - p) / var if 0.0 < p < 1.0 and var > 0.0 else float(y.size)
    lo, hi = _clopper_pearson(p * n_eff, n_eff, 1.0 - confidence)
    return ProportionEstimate(p, float(lo), float(hi), int(y.size), n_eff, total)


def _clopper_pearson(x: ArrayLike, n: ArrayLike, alpha: float) -> tuple[NDArray, NDArray]:
    """Two-sided Clopper–Pearson bounds; ``x`` and ``n`` may be fractional (effective counts)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(x > 0, betaincinv(x, n - x + 1.0, alpha / 2), 0.0)
        hi = np.where(x < n, betaincinv(x + 1.0, n - x, 1.0 - alpha / 2), 1.0)
    return np.nan_to_num(lo, nan=0.0), np.nan_to_num(hi, nan=1.0)


@dataclass(frozen=True)
class RecallCurve:
    """Estimated recall at each candidate threshold, with bounds (arrays aligned on thresholds)."""

    thresholds: NDArray[np.float64]
    estimate: NDArray[np.float64]  # NaN where there are no positives
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    caught_census: NDArray[np.float64]  # violations ≥ t among census (π = 1) items
    missed_census: NDArray[np.float64]
    caught_sampled: NDArray[np.float64]  # Σ 1/π over sampled violations ≥ t (HT total)
    missed_sampled: NDArray[np.float64]
    confidence: float


def recall_curve(
    scores: ArrayLike,
    is_violation: ArrayLike,
    inclusion_probability: ArrayLike,
    thresholds: ArrayLike,
    confidence: float = 0.9,
) -> RecallCurve:
    """Recall R(t) = caught / (caught + missed) of reviewed items, at every candidate ``t``,
    with one-sided ``confidence`` lower and upper bounds.

    The point estimate is the Hájek ratio: census items (π = 1: the queue) count once, audits
    by their Horvitz–Thompson weight 1/π. The bounds are the *same* finite-sample bound as
    offline calibration (``bounds.recall_lower``: one-sided Clopper–Pearson on the miss share)
    applied to effective counts: caught and missed totals divided by ``u``, the weight of one
    effective observation — 1 when every violation is a census (then the bound is exactly the
    offline one), else the largest of the audits' mean weight w̄ (with no miss sampled the
    missed total is bounded by ≈ w̄·ln(1/α), only more audits shrink it) and the
    variance-to-mean ratios Σw²/Σw of the sampled caught and missed violations (one thinly
    sampled miss counts as one observation, not as many).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_violation, dtype=bool)
    pi = np.asarray(inclusion_probability, dtype=np.float64)
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if not 0.5 <= confidence < 1.0:
        raise ValueError("confidence must be in [0.5, 1)")
    census = pi >= 1.0
    above = s[None, :] >= t[:, None]  # (thresholds, items)
    pos_k = y & census
    caught_k = (above & pos_k).sum(axis=1).astype(np.float64)
    missed_k = float(pos_k.sum()) - caught_k

    zeros = np.zeros(t.size)
    caught_s, missed_s, unit = zeros, zeros, np.ones(t.size)
    samp = ~census
    if samp.any():
        w = 1.0 / pi[samp]
        pos_s = y[samp]
        caught_z = above[:, samp] & pos_s
        missed_z = ~above[:, samp] & pos_s
        caught_s, missed_s = (caught_z * w).sum(axis=1), (missed_z * w).sum(axis=1)
        unit = np.full(t.size, float(w.mean()))
        for z, total in ((caught_z, caught_s), (missed_z, missed_s)):
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(total > 0, (z * w * w).sum(axis=1) / total, 0.0)
            unit = np.fmax(unit, ratio)
    caught = (caught_k + caught_s) / unit
    missed = (missed_k + missed_s) / unit
    with np.errstate(invalid="ignore", divide="ignore"):
        est = caught / (caught + missed)
    lower = recall_lower(caught, missed, confidence)
    upper = recall_upper(caught, missed, confidence)
    no_pos = (caught + missed) == 0
    for arr in (est, lower, upper):
        arr[no_pos] = np.nan
    return RecallCurve(t, est, lower, upper, caught_k, missed_k, caught_s, missed_s, confidence)


def estimate_recall(
    scores: ArrayLike,
    is_violation: ArrayLike,
    inclusion_probability: ArrayLike,
    threshold: float,
    confidence: float = 0.9,
) -> RecallCurve:
    """:func:`recall_curve` at a single threshold (arrays of length 1)."""
    return recall_curve(scores, is_violation, inclusion_probability, [threshold], confidence)


def estimate_precision(
    scores: ArrayLike,
    is_violation: ArrayLike,
    inclusion_probability: ArrayLike,
    threshold: float,
    confidence: float = 0.95,
) -> ProportionEstimate:
    """Share of violations among items scoring ≥ ``threshold`` (IPW, Korn–Graubard interval)."""
    s, y, pi = _arrays(scores, is_violation, inclusion_probability)
    keep = s >= threshold
    return weighted_proportion(y[keep], pi[keep], confidence)


def estimate_miss_rate(
    scores: ArrayLike,
    is_violation: ArrayLike,
    inclusion_probability: ArrayLike,
    threshold: float,
    confidence: float = 0.95,
) -> ProportionEstimate:
    """Share of violations among items scoring < ``threshold``: what the queue never shows."""
    s, y, pi = _arrays(scores, is_violation, inclusion_probability)
    keep = s < threshold
    return weighted_proportion(y[keep], pi[keep], confidence)


def _arrays(
    scores: ArrayLike, is_violation: ArrayLike, inclusion_probability: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
    return (
        np.asarray(scores, dtype=np.float64),
        np.asarray(is_violation, dtype=bool),
        np.asarray(inclusion_probability, dtype=np.float64),
    )


def _finite(values: ArrayLike | Sequence[float]) -> NDArray[np.float64]:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def _json_float(value: float | int) -> float | int | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
