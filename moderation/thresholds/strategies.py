"""Calibration math: thresholds from (labelled) scores, each result with the evidence behind it.

A threshold ``t`` flags an image when ``score >= t`` (the policy's rule). Scores are on one
category's scale (GME cosine or a classifier probability); labels say whether an image is a
violation of that category. Strategies (SEED-DIGEST §3):

- ``mean_std`` and ``percentile``: the seed's distribution-based cut-offs, reproduced exactly;
- ``roc_optimal``: Youden's J from labels (the seed stubbed it as the 70th percentile);
- ``precision_target``: the lowest threshold whose precision reaches p, from labels (the seed
  stubbed it as the 100·(1−p)th percentile, which needs no labels and means nothing);
- ``recall_target``: the highest threshold whose recall is ≥ r with probability ≥ 1−δ over the
  calibration sample — the one a recall-first moderation system needs.

Plus the seed's three confidence levels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moderation.thresholds.bounds import miss_share_upper, recall_lower

__all__ = [
    "STRATEGIES",
    "STRATEGY_PARAMS",
    "ConfidenceLevels",
    "InsufficientData",
    "ThresholdResult",
    "ThresholdUnavailable",
    "confidence_levels",
    "evaluate",
    "mean_std",
    "min_positives_for_recall",
    "percentile",
    "precision_target",
    "recall_target",
    "roc_optimal",
    "run_strategy",
    "score_summary",
]

EMPIRICAL = "none: empirical point estimates on the calibration sample"


class ThresholdUnavailable(ValueError):
    """No threshold meets the request on this sample (e.g. a precision never reached)."""


class InsufficientData(ThresholdUnavailable):
    """The sample is too small for the requested guarantee; ``needed`` says how big it must be."""

    def __init__(self, message: str, *, needed: int, have: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.have = have


@dataclass(frozen=True)
class ThresholdResult:
    """A threshold and its evidence on the calibration sample.

    ``precision``/``recall``/``fpr`` are point estimates at ``score >= threshold`` (None when
    undefined: nothing flagged, no positives, no negatives, or no labels). ``bound`` names the
    statistical guarantee, if any, that chose the threshold.
    """

    strategy: str
    threshold: float
    n: int
    positives: int | None
    flagged: int
    precision: float | None
    recall: float | None
    fpr: float | None
    bound: str = EMPIRICAL
    params: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""

    def as_stats(self) -> dict[str, Any]:
        """Plain JSON-able values, for ``threshold_versions.stats``."""
        out = asdict(self)
        out["params"] = dict(self.params)
        return out


def _prepare(
    scores: ArrayLike, labels: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.bool_] | None]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise InsufficientData("no scores to calibrate on", needed=1, have=0)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite numbers")
    if labels is None:
        return s, None
    raw = np.asarray(labels).ravel()
    if raw.shape != s.shape:
        raise ValueError(f"{s.size} scores but {raw.size} labels")
    if not np.isin(raw, (0, 1)).all():
        raise ValueError("labels must be booleans or 0/1")
    return s, raw.astype(bool)


def _weights(weights: ArrayLike | None, size: int) -> NDArray[np.float64]:
    """Per-label weights (default 1): finite, ≥ 0, one per score. A weighted label (e.g. a
    decided appeal, ``MODERATION_APPEAL_EVIDENCE_WEIGHT``) counts as that share of one in
    every count below — flagged, caught, missed."""
    if weights is None:
        return np.ones(size)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != (size,):
        raise ValueError(f"{size} scores but {w.size} weights")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and ≥ 0")
    return w


def _require_classes(labels: NDArray[np.bool_] | None, strategy: str, *, negatives: bool) -> None:
    if labels is None:
        raise ValueError(f"{strategy} needs labels (is_violation per score)")
    if not labels.any():
        raise InsufficientData(f"{strategy} needs labelled violations; got none", needed=1, have=0)
    if negatives and labels.all():
        raise InsufficientData(
            f"{strategy} needs labelled non-violations too; got none", needed=1, have=0
        )


def evaluate(
    strategy: str,
    threshold: float,
    scores: ArrayLike,
    labels: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    **extra: Any,
) -> ThresholdResult:
    """The evidence for ``threshold`` on a sample: flagged count, precision, recall, FPR (the
    rates from weighted counts when ``weights`` are given)."""
    s, y = _prepare(scores, labels)
    flagged = s >= threshold
    n_flagged = int(flagged.sum())
    if y is None:
        return ThresholdResult(
            strategy, float(threshold), s.size, None, n_flagged, None, None, None, **extra
        )
    if weights is None:
        pos, neg = int(y.sum()), int((~y).sum())
        tp, fp, f = int((flagged & y).sum()), int((flagged & ~y).sum()), n_flagged
    else:
        w = _weights(weights, s.size)
        pos, neg = float(w[y].sum()), float(w[~y].sum())
        tp, fp = float(w[flagged & y].sum()), float(w[flagged & ~y].sum())
        f = tp + fp
    return ThresholdResult(
        strategy=strategy,
        threshold=float(threshold),
        n=s.size,
        positives=int(y.sum()),
        flagged=n_flagged,
        precision=tp / f if f else None,
        recall=tp / pos if pos else None,
        fpr=fp / neg if neg else None,
        **extra,
    )


def score_summary(scores: ArrayLike, labels: ArrayLike) -> dict[str, dict[str, float | int]]:
    """Step 1 of the seed: count, mean and std of violation and non-violation scores."""
    s, y = _prepare(scores, labels)
    assert y is not None
    out: dict[str, dict[str, float | int]] = {}
    for name, part in (("violations", s[y]), ("non_violations", s[~y])):
        out[name] = {"n": int(part.size)}
        if part.size:
            out[name].update(mean=float(part.mean()), std=float(part.std()))
    return out


# --- the seed's distribution-based strategies (reproduced exactly) --------------------------


def mean_std(
    scores: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    k: float = 0.5,
    weights: ArrayLike | None = None,
) -> ThresholdResult:
    """``mean + k·std`` of all observed scores (population std, numpy's default; seed k = 0.5).
    ``weights`` weigh only the evidence (``evaluate``), not the cut-off."""
    s, _ = _prepare(scores, labels)
    t = float(s.mean() + k * s.std())
    return evaluate(
        "mean_std",
        t,
        s,
        labels,
        weights,
        params={"k": k},
        reason=f"mean + {k}·std of {s.size} observed scores (seed strategy)",
    )


def percentile(
    scores: ArrayLike,
    labels: ArrayLike | None = None,
    *,
    q: float = 75.0,
    weights: ArrayLike | None = None,
) -> ThresholdResult:
    """The ``q``-th percentile of all observed scores (linear interpolation; seed q = 75).
    ``weights`` weigh only the evidence (``evaluate``), not the cut-off."""
    s, _ = _prepare(scores, labels)
    t = float(np.percentile(s, q))
    return evaluate(
        "percentile",
        t,
        s,
        labels,
        weights,
        params={"q": q},
        reason=f"{q:g}th percentile of {s.size} observed scores (seed strategy)",
    )


@dataclass(frozen=True)
class ConfidenceLevels:
    """The seed's three confidence levels: high ≥ p80, medium ≥ p40, low ≥ p20, else none."""

    high: float
    medium: float
    low: float

    def level(self, score: float) -> str:
        """``"high"``, ``"medium"``, ``"low"`` or ``"none"`` for one score."""
        for name, cut in (("high", self.high), ("medium", self.medium), ("low", self.low)):
            if score >= cut:
                return name
        return "none"


def confidence_levels(scores: ArrayLike) -> ConfidenceLevels:
    """p80 / p40 / p20 of the observed scores (SEED-DIGEST §3 step 3)."""
    s, _ = _prepare(scores, None)
    p80, p40, p20 = np.percentile(s, [80, 40, 20])
    return ConfidenceLevels(high=float(p80), medium=float(p40), low=float(p20))


# --- strategies from labels -------------------------------------------------------------------


def roc_optimal(
    scores: ArrayLike, labels: ArrayLike, *, weights: ArrayLike | None = None
) -> ThresholdResult:
    """The threshold maximising Youden's J = TPR − FPR over the ROC curve (Youden 1950).

    Candidates are the observed scores; ties in J go to the lowest threshold (recall first).
    ``weights``: per-label weights of the rates.
    """
    # sklearn is imported here, not at module level: it costs seconds at start-up and only
    # this strategy needs it
    from sklearn.metrics import roc_curve

    s, y = _prepare(scores, labels)
    _require_classes(y, "roc_optimal", negatives=True)
    w = None if weights is None else _weights(weights, s.size)
    fpr, tpr, thr = roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    j = (tpr - fpr)[1:]  # index 0 is sklearn's +inf "flag nothing" point
    best = int(np.flatnonzero(j == j.max())[-1]) + 1
    return evaluate(
        "roc_optimal",
        float(thr[best]),
        s,
        y,
        w,
        params={"youden_j": float(j.max())},
        reason=f"maximises Youden's J = {j.max():.3f} (TPR − FPR)",
    )


def _counts_by_threshold(
    s: NDArray[np.float64], y: NDArray[np.bool_], w: NDArray[np.float64] | None = None
) -> tuple[NDArray[np.float64], NDArray[Any], NDArray[Any]]:
    """Distinct thresholds (descending) with true and false positives at ``score >= t``
    (weighted counts with ``w``)."""
    order = np.argsort(-s, kind="stable")
    s_desc, y_desc = s[order], y[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(s_desc)), s_desc.size - 1]
    if w is None:
        tp = np.cumsum(y_desc)[last_of_value]
        return s_desc[last_of_value], tp, (last_of_value + 1) - tp
    w_desc = w[order]
    tp_w = np.cumsum(w_desc * y_desc)[last_of_value]
    fp_w = np.cumsum(w_desc * ~y_desc)[last_of_value]
    return s_desc[last_of_value], tp_w, fp_w


def precision_target(
    scores: ArrayLike, labels: ArrayLike, p: float = 0.9, *, weights: ArrayLike | None = None
) -> ThresholdResult:
    """The lowest threshold whose empirical precision is ≥ ``p`` (0 < p ≤ 1).

    Candidates are all observed scores; precision is not monotone in the threshold, so this is
    the lowest candidate that reaches ``p``, not the first one met from above. An empirical
    estimate without a guarantee; raises ``ThresholdUnavailable`` when no threshold reaches it.
    """
    if not 0 < p <= 1:
        raise ValueError(f"precision target must be in (0, 1], got {p}")
    s, y = _prepare(scores, labels)
    _require_classes(y, "precision_target", negatives=False)
    assert y is not None
    w = None if weights is None else _weights(weights, s.size)
    thr, tp, fp = _counts_by_threshold(s, y, w)
    with np.errstate(invalid="ignore", divide="ignore"):  # weight 0 flagged: no precision
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
    reaching = np.flatnonzero(precision >= p)
    if reaching.size == 0:
        raise ThresholdUnavailable(
            f"no threshold reaches precision {p:g} (the best is {precision.max():.3f})"
        )
    t = float(thr[reaching[-1]])  # thresholds descend: the last reaching one is the lowest
    return evaluate(
        "precision_target",
        t,
        s,
        y,
        w,
        params={"precision": p},
        reason=f"lowest threshold with precision ≥ {p:g}",
    )


def min_positives_for_recall(r: float, delta: float) -> int:
    """Fewest labelled violations that can certify recall ≥ r with probability ≥ 1−δ.

    Even flagging at the lowest violation score misses more than 1−r of new violations with
    probability r**m; the guarantee needs r**m ≤ δ, i.e. m ≥ log δ / log r.
    """
    _check_recall_args(r, delta)
    m = max(1, math.ceil(math.log(delta) / math.log(r)))
    while r**m > delta:  # floating-point guard on the ceil
        m += 1
    while m > 1 and r ** (m - 1) <= delta:
        m -= 1
    return m


def _check_recall_args(r: float, delta: float) -> None:
    if not 0 < r < 1:
        raise ValueError(f"recall target must be in (0, 1), got {r}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")


@functools.lru_cache(maxsize=256)
def _recall_rank(m: int, r: float, delta: float) -> int:
    """Largest k such that flagging at the k-th lowest of ``m`` violation scores (k − 1 missed)
    keeps the shared recall bound (``bounds.recall_lower`` at confidence 1 − δ) ≥ r; 0 when
    even k = 1 fails. Equals the largest k with P(Binomial(m, 1−r) ≤ k−1) ≤ δ."""
    missed = np.arange(m, dtype=np.float64)  # k − 1 = 0 … m − 1, the bound falls as x grows
    return int(np.count_nonzero(recall_lower(m - missed, missed, 1.0 - delta) >= r))


def recall_target(
    scores: ArrayLike,
    labels: ArrayLike,
    r: float = 0.95,
    delta: float = 0.05,
    *,
    weights: ArrayLike | None = None,
) -> ThresholdResult:
    """The highest threshold whose recall on new data is ≥ ``r`` with probability ≥ 1−``delta``.

    Method — exact binomial (Clopper–Pearson) bound on the miss rate via order statistics. With
    ``m`` labelled violations sorted ascending, flag at the k-th lowest violation score
    ``s_(k)``. For i.i.d. violations the miss rate ``F(s_(k)⁻)`` is stochastically at most
    ``U_(k) ~ Beta(k, m−k+1)`` (equal for continuous scores; smaller with ties), and
    ``P(U_(k) > 1−r) = P(Binomial(m, 1−r) ≤ k−1)``. We take the largest ``k`` with that
    probability ≤ δ. Equivalently ``s_(k)`` is the highest observed violation score whose
    one-sided Clopper–Pearson upper bound (level 1−δ) on the miss rate, given k−1 misses of m,
    is ≤ 1−r. The guarantee is over the draw of the calibration violations, conditional on
    their number, and needs no assumption on the score distribution or on the non-violations.

    Why not conformal risk control: it bounds the *expected* miss rate over calibration draws
    (marginal), so about half of the deployed thresholds could still fall short of ``r``; an
    operator setting one threshold needs the high-probability (PAC) statement above.

    Raises ``InsufficientData`` when fewer than ``min_positives_for_recall(r, δ)`` violations
    are labelled (no threshold can carry the guarantee).

    ``weights`` (e.g. decided appeals at ``MODERATION_APPEAL_EVIDENCE_WEIGHT``): the same
    bound on weighted counts — flagging at the k-th lowest violation, the missed count is the
    weight of the k − 1 below it and the caught count the rest (with every weight 1, exactly
    the rank above). Weighted labels that are not a random sample void the i.i.d. guarantee
    for their share; the weight bounds how much they move the threshold.
    """
    _check_recall_args(r, delta)
    s, y = _prepare(scores, labels)
    assert y is not None
    w = None if weights is None else _weights(weights, s.size)
    order = np.argsort(s[y], kind="stable")
    positives = s[y][order]
    m = positives.size
    if w is None:
        k = _recall_rank(m, float(r), float(delta))
        missed_k, total = float(k - 1), float(m)
    else:
        wp = w[y][order]
        missed = np.cumsum(wp) - wp  # weight below the k-th lowest violation, k = 1 … m
        total = float(wp.sum())
        k = int(np.count_nonzero(recall_lower(total - missed, missed, 1.0 - delta) >= r))
        missed_k = float(missed[k - 1]) if k else 0.0
    if k == 0:
        needed = min_positives_for_recall(r, delta)
        raise InsufficientData(
            f"recall ≥ {r:g} with probability ≥ {1 - delta:g} needs at least {needed} labelled "
            f"violations; the sample has {m}. Label {needed - m} more, or relax --recall/--delta",
            needed=needed,
            have=m,
        )
    # Clopper–Pearson upper bound with k−1 misses: the (1−δ) quantile of Beta(k, m−k+1)
    miss_upper = float(miss_share_upper(missed_k, total, 1.0 - delta))
    weighted = "" if w is None else f" (weighted: {total:g} violations' worth)"
    bound = (
        f"exact binomial (Clopper–Pearson) order statistic k={k} of m={m} violations"
        f"{weighted}: P(recall ≥ {r:g}) ≥ {1 - delta:g}; miss-rate upper bound {miss_upper:.4f}"
    )
    result = evaluate(
        "recall_target",
        float(positives[k - 1]),
        s,
        y,
        w,
        bound=bound,
        params={"recall": r, "delta": delta, "k": k, "miss_rate_upper": miss_upper},
        reason=f"highest threshold with recall ≥ {r:g} at confidence {1 - delta:g}",
    )
    return result


# --- dispatch -----------------------------------------------------------------------------------

STRATEGIES: dict[str, Callable[..., ThresholdResult]] = {
    "mean_std": lambda s, y, w=None, **_: mean_std(s, y, weights=w),
    "percentile": lambda s, y, w=None, **_: percentile(s, y, weights=w),
    "roc_optimal": lambda s, y, w=None, **_: roc_optimal(s, y, weights=w),
    "precision_target": lambda s, y, w=None, precision=0.9, **_: precision_target(
        s, y, precision, weights=w
    ),
    "recall_target": lambda s, y, w=None, recall=0.95, delta=0.05, **_: recall_target(
        s, y, recall, delta, weights=w
    ),
}


# The parameters each strategy reads (others ignore them).
STRATEGY_PARAMS: dict[str, tuple[str, ...]] = {
    "mean_std": (),
    "percentile": (),
    "roc_optimal": (),
    "precision_target": ("precision",),
    "recall_target": ("recall", "delta"),
}


def run_strategy(
    name: str,
    scores: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    **params: float,
) -> ThresholdResult:
    """Run a strategy by name; ``params``: ``precision``, ``recall``, ``delta`` where they apply;
    ``weights``: per-label weights (None: every label counts 1)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {sorted(STRATEGIES)}")
    return STRATEGIES[name](scores, labels, weights, **params)
