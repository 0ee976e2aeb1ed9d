"""Hook points of the pipeline: match before scoring, and routing decided jobs to review.

Other features plug in here, in ``build_hooks`` only; the pipeline body never changes for them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from sqlalchemy.orm import Session

from moderation.db.repositories.results import (
    AuditSampleRow,
    ReviewRow,
    insert_audit_samples,
    insert_review_items,
    recent_scores,
)
from moderation.domain import ReviewItemKind, RiskTier
from moderation.scoring.base import ScoreSet
from moderation.thresholds.audit import (
    ABOVE,
    AuditDesign,
    audit_decision,
    image_inclusion_probability,
)
from moderation.thresholds.tiers import CategoryThresholds, Decision

from .decode import Prepared

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from moderation.config import Settings

__all__ = [
    "AuditSamplingRouter",
    "DecidedJob",
    "PipelineHooks",
    "PreScore",
    "PreScoreHook",
    "ReviewRouter",
    "audit_design_for",
    "audit_uniform",
    "image_uniform",
    "build_hooks",
    "queue_review_now",
]

log = logging.getLogger(__name__)


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
    frame: int | None = None  # the animation frame that matched (None: a still image)


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
    # the model's scores only: a hash-match similarity is on no category's scale, so neither
    # queue scores nor audit draws may read it (a bank-decided job has none)
    scores: Mapping[str, float]
    # the thresholds the decision was made with (audit sampling draws against their base)
    thresholds: Mapping[str, CategoryThresholds] = field(default_factory=dict)
    # the category an action rule escalates to review (its ``escalate``), or None
    escalated: str | None = None

    @property
    def queued_category(self) -> str | None:
        """The category this job is queued for review under (None: not queued)."""
        if self.decision.action == "review_now":
            return self.decision.category
        return self.escalated


class ReviewRouter(Protocol):
    def __call__(self, session: Session, decided: Sequence[DecidedJob]) -> None:
        """Route decided jobs to review; runs in the same transaction as the decisions."""
        ...


def queue_review_now(session: Session, decided: Sequence[DecidedJob]) -> None:
    """Default routing: a tier whose action is ``review_now`` opens a ``queue`` review item,
    and so does an action rule that escalates a lower tier (under the escalated category)."""
    rows = []
    for d in decided:
        if d.decision.action == "review_now":
            category, tier = d.decision.category, d.decision.tier
        elif d.escalated is not None:
            category = d.escalated
            tier = d.decision.category_tiers.get(category, d.decision.tier)
        else:
            continue
        rows.append(
            ReviewRow(
                job_id=d.job_id,
                kind=ReviewItemKind.QUEUE,
                tier=tier,
                priority=d.decision.priority,
                category=category,
                score=d.scores.get(category) if category else None,
            )
        )
    insert_review_items(session, rows)


def audit_uniform(job_id: int, category: str) -> float:
    """A uniform draw in [0, 1) fixed by (job, category) alone: a redelivered job, another
    worker, a replay all draw the same audit decision for it (Python's ``hash`` is salted per
    process, hence blake2b; its top 53 bits make the double)."""
    digest = hashlib.blake2b(f"audit:{job_id}:{category}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2.0**53


def image_uniform(job_id: int) -> float:
    """The per-image design's one uniform draw per job (fixed by the job alone, like
    :func:`audit_uniform`, and independent of its per-category draws)."""
    return audit_uniform(job_id, "\x00image")


def audit_design_for(scale: str) -> AuditDesign:
    """The preset design of ``scale`` (its ``ScaleSpec.audit_bands``)."""
    return AuditDesign.for_scale(scale)


@dataclass
class AuditSamplingRouter:
    """Queue routing (``queue``) plus stratified audit sampling below the threshold.

    Each below-threshold (job, category) has the rate of its score band (``AuditDesign``, by
    distance to the threshold), the design rescaled over the category's ``sample_size`` most
    recent scores (recomputed every ``refresh_s``). Two designs (``design_kind``):

    - ``per_image`` (default): one draw per job with π = 1 − Π(1 − π_c) over its eligible
      categories, each category's design rescaled to ``fraction`` / (its number of
      categories) — so about ``fraction`` of the images are drawn. A drawn job gets an
      ``audit_samples`` row for *every* eligible category, all with the job's π: the one
      review labels each category, and each category's IPW estimate stays unbiased.
    - ``per_category`` (v1): every (job, category) draws on its own at π_c, the design
      rescaled to ``fraction`` of the category's below-threshold items.

    A drawn job without a queue item gets one review item of kind ``audit`` (for its
    highest-scoring drawn category, with that row's π). The queued category of a queued job is
    not drawn (it is reviewed anyway, π = 1); its other categories are — leaving them out would
    give them π = 0 and bias every recall estimate. All rows are insert-or-ignore on their
    unique keys and the draws depend only on the job (and category): redelivery writes
    nothing new.
    """

    fraction: float
    queue: ReviewRouter = queue_review_now
    design_kind: Literal["per_image", "per_category"] = "per_image"
    refresh_s: float = 600.0
    sample_size: int = 5000
    clock: Callable[[], float] = time.monotonic
    _designs: dict[tuple[str, str, float, float], tuple[float, AuditDesign]] = field(
        default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"audit fraction must be in [0, 1], got {self.fraction}")
        if self.design_kind not in ("per_image", "per_category"):
            raise ValueError(f"unknown audit design {self.design_kind!r}")

    def __call__(self, session: Session, decided: Sequence[DecidedJob]) -> None:
        self.queue(session, decided)
        if self.fraction <= 0.0:
            return
        samples: list[AuditSampleRow] = []
        items: dict[int, ReviewRow] = {}
        designs: dict[tuple[str, str, float, float], AuditDesign] = {}  # this batch's, by key
        for d in decided:
            queued = d.queued_category
            drawn = self._draw(session, d, queued, designs)
            samples += drawn
            if drawn and queued is None:
                top = max(drawn, key=lambda r: r.score)
                items[d.job_id] = ReviewRow(
                    job_id=d.job_id,
                    kind=ReviewItemKind.AUDIT,
                    tier=d.decision.category_tiers.get(top.category, RiskTier.CLEAR),
                    priority=d.decision.priority,
                    category=top.category,
                    score=top.score,
                    inclusion_probability=top.inclusion_probability,
                )
        insert_audit_samples(session, samples)
        insert_review_items(session, list(items.values()))

    def _draw(
        self,
        session: Session,
        d: DecidedJob,
        queued: str | None,
        designs: dict[tuple[str, str, float, float], AuditDesign] | None = None,
    ) -> list[AuditSampleRow]:
        """The audit rows of one job: its eligible categories' bands, then the draw
        (``designs``: the batch's designs so far, looked up once per batch and key)."""
        designs = {} if designs is None else designs
        share = self.fraction
        if self.design_kind == "per_image":
            share /= max(1, sum(c in d.thresholds for c in d.scores))
        eligible: list[tuple[str, float, str, float]] = []  # (category, score, stratum, π_c)
        for category, score in sorted(d.scores.items()):
            th = d.thresholds.get(category)
            if th is None or category == queued:
                continue
            if not math.isfinite(score):
                log.warning("job %s %s: non-finite score, not audited", d.job_id, category)
                continue
            key = (category, th.scale, th.base, share)
            design = designs.get(key)
            if design is None:
                design = designs[key] = self.design(session, category, th, share)
            draw = audit_decision(score, th.base, design, audit_uniform(d.job_id, category))
            if draw.stratum == ABOVE:
                continue
            if self.design_kind == "per_category" and not draw.sampled:
                continue
            eligible.append((category, score, draw.stratum, draw.inclusion_probability))
        if self.design_kind == "per_category" or not eligible:
            return [AuditSampleRow(d.job_id, c, band, v, p) for c, v, band, p in eligible]
        pi = float(image_inclusion_probability([p for *_, p in eligible]))
        if image_uniform(d.job_id) >= pi:
            return []
        return [AuditSampleRow(d.job_id, c, band, v, pi) for c, v, band, _ in eligible]

    def design(
        self,
        session: Session,
        category: str,
        th: CategoryThresholds,
        fraction: float | None = None,
    ) -> AuditDesign:
        """The scale's design rescaled to ``fraction`` (default: the router's) of the
        category's below-threshold items on recent scores (cached ``refresh_s``)."""
        fraction = self.fraction if fraction is None else fraction
        key = (category, th.scale, th.base, fraction)
        now = self.clock()
        with self._lock:
            cached = self._designs.get(key)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        base = audit_design_for(th.scale)
        recent = recent_scores(session, category, self.sample_size)
        design = base.for_budget(fraction, recent, th.base) if recent else base
        with self._lock:
            self._designs[key] = (now, design)
        return design


@dataclass(frozen=True)
class PipelineHooks:
    pre_score: PreScoreHook | None = None
    route_review: ReviewRouter = queue_review_now


def build_hooks(settings: Settings, sessions: sessionmaker[Session]) -> PipelineHooks:
    """The hooks a worker (or ``moderation scan``) runs with; the place features plug in.

    ``settings.audit_fraction`` > 0 adds audit sampling below the threshold to queue routing.
    Called once per process, so the bank matcher built here lives as long as the process and
    is refreshed incrementally, never rebuilt per job.
    """
    from .bank_hook import BankPreScore  # the bank hook imports this module's PreScore

    pre_score = None
    if settings.bank_violation_mode != "off" or settings.bank_benign_mode != "off":
        pre_score = BankPreScore.from_settings(settings, sessions)
    if settings.audit_fraction > 0:
        router = AuditSamplingRouter(settings.audit_fraction, design_kind=settings.audit_design)
        return PipelineHooks(pre_score=pre_score, route_review=router)
    return PipelineHooks(pre_score=pre_score)
