"""Bodies of the review-queue resources (``/v1/review-queue``, ``/v1/reviews``)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moderation.domain import ReviewLabel
from moderation.services.reviews import ClaimedItem, ReviewResult, ReviewView

from .common import CleanStr, DbId

__all__ = [
    "ClaimedItemOut",
    "ClaimedList",
    "CategoryScoreOut",
    "ReviewIn",
    "ReviewList",
    "ReviewOut",
    "ReviewRecorded",
]


class CategoryScoreOut(BaseModel):
    score: float
    phrasing: str | None
    tier: str


class ClaimedItemOut(BaseModel):
    item_id: int
    job_id: int
    kind: str
    category: str | None
    score: float | None
    tier: str
    priority: float
    inclusion_probability: float
    claim_expires_at: dt.datetime
    image_id: int
    external_id: str | None
    review_categories: list[str] = Field(
        description="Categories a label is asked for; the item is done when each has one."
    )
    scores: dict[str, CategoryScoreOut]

    @classmethod
    def of(cls, item: ClaimedItem) -> ClaimedItemOut:
        return cls(
            item_id=item.item_id,
            job_id=item.job_id,
            kind=item.kind.value,
            category=item.category,
            score=item.score,
            tier=item.tier.value,
            priority=item.priority,
            inclusion_probability=item.inclusion_probability,
            claim_expires_at=item.claim_expires_at,
            image_id=item.image_id,
            external_id=item.external_id,
            review_categories=list(item.review_categories),
            scores={
                c: CategoryScoreOut(score=s, phrasing=p, tier=t.value)
                for c, (s, p, t) in item.scores.items()
            },
        )


class ClaimedList(BaseModel):
    items: list[ClaimedItemOut]


class ReviewIn(BaseModel):
    """One reviewer verdict on one category of a review item."""

    model_config = ConfigDict(extra="forbid", strict=True)

    item_id: DbId
    label: ReviewLabel
    category: CleanStr | None = Field(
        None, min_length=1, max_length=64, description="Default: the item's category."
    )
    other_category: CleanStr | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Only with label other_category: a category of the catalog.",
    )
    note: CleanStr | None = Field(None, max_length=4000)

    @model_validator(mode="after")
    def _other_category(self) -> ReviewIn:
        if (self.label is ReviewLabel.OTHER_CATEGORY) != (self.other_category is not None):
            raise ValueError("other_category is required with, and only with, label other_category")
        return self


class ReviewRecorded(BaseModel):
    review_id: int
    item_id: int
    job_id: int
    category: str
    label: str
    replaced: bool
    item_done: bool
    remaining_categories: list[str]
    banked: str | None

    @classmethod
    def of(cls, r: ReviewResult) -> ReviewRecorded:
        return cls(
            review_id=r.review_id,
            item_id=r.item_id,
            job_id=r.job_id,
            category=r.category,
            label=r.label.value,
            replaced=r.replaced,
            item_done=r.item_done,
            remaining_categories=list(r.remaining_categories),
            banked=r.banked,
        )


class ReviewOut(BaseModel):
    id: int
    job_id: int
    item_id: int | None
    reviewer: str
    category: str
    label: str
    other_category: str | None
    note: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, r: ReviewView) -> ReviewOut:
        return cls(
            id=r.id,
            job_id=r.job_id,
            item_id=r.item_id,
            reviewer=r.reviewer,
            category=r.category,
            label=r.label.value,
            other_category=r.other_category,
            note=r.note,
            created_at=r.created_at,
        )


class ReviewList(BaseModel):
    reviews: list[ReviewOut]
