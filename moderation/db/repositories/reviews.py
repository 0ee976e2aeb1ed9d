"""The human review queue's storage: claim items under a lease, store votes, load evidence.

What a review *does* (validation, closing the item, banking, the audit log) is the use case
``moderation.services.reviews.record_review``; this module reads and writes rows.

Claims are leases, not locks: ``claim_items`` hands out open items (and items whose lease ran
out) with ``claimed_by``/``claim_expires_at`` set, so a reviewer who walks away loses nothing
for longer than the lease. On PostgreSQL the candidate rows are taken with ``FOR UPDATE SKIP
LOCKED``: concurrent reviewers each get different items without waiting on each other. The
update itself re-checks that the row is still claimable, which is what keeps SQLite (no row
locks) correct too.

One review item per job (``review_items.job_id`` is unique). The item asks for labels on its
*review categories*: the category it was queued for plus every category of the job drawn for
audit (``audit_samples``). It is done once each of them has a review.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from moderation.db.models import AuditSample, Job, Review, ReviewItem, Score
from moderation.domain import ReviewItemKind, ReviewItemStatus, ReviewLabel, RiskTier
from moderation.thresholds.evidence import (
    AUDIT,
    QUEUE,
    Evidence,
    ItemRecord,
    ReviewRecord,
    collate,
    label_is_violation,
)

__all__ = [
    "MAX_CLAIM",
    "ClaimedItem",
    "ItemState",
    "PreviousVote",
    "ReviewView",
    "UnknownReviewItem",
    "category_evidence",
    "category_evidence_and_reviews",
    "claim_items",
    "claims_of",
    "evidence_records",
    "list_reviews",
    "lock_item",
    "mark_done",
    "review_job_id",
    "reviewed_categories",
    "reviewed_of",
    "routed_categories",
    "upsert_review",
]

MAX_CLAIM = 100  # items one call may claim; more is a misuse (a reviewer reads them one by one)


class UnknownReviewItem(LookupError):
    """No review item with that id."""


@dataclass(frozen=True)
class ClaimedItem:
    """One item handed to a reviewer, with what the review page shows."""

    item_id: int
    job_id: int
    kind: ReviewItemKind
    category: str | None
    score: float | None
    tier: RiskTier
    priority: float
    claim_expires_at: dt.datetime
    image_id: int
    external_id: str | None
    inclusion_probability: float
    # every scored category of the job: category → (score, winning phrasing, tier)
    scores: Mapping[str, tuple[float, str | None, RiskTier]] = field(default_factory=dict)
    # the categories a label is asked for (queued category first, then audited ones)
    review_categories: tuple[str, ...] = ()
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class ReviewView:
    id: int
    job_id: int
    item_id: int | None
    reviewer: str
    category: str
    label: ReviewLabel
    other_category: str | None
    note: str | None
    created_at: dt.datetime


# --- claiming -----------------------------------------------------------------------------


def _claimable(reviewer: str, now: dt.datetime) -> Any:
    """Open items, items whose lease expired, and the caller's own live claims (a reload of
    the review page gets them back, with a fresh lease, instead of waiting for expiry)."""
    # the leading IN keeps done items (nearly all rows, eventually) out of the index range
    return and_(
        ReviewItem.status.in_([ReviewItemStatus.OPEN, ReviewItemStatus.CLAIMED]),
        _claimable_or(reviewer, now),
    )


def _claimable_or(reviewer: str, now: dt.datetime) -> Any:
    return or_(
        ReviewItem.status == ReviewItemStatus.OPEN,
        and_(
            ReviewItem.status == ReviewItemStatus.CLAIMED,
            or_(
                ReviewItem.claim_expires_at.is_(None),
                ReviewItem.claim_expires_at <= now,
                ReviewItem.claimed_by == reviewer,
            ),
        ),
    )


def claim_items(
    session: Session,
    *,
    reviewer: str,
    n: int,
    lease_s: float,
    now: dt.datetime,
    audit_max_wait_s: float | None = None,
) -> list[ClaimedItem]:
    """Claim up to ``n`` items for ``reviewer`` until ``now + lease_s``, highest priority first
    (``priority`` is the pipeline's severity-weighted risk, ``policy.review_priority``), then
    oldest. Runs in the caller's transaction; the claim is visible to others once committed.

    Audit items carry their job's low priority, so under load they would wait behind every
    queue item — and recall estimates would go stale exactly when they matter. With
    ``audit_max_wait_s``, audit items older than that go first (oldest first).
    """
    if not reviewer:
        raise ValueError("reviewer must be named")
    if not 1 <= n <= MAX_CLAIM:
        raise ValueError(f"n must be in 1..{MAX_CLAIM}, got {n}")
    if not lease_s > 0:
        raise ValueError(f"lease_s must be positive, got {lease_s}")
    ids: list[int] = []
    if audit_max_wait_s is not None:
        overdue = _candidates(session, reviewer, now, n).where(
            ReviewItem.kind == ReviewItemKind.AUDIT,
            ReviewItem.created_at <= now - dt.timedelta(seconds=audit_max_wait_s),
        )
        ids = list(session.scalars(overdue.order_by(ReviewItem.created_at, ReviewItem.id)))
    if len(ids) < n:
        rest = _candidates(session, reviewer, now, n - len(ids))
        if ids:  # our own row locks do not skip them: leave them out explicitly
            rest = rest.where(ReviewItem.id.not_in(ids))
        rest = rest.order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
        ids += session.scalars(rest)
    if not ids:
        return []
    expires = now + dt.timedelta(seconds=lease_s)
    # Re-checked in the UPDATE: on SQLite another connection may have claimed since the SELECT.
    claimed = set(
        session.scalars(
            update(ReviewItem)
            .where(ReviewItem.id.in_(ids), _claimable(reviewer, now))
            .values(status=ReviewItemStatus.CLAIMED, claimed_by=reviewer, claim_expires_at=expires)
            .returning(ReviewItem.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        return []
    items = _load_items(session, [i for i in ids if i in claimed])
    return [items[i] for i in ids if i in claimed]


def claims_of(session: Session, reviewer: str, now: dt.datetime) -> list[ClaimedItem]:
    """``reviewer``'s live claims (lease not expired), highest priority first; reads only."""
    ids = list(
        session.scalars(
            select(ReviewItem.id)
            .where(
                ReviewItem.status == ReviewItemStatus.CLAIMED,
                ReviewItem.claimed_by == reviewer,
                ReviewItem.claim_expires_at > now,
            )
            .order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
            .limit(MAX_CLAIM)
        )
    )
    items = _load_items(session, ids) if ids else {}
    return [items[i] for i in ids]


def _candidates(session: Session, reviewer: str, now: dt.datetime, n: int) -> Any:
    """Claimable item ids, at most ``n``; locked on PostgreSQL, skipping others' locks."""
    query = select(ReviewItem.id).where(_claimable(reviewer, now)).limit(n)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


def _load_items(session: Session, ids: Sequence[int]) -> dict[int, ClaimedItem]:
    rows = session.execute(
        select(ReviewItem, Job.image_id, Job.external_id)
        .join(Job, Job.id == ReviewItem.job_id)
        .where(ReviewItem.id.in_(list(ids)))
    ).all()
    job_ids = [item.job_id for item, _, _ in rows]
    scores: dict[int, dict[str, tuple[float, str | None, RiskTier]]] = {}
    for s in session.scalars(select(Score).where(Score.job_id.in_(job_ids))):
        scores.setdefault(s.job_id, {})[s.category] = (s.score, s.phrasing, RiskTier(s.tier))
    audited = _audited_categories(session, job_ids)
    out = {}
    for item, image_id, external_id in rows:
        assert item.claim_expires_at is not None
        out[item.id] = ClaimedItem(
            item_id=item.id,
            job_id=item.job_id,
            kind=ReviewItemKind(item.kind),
            category=item.category,
            score=item.score,
            tier=RiskTier(item.tier),
            priority=item.priority,
            claim_expires_at=item.claim_expires_at,
            image_id=image_id,
            external_id=external_id,
            inclusion_probability=item.inclusion_probability,
            scores=dict(sorted(scores.get(item.job_id, {}).items())),
            review_categories=_review_categories(item, audited.get(item.job_id, ())),
            created_at=item.created_at,
        )
    return out


def _audited_categories(session: Session, job_ids: Iterable[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    rows = session.execute(
        select(AuditSample.job_id, AuditSample.category)
        .where(AuditSample.job_id.in_(list(job_ids)))
        .order_by(AuditSample.job_id, AuditSample.id)
    )
    for job_id, category in rows:
        out.setdefault(job_id, []).append(category)
    return out


def _review_categories(item: ReviewItem, audited: Iterable[str]) -> tuple[str, ...]:
    first = [item.category] if item.category else []
    return tuple(dict.fromkeys([*first, *audited]))


def review_job_id(session: Session, item_id: int) -> int | None:
    """The job of review item ``item_id``, or None when there is no such item."""
    job_id: int | None = session.scalar(select(ReviewItem.job_id).where(ReviewItem.id == item_id))
    return job_id


def routed_categories(session: Session, item_id: int) -> tuple[str, ...]:
    """The categories review item ``item_id`` asks labels for. Raises ``UnknownReviewItem``."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise UnknownReviewItem(f"no review item {item_id}")
    return _review_categories(
        item, _audited_categories(session, [item.job_id]).get(item.job_id, ())
    )


# --- recording reviews (the use case is moderation.services.reviews.record_review) --------


@dataclass(frozen=True)
class ItemState:
    """A review item as a review sees it (``lock_item``)."""

    id: int
    job_id: int
    category: str | None
    status: ReviewItemStatus
    claimed_by: str | None
    claim_expires_at: dt.datetime | None
    review_categories: tuple[str, ...]  # queued category first, then audited ones


@dataclass(frozen=True)
class PreviousVote:
    label: str
    other_category: str | None


def lock_item(session: Session, item_id: int) -> ItemState:
    """Review item ``item_id``, locked until the transaction ends on PostgreSQL (reviews of
    one item are serialised, so "done" is exact). Raises ``UnknownReviewItem``."""
    query = select(ReviewItem).where(ReviewItem.id == item_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    item = session.scalars(query).one_or_none()
    if item is None:
        raise UnknownReviewItem(f"no review item {item_id}")
    audited = _audited_categories(session, [item.job_id]).get(item.job_id, ())
    return ItemState(
        id=item.id,
        job_id=item.job_id,
        category=item.category,
        status=ReviewItemStatus(item.status),
        claimed_by=item.claimed_by,
        claim_expires_at=item.claim_expires_at,
        review_categories=_review_categories(item, audited),
    )


def upsert_review(
    session: Session,
    *,
    item: ItemState,
    reviewer: str,
    category: str,
    label: ReviewLabel,
    other_category: str | None,
    note: str | None,
    now: dt.datetime,
) -> tuple[int, PreviousVote | None]:
    """Insert ``reviewer``'s vote on (job, ``category``), or overwrite their earlier one (the
    row keeps its id). Returns the review id and the vote it replaced, if any."""
    existing = session.scalars(
        select(Review).where(
            Review.job_id == item.job_id,
            Review.category == category,
            Review.reviewer == reviewer,
        )
    ).one_or_none()
    if existing is None:
        review = Review(
            job_id=item.job_id,
            review_item_id=item.id,
            reviewer=reviewer,
            category=category,
            label=label,
            other_category=other_category,
            note=note,
            created_at=now,
        )
        session.add(review)
        previous = None
    else:
        review = existing
        previous = PreviousVote(str(existing.label), existing.other_category)
        review.label, review.other_category, review.note = label, other_category, note
        review.review_item_id, review.created_at = item.id, now
    session.flush()
    return review.id, previous


def reviewed_of(session: Session, job_id: int, categories: Iterable[str]) -> set[str]:
    """Which of ``categories`` have any review of job ``job_id``."""
    return set(
        session.scalars(
            select(Review.category).where(
                Review.job_id == job_id, Review.category.in_(list(categories))
            )
        )
    )


def mark_done(session: Session, item_id: int, reviewer: str, now: dt.datetime) -> None:
    """Close item ``item_id``: done (first done time kept), its claim ended."""
    item = session.get(ReviewItem, item_id)
    assert item is not None  # locked by lock_item in this transaction
    item.status = ReviewItemStatus.DONE
    item.done_at = item.done_at or now
    item.claim_expires_at = None
    item.claimed_by = item.claimed_by or reviewer
    session.flush()


def list_reviews(session: Session, *, job_id: int) -> list[ReviewView]:
    """Every review of one job, oldest first."""
    rows = session.scalars(
        select(Review).where(Review.job_id == job_id).order_by(Review.created_at, Review.id)
    )
    return [
        ReviewView(
            id=r.id,
            job_id=r.job_id,
            item_id=r.review_item_id,
            reviewer=r.reviewer,
            category=r.category,
            label=ReviewLabel(r.label),
            other_category=r.other_category,
            note=r.note,
            created_at=r.created_at,
        )
        for r in rows
    ]


# --- evidence for the adjusters -----------------------------------------------------------


def _epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def evidence_records(
    session: Session, category: str, *, since: dt.datetime | None = None
) -> tuple[list[ItemRecord], list[ReviewRecord]]:
    """Items routed to review for ``category`` (queue items, π = 1, and audit samples with
    their π and stratum) since ``since``, and the reviews of those (job, category) pairs.

    Item ids are ``(job_id, category)``: a job is one item per category whichever way it was
    routed. Queue items come first, so a job both queued and (wrongly) audited for the same
    category counts once, as a census item.
    """
    queue = select(ReviewItem.job_id, ReviewItem.score, ReviewItem.created_at).where(
        ReviewItem.kind == ReviewItemKind.QUEUE,
        ReviewItem.category == category,
        ReviewItem.score.is_not(None),
    )
    audits = select(
        AuditSample.job_id,
        AuditSample.score,
        AuditSample.inclusion_probability,
        AuditSample.stratum,
        AuditSample.sampled_at,
    ).where(AuditSample.category == category)
    if since is not None:
        queue = queue.where(ReviewItem.created_at >= since)
        audits = audits.where(AuditSample.sampled_at >= since)
    items = [
        ItemRecord((job_id, category), score, 1.0, at=_epoch(at), drawn=QUEUE)
        for job_id, score, at in session.execute(queue.order_by(ReviewItem.id))
    ]
    items += [
        ItemRecord((job_id, category), score, pi, stratum, _epoch(at), drawn=AUDIT)
        for job_id, score, pi, stratum, at in session.execute(audits.order_by(AuditSample.id))
    ]
    routed = {i.item_id[0] for i in items}  # type: ignore[index]
    reviews = select(Review.job_id, Review.label, Review.reviewer, Review.created_at).where(
        Review.category == category
    )
    if since is not None:
        reviews = reviews.where(Review.created_at >= since)
    records = [
        ReviewRecord((job_id, category), label_is_violation(label), reviewer, _epoch(at))
        for job_id, label, reviewer, at in session.execute(reviews.order_by(Review.id))
        if job_id in routed
    ]
    return items, records


def category_evidence(
    session: Session, category: str, *, since: dt.datetime | None = None
) -> Evidence:
    """``feedback.collate`` of :func:`evidence_records`: one resolved label per item."""
    return category_evidence_and_reviews(session, category, since=since)[0]


def category_evidence_and_reviews(
    session: Session, category: str, *, since: dt.datetime | None = None
) -> tuple[Evidence, list[ReviewRecord]]:
    """:func:`category_evidence` and the reviews it resolved (every vote, for the reviewer-noise
    estimate from double reviews)."""
    items, records = evidence_records(session, category, since=since)
    return collate(items, records, since=_epoch(since) if since is not None else None), records


def reviewed_categories(session: Session, *, since: dt.datetime | None = None) -> list[str]:
    """Categories with any routed item (queue or audit) since ``since``."""
    queue = select(ReviewItem.category).where(ReviewItem.category.is_not(None)).distinct()
    audits = select(AuditSample.category).distinct()
    if since is not None:
        queue = queue.where(ReviewItem.created_at >= since)
        audits = audits.where(AuditSample.sampled_at >= since)
    return sorted({c for c in session.scalars(queue) if c} | set(session.scalars(audits)))
