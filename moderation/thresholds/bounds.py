"""The finite-sample recall bound: one implementation for offline calibration and the live adjuster.

Recall at a threshold is 1 − the share of violations scoring below it. With ``m`` violations
drawn i.i.d. from the violations the threshold will face, of which ``x`` fall below it, the
number below is Binomial(m, 1 − R); the one-sided Clopper–Pearson upper bound on the miss share,

    q⁺(x, m) = Beta⁻¹(confidence; x + 1, m − x)      (1 when x ≥ m),

holds with probability ≥ ``confidence`` over the draw (exact, no assumption on the score
distribution), so recall ≥ 1 − q⁺. Offline calibration (``strategies.recall_target``) applies it
to integer counts of labelled violations; the live adjuster (``audit.recall_curve``) to the
effective counts of a stratified audit sample (caught and missed totals divided by the weight
of one effective observation), which are the same integers when every violation is a census.

Pure numpy/scipy; counts may be fractional (effective counts) and arrays (broadcast).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaincinv

__all__ = ["miss_share_lower", "miss_share_upper", "recall_lower", "recall_upper"]


def _check(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def miss_share_upper(missed: ArrayLike, positives: ArrayLike, confidence: float) -> NDArray:
    """One-sided Clopper–Pearson upper bound on the miss share from ``missed`` of ``positives``
    violations (1 with no violation or all missed)."""
    _check(confidence)
    x = np.asarray(missed, dtype=np.float64)
    m = np.asarray(positives, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(x < m, betaincinv(x + 1.0, m - x, confidence), 1.0)
    return np.nan_to_num(q, nan=1.0)


def miss_share_lower(missed: ArrayLike, positives: ArrayLike, confidence: float) -> NDArray:
    """One-sided Clopper–Pearson lower bound on the miss share (0 when nothing was missed)."""
    _check(confidence)
    x = np.asarray(missed, dtype=np.float64)
    m = np.asarray(positives, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(x > 0, betaincinv(x, m - x + 1.0, 1.0 - confidence), 0.0)
    return np.nan_to_num(q, nan=0.0)


def recall_lower(caught: ArrayLike, missed: ArrayLike, confidence: float) -> NDArray:
    """Recall lower bound 1 − q⁺(missed, caught + missed): recall on new data is at least this
    with probability ≥ ``confidence`` (exact for i.i.d. violations, integer counts)."""
    c = np.asarray(caught, dtype=np.float64)
    x = np.asarray(missed, dtype=np.float64)
    return 1.0 - miss_share_upper(x, c + x, confidence)


def recall_upper(caught: ArrayLike, missed: ArrayLike, confidence: float) -> NDArray:
    """Recall upper bound 1 − q⁻(missed, caught + missed), one-sided at ``confidence``."""
    c = np.asarray(caught, dtype=np.float64)
    x = np.asarray(missed, dtype=np.float64)
    return 1.0 - miss_share_lower(x, c + x, confidence)
