"""Hook points of the pipeline: match before scoring, and routing decided jobs to review.

Other features plug in here, in ``build_hooks`` only; the pipeline body never changes for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session

from moderation.db.repositories.results import ReviewRow, insert_review_items
from moderation.domain import ReviewItemKind, RiskTier
from moderation.policy import Decision
from moderation.scoring import ScoreSet

from .decode import Prepared

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from moderation.config import Settings

__all__ = [
    "DecidedJob",
    "PipelineHooks",
    "PreScore",
    "PreScoreHook",
    "ReviewRouter",
    "build_hooks",
    "queue_review_now",
]


@dataclass(frozen=True)
class PreScore:
    """What a matcher found about one image before the model runs (e.g. a hash-bank hit).

    ``scores`` are recorded next to (and win over) model scores of the same category; scores
    whose source is ``hash_match`` are stored but not tiered by the category's thresholds (a
    hash similarity is not on the model's scale) — ``tier_floor`` speaks for them.
    ``skip_model`` spares the forward; ``tier_floor`` raises the decision to at least that tier
    (attributed to ``category``); the bank entry and distance land on the decision.
    """

    scores: ScoreSet = field(default_factory=dict)
    skip_model: bool = False
    tier_floor: RiskTier | None = None
    category: str | None = None
    bank_entry_id: int | None = None
    distance: int | None = None


class PreScoreHook(Protocol):
    def __call__(self, prepared: Sequence[Prepared]) -> Sequence[PreScore | None]:
        """One result (or None: nothing known) per decoded image (with its PDQ hash, if any),
        in input order."""
        ...


@dataclass(frozen=True)
class DecidedJob:
    """A job whose decision is being written (inside the writing transaction)."""

    job_id: int
    decision: Decision
    scores: Mapping[str, float]


class ReviewRouter(Protocol):
    def __call__(self, session: Session, decided: Sequence[DecidedJob]) -> None:
        """Route decided jobs to review; runs in the same transaction as the decisions."""
        ...


def queue_review_now(session: Session, decided: Sequence[DecidedJob]) -> None:
    """Default routing: a tier whose action is ``review_now`` opens a ``queue`` review item."""
    insert_review_items(
        session,
        [
            ReviewRow(
                job_id=d.job_id,
                kind=ReviewItemKind.QUEUE,
                tier=d.decision.tier,
                priority=d.decision.priority,
                category=d.decision.category,
                score=d.scores.get(d.decision.category) if d.decision.category else None,
            )
            for d in decided
            if d.decision.action == "review_now"
        ],
    )


@dataclass(frozen=True)
class PipelineHooks:
    pre_score: PreScoreHook | None = None
    route_review: ReviewRouter = queue_review_now


def build_hooks(settings: Settings, sessions: sessionmaker[Session]) -> PipelineHooks:
    """The hooks a worker (or ``moderation scan``) runs with; the place features plug in.

    Called once per process, so the bank matcher built here lives as long as the process and
    is refreshed incrementally, never rebuilt per job."""
    from .bank_hook import BankPreScore  # the bank hook imports this module's PreScore

    pre_score = None
    if settings.bank_violation_mode != "off" or settings.bank_benign_mode != "off":
        pre_score = BankPreScore.from_settings(settings, sessions)
    return PipelineHooks(pre_score=pre_score)
