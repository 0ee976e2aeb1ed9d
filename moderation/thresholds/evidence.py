"""Reviewer feedback as evidence: routed items joined with their reviews, one label per item."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from moderation.domain import ReviewLabel
from moderation.thresholds.audit import ABOVE

__all__ = [
    "AUDIT",
    "QUEUE",
    "Evidence",
    "Feedback",
    "ItemRecord",
    "ReviewRecord",
    "collate",
    "label_is_violation",
]


QUEUE = "queue"  # drawn: routed by its tier, reviewed with certainty (a census of the queue)
AUDIT = "audit"  # drawn: by the audit lottery, at its recorded inclusion probability


@dataclass(frozen=True)
class ItemRecord:
    """An item routed to review for one category: the queue (π = 1) or an audit sample.

    ``drawn`` says *how* it was drawn — what the evidence counts as audits — never its π: an
    audit drawn with certainty (π = 1, e.g. the near band at a high audit fraction) is still an
    audit. Left None it follows the stratum (``above`` ⇒ queue, a band ⇒ audit). Any other
    kind (e.g. a labelled appeal) enters the estimates with its π but is neither counted as an
    audit nor nonresponse-adjusted."""

    item_id: Hashable  # e.g. (job_id, category) or review_items.id
    score: float
    inclusion_probability: float = 1.0
    stratum: str = ABOVE
    at: float = 0.0  # when it was routed, seconds since the epoch (the caller's clock)
    drawn: str | None = None  # QUEUE, AUDIT, or another kind that is not an audit

    @property
    def kind(self) -> str:
        if self.drawn is not None:
            return self.drawn
        return QUEUE if self.stratum == ABOVE else AUDIT


@dataclass(frozen=True)
class ReviewRecord:
    """One reviewer's verdict on one item, for the category the item was routed for."""

    item_id: Hashable
    is_violation: bool
    reviewer: str = ""
    at: float = 0.0


def label_is_violation(label: ReviewLabel | str) -> bool:
    """For the category under review: only ``violation`` counts; ``other_category`` is a
    violation of a *different* category, hence a false positive of this one."""
    return ReviewLabel(label) is ReviewLabel.VIOLATION


class Feedback(NamedTuple):
    """The seed's feedback item: (score, is_correct ≡ is a violation, timestamp)."""

    score: float
    is_violation: bool
    timestamp: float


@dataclass(frozen=True)
class Evidence:
    """Reviewed items with resolved labels, ordered by their last review; arrays are aligned."""

    item_ids: tuple[Hashable, ...]
    score: NDArray[np.float64]
    is_violation: NDArray[np.bool_]
    inclusion_probability: NDArray[np.float64]  # nonresponse-adjusted for audits
    routed_at: NDArray[np.float64]  # when each item was routed (defines the sampled population)
    reviewed_at: NDArray[np.float64]  # its last review
    quality: Mapping[str, int] = field(default_factory=dict)
    # drawn by the audit lottery (whatever its π); None: every item with π < 1 (old callers)
    audited: NDArray[np.bool_] | None = None

    def __post_init__(self) -> None:
        audited = (
            self.inclusion_probability < 1.0
            if self.audited is None
            else np.asarray(self.audited, dtype=bool)
        )
        if audited.shape != self.score.shape:
            raise ValueError("audited must be aligned with the scores")
        object.__setattr__(self, "audited", audited)

    @classmethod
    def from_arrays(
        cls,
        score: ArrayLike,
        is_violation: ArrayLike,
        inclusion_probability: ArrayLike,
        routed_at: ArrayLike | None = None,
        audited: ArrayLike | None = None,
    ) -> Evidence:
        """Evidence already resolved elsewhere (one label per item), e.g. in a simulation;
        ``audited`` marks the audit draws (default: the items with π < 1)."""
        s = np.asarray(score, dtype=np.float64)
        at = np.zeros(s.size) if routed_at is None else np.asarray(routed_at, dtype=np.float64)
        return cls(
            tuple(range(s.size)),
            s,
            np.asarray(is_violation, dtype=bool),
            np.asarray(inclusion_probability, dtype=np.float64),
            at,
            at,
            audited=None if audited is None else np.asarray(audited, dtype=bool),
        )

    def since(self, t: float) -> Evidence:
        """Only the items routed at or after ``t``."""
        keep = self.routed_at >= t
        return Evidence(
            tuple(i for i, k in zip(self.item_ids, keep, strict=True) if k),
            self.score[keep],
            self.is_violation[keep],
            self.inclusion_probability[keep],
            self.routed_at[keep],
            self.reviewed_at[keep],
            self.quality,
            self.sampled[keep],
        )

    @property
    def n(self) -> int:
        return len(self.item_ids)

    @property
    def positives(self) -> int:
        return int(self.is_violation.sum())

    @property
    def sampled(self) -> NDArray[np.bool_]:
        """The audit draws, by how they were drawn (not by π: an audit drawn with certainty
        is one) — what the evidence gates count."""
        assert self.audited is not None  # set in __post_init__
        return self.audited

    def feedback(self) -> list[Feedback]:
        """The seed's view: one (score, is_violation, timestamp) per item, oldest first."""
        return [
            Feedback(float(s), bool(y), float(t))
            for s, y, t in zip(self.score, self.is_violation, self.reviewed_at, strict=True)
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "positives": self.positives,
            "audited": int(self.sampled.sum()),
            "audited_positives": int((self.sampled & self.is_violation).sum()),
            "data_quality": dict(self.quality),
        }


def collate(
    items: Iterable[ItemRecord], reviews: Iterable[ReviewRecord], *, since: float | None = None
) -> Evidence:
    """Join routed items with their reviews into one resolved label per item, safely.

    - items with a non-finite score or π ∉ (0, 1] are dropped (``invalid_items``); a repeated
      item id keeps its first record (``duplicate_items``); items routed before ``since`` are
      outside the evidence horizon and ignored with their reviews;
    - reviews of items not in ``items`` are dropped (``unknown_reviews``);
    - one vote per (item, reviewer): a reviewer's later review replaces the earlier one
      (``superseded_reviews``); across reviewers the majority wins and a tie counts as a
      violation (recall first: a contested item is not waved through) — ``contested_items``;
    - unreviewed audit samples are nonresponse: within each (stratum, π) class the reviewed
      ones stand in for the rest (π × response rate), so pending audits do not make misses
      look rarer; unreviewed queue items are left out (``pending_queue``), which can only
      lower the recall estimate.
    """
    quality: Counter[str] = Counter()
    known, outside = _valid_items(items, since, quality)
    votes = _latest_votes(reviews, known, outside, quality)
    response = _response_rates(known, votes, quality)
    rows = []
    for item_id, by_reviewer in votes.items():
        item = known[item_id]
        yes = sum(r.is_violation for r in by_reviewer.values())
        if 0 < yes < len(by_reviewer):
            quality["contested_items"] += 1
        pi = item.inclusion_probability
        audit = item.kind == AUDIT
        if audit:
            pi *= response[_response_class(item)]
        last = max(r.at for r in by_reviewer.values())
        rows.append((last, item_id, item.score, 2 * yes >= len(by_reviewer), pi, item.at, audit))
    rows.sort(key=lambda row: row[0])
    return Evidence(
        item_ids=tuple(r[1] for r in rows),
        score=np.array([r[2] for r in rows], dtype=np.float64),
        is_violation=np.array([r[3] for r in rows], dtype=bool),
        inclusion_probability=np.array([r[4] for r in rows], dtype=np.float64),
        routed_at=np.array([r[5] for r in rows], dtype=np.float64),
        reviewed_at=np.array([r[0] for r in rows], dtype=np.float64),
        quality=dict(quality),
        audited=np.array([r[6] for r in rows], dtype=bool),
    )


def _finite(value: object) -> bool:
    """True for a real, finite number (bad rows may carry None, strings or booleans)."""
    try:
        return not isinstance(value, bool) and math.isfinite(value)  # type: ignore[arg-type]
    except TypeError:
        return False


def _valid_items(
    items: Iterable[ItemRecord], since: float | None, quality: Counter[str]
) -> tuple[dict[Hashable, ItemRecord], set[Hashable]]:
    known: dict[Hashable, ItemRecord] = {}
    outside: set[Hashable] = set()
    for item in items:
        pi = item.inclusion_probability
        if not (_finite(item.score) and _finite(pi) and _finite(item.at) and 0.0 < pi <= 1.0):
            quality["invalid_items"] += 1
        elif item.item_id in known or item.item_id in outside:
            quality["duplicate_items"] += 1
        elif since is not None and item.at < since:
            outside.add(item.item_id)
        else:
            known[item.item_id] = item
    return known, outside


def _response_class(item: ItemRecord) -> tuple[str, int]:
    """The nonresponse class of an audit: its stratum and π to within a factor 2^(1/4) (a fixed
    band rate gives one class; the per-image design's continuous π is grouped, not left in
    classes of one where a pending audit would have no reviewed stand-in)."""
    return item.stratum, round(math.log2(item.inclusion_probability) * 4)


def _response_rates(
    known: Mapping[Hashable, ItemRecord],
    votes: Mapping[Hashable, object],
    quality: Counter[str],
) -> dict[tuple[str, int], float]:
    """Share of routed audits with a review per (stratum, π) class; counts the pending items
    (queue and audit, by how they were drawn)."""
    routed: Counter[tuple[str, int]] = Counter()
    answered: Counter[tuple[str, int]] = Counter()
    for item_id, item in known.items():
        if item_id not in votes:
            quality["pending_audit" if item.kind == AUDIT else f"pending_{item.kind}"] += 1
        if item.kind != AUDIT:
            continue
        key = _response_class(item)
        routed[key] += 1
        answered[key] += item_id in votes
    return {key: answered[key] / routed[key] for key in routed}


def _latest_votes(
    reviews: Iterable[ReviewRecord],
    known: Mapping[Hashable, ItemRecord],
    outside: set[Hashable],
    quality: Counter[str],
) -> dict[Hashable, dict[str, ReviewRecord]]:
    votes: dict[Hashable, dict[str, ReviewRecord]] = {}
    for review in reviews:
        if review.item_id in outside:
            continue
        if review.item_id not in known or not _finite(review.at):
            quality["unknown_reviews" if review.item_id not in known else "invalid_reviews"] += 1
            continue
        by_reviewer = votes.setdefault(review.item_id, {})
        previous = by_reviewer.get(review.reviewer)
        if previous is not None:
            quality["superseded_reviews"] += 1
            if previous.at > review.at:
                continue
        by_reviewer[review.reviewer] = ReviewRecord(
            review.item_id, bool(review.is_violation), review.reviewer, review.at
        )
    return votes
