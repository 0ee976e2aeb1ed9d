"""Reviewing: claim items, record verdicts (validate, store, close, bank, audit-log), read.

The API (``/v1/review-queue``, ``/v1/reviews``) and the dashboard's review page call these;
the storage is ``moderation.db.repositories.reviews``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from moderation.db.repositories import reviews as repo
from moderation.db.repositories.audit_log import record_action
from moderation.db.repositories.images import Payload, load_payloads
from moderation.db.repositories.reviews import (
    MAX_CLAIM,
    ClaimedItem,
    ItemState,
    ReviewView,
    UnknownReviewItem,
    claims_of,
    list_reviews,
    routed_categories,
)
from moderation.domain import ReviewItemStatus, ReviewLabel

if TYPE_CHECKING:
    from moderation.config import Settings

__all__ = [
    "MAX_CLAIM",
    "BankingOptions",
    "ClaimConflict",
    "ClaimedItem",
    "InvalidReview",
    "ReviewResult",
    "ReviewView",
    "UnknownReviewItem",
    "check_label",
    "claim_items",
    "claims_of",
    "item_payload",
    "list_reviews",
    "record_review",
    "routed_categories",
]


class ClaimConflict(RuntimeError):
    """The item is claimed by another reviewer whose lease has not expired."""


class InvalidReview(ValueError):
    """The review contradicts itself or the item (label/other_category, category)."""


@dataclass(frozen=True)
class ReviewResult:
    """What ``record_review`` did."""

    review_id: int
    item_id: int
    job_id: int
    category: str
    label: ReviewLabel
    replaced: bool  # the same reviewer had labelled this (job, category): their vote replaced
    item_done: bool
    remaining_categories: tuple[str, ...]  # review categories still without any review
    banked: str | None  # banks.BankAddResult.outcome when a violation was confirmed, else None
    bank_entry_id: int | None = None


@functools.lru_cache(maxsize=8)
def catalog_categories(path: Path | None = None) -> frozenset[str]:
    """The category names of the catalog at ``path`` (None: the packaged one), cached."""
    from moderation.scoring.catalog import load_catalog  # yaml + pydantic parse: late, once

    return frozenset(load_catalog(path).category_names)


def _packaged_categories() -> frozenset[str]:
    return catalog_categories(None)


@dataclass(frozen=True)
class BankingOptions:
    """How a confirmed violation is banked (``settings.bank_min_quality``, ``bank_crop_grid``,
    ``bank_crop_keep``) and under which categories it may be (``categories``: the catalog's,
    ``settings.catalog_file`` or the packaged one); the defaults are the settings' defaults."""

    min_quality: int = 50
    crop_grid: int = 0
    crop_keep: float = 0.96
    categories: frozenset[str] = field(default_factory=_packaged_categories)

    @classmethod
    def from_settings(cls, settings: Settings) -> BankingOptions:
        return cls(
            settings.bank_min_quality,
            settings.bank_crop_grid,
            settings.bank_crop_keep,
            catalog_categories(settings.catalog_file),
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
    """``repositories.reviews.claim_items`` (lease, priority and audit-wait order), with the
    claim in the audit log."""
    items = repo.claim_items(
        session,
        reviewer=reviewer,
        n=n,
        lease_s=lease_s,
        now=now,
        audit_max_wait_s=audit_max_wait_s,
    )
    if items:
        expires = now + dt.timedelta(seconds=lease_s)
        record_action(
            session,
            actor=reviewer,
            action="review.claim",
            target_type="review_items",
            target_id=None,
            details={
                "item_ids": sorted(i.item_id for i in items),
                "lease_s": lease_s,
                "expires": expires.isoformat(),
            },
        )
    return items


def check_label(
    label: ReviewLabel | str,
    category: str,
    other_category: str | None,
    categories: frozenset[str] | None = None,
) -> tuple[ReviewLabel, str | None]:
    """The label as a ``ReviewLabel`` and the cleaned ``other_category``. Raises
    ``InvalidReview`` when they contradict each other or ``category``, or when
    ``other_category`` is not one of ``categories`` (the catalog's; None: not checked)."""
    try:
        label = ReviewLabel(label)
    except ValueError:
        raise InvalidReview(
            f"label must be one of {[v.value for v in ReviewLabel]}, got {label!r}"
        ) from None
    other = other_category.strip() if other_category is not None else None
    if label is ReviewLabel.OTHER_CATEGORY:
        if not other:
            raise InvalidReview("label other_category needs other_category (the right category)")
        if other == category:
            raise InvalidReview(f"other_category must differ from the reviewed {category!r}")
        if categories is not None and other not in categories:
            raise InvalidReview(
                f"other_category {other[:64]!r} is not a category of the catalog "
                f"({', '.join(sorted(categories))})"
            )
    elif other is not None:
        raise InvalidReview(f"other_category is only allowed with label other_category ({label})")
    return label, other or None


def _check_claim(item: ItemState, reviewer: str, now: dt.datetime) -> None:
    if (
        item.status == ReviewItemStatus.CLAIMED
        and item.claimed_by not in (None, reviewer)
        and item.claim_expires_at is not None
        and item.claim_expires_at > now
    ):
        raise ClaimConflict(
            f"review item {item.id} is claimed by {item.claimed_by} until "
            f"{item.claim_expires_at.isoformat()}"
        )


def record_review(
    session: Session,
    *,
    item_id: int,
    reviewer: str,
    label: ReviewLabel | str,
    category: str | None = None,
    other_category: str | None = None,
    note: str | None = None,
    now: dt.datetime,
    banking: BankingOptions | None = None,
) -> ReviewResult:
    """Record ``reviewer``'s verdict on one category of review item ``item_id``.

    - ``category`` defaults to the item's own; it must be one of the item's review categories
      (or, for an item without any, a catalog category: ``banking.categories``);
      ``InvalidReview`` otherwise, or when label and ``other_category`` contradict, or when
      ``other_category`` is not a catalog category (a reviewer cannot bank an image under a
      made-up category that later uploads of every tenant would be decided with).
    - An item claimed by someone else whose lease is live → ``ClaimConflict``. Open, expired
      and done items may be reviewed: a second reviewer's review of a done item is *kept*
      (agreement between reviewers is measured from it).
    - The same reviewer reviewing the same (job, category) again *replaces* their vote: the
      row keeps its id and gets the new label, note and time (one vote per reviewer, as
      ``feedback.collate`` counts them); the old vote stays in the audit log.
    - The item is done once each review category has a review; the reviewer's claim ends.
    - ``violation`` banks the image as a confirmed violation of ``category``, and
      ``other_category`` as one of ``other_category`` (``banks.add_confirmed_violation``, same
      transaction, with ``banking``'s quality floor and crop windows); an image with no hash is
      recorded as ``banked="no_hash"``, not an error.
    Every review appends an ``audit_log`` entry. Raises ``UnknownReviewItem``.
    """
    if not reviewer:
        raise InvalidReview("reviewer must be named")
    options = banking or BankingOptions()
    item = repo.lock_item(session, item_id)
    wanted = item.review_categories
    category = (category or "").strip() or (wanted[0] if wanted else "")
    if not category:
        raise InvalidReview(f"review item {item_id} has no category: pass one")
    if wanted and category not in wanted:
        raise InvalidReview(f"review item {item_id} asks for {list(wanted)}, not {category!r}")
    if not wanted and category not in options.categories:
        raise InvalidReview(f"category {category[:64]!r} is not a category of the catalog")
    label, other = check_label(label, category, other_category, options.categories)
    _check_claim(item, reviewer, now)
    review_id, previous = repo.upsert_review(
        session,
        item=item,
        reviewer=reviewer,
        category=category,
        label=label,
        other_category=other,
        note=note,
        now=now,
    )
    reviewed = repo.reviewed_of(session, item.job_id, wanted or (category,))
    remaining = tuple(c for c in wanted if c not in reviewed)
    done = not remaining
    if done:
        repo.mark_done(session, item.id, reviewer, now)
    banked, entry_id = _bank(session, item.job_id, label, category, other, reviewer, options)
    record_action(
        session,
        actor=reviewer,
        action="review.record",
        target_type="review_item",
        target_id=item.id,
        details={
            "review_id": review_id,
            "job_id": item.job_id,
            "category": category,
            "label": label.value,
            "other_category": other,
            "replaced": dataclasses.asdict(previous) if previous is not None else None,
            "item_done": done,
            "banked": banked,
            "bank_entry_id": entry_id,
        },
    )
    return ReviewResult(
        review_id=review_id,
        item_id=item.id,
        job_id=item.job_id,
        category=category,
        label=label,
        replaced=previous is not None,
        item_done=done,
        remaining_categories=remaining,
        banked=banked,
        bank_entry_id=entry_id,
    )


def _bank(
    session: Session,
    job_id: int,
    label: ReviewLabel,
    category: str,
    other: str | None,
    reviewer: str,
    options: BankingOptions,
) -> tuple[str | None, int | None]:
    """Bank a confirmed violation's image; (outcome, entry id) or (None, None)."""
    confirmed = category if label is ReviewLabel.VIOLATION else other
    if label is ReviewLabel.NOT_VIOLATION or confirmed is None:
        return None, None
    from moderation.hashbank.banks import add_confirmed_violation  # heavy (PDQ, images): late

    result = add_confirmed_violation(
        session,
        job_id=job_id,
        category=confirmed,
        reviewer=reviewer,
        min_quality=options.min_quality,
        crop_grid=options.crop_grid,
        crop_keep=options.crop_keep,
    )
    return result.outcome, result.entry.id if result.entry is not None else None


def item_payload(session: Session, item_id: int) -> Payload | None:
    """The stored image (bytes or location) of review item ``item_id``'s job; None when there
    is no such item."""
    job_id = repo.review_job_id(session, item_id)
    return None if job_id is None else load_payloads(session, [job_id]).get(job_id)
