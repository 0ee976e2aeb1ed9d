"""Confidence levels of stored scores (SEED-DIGEST §3 step 3), for the API and the review page.

A score's level says where it sits among the category's observed scores: high ≥ p80, medium ≥
p40, low ≥ p20, else none (``thresholds.scenarios.confidence_level``). The reference is the
category's newest ``REFERENCE_SIZE`` model scores in the database, read when a job or review
item is shown — so a level follows the traffic; with fewer than
``MIN_CONFIDENCE_REFERENCE`` scores there is no level (None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy.orm import Session

from moderation.db.repositories.results import recent_scores
from moderation.thresholds.scenarios import confidence_level

__all__ = ["REFERENCE_SIZE", "confidence_of"]

REFERENCE_SIZE = 1000


def confidence_of(
    session: Session, scores: Mapping[str, float], *, skip: Iterable[str] = ()
) -> dict[str, str | None]:
    """The confidence level of each category's score (one query per category); categories in
    ``skip`` (e.g. hash-match similarities, not on the model's scale) are left out."""
    skipped = set(skip)
    return {
        category: confidence_level(score, recent_scores(session, category, REFERENCE_SIZE))
        for category, score in scores.items()
        if category not in skipped
    }
