"""``/v1/review-queue`` and ``/v1/reviews``: reviewers claim items and post verdicts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from starlette.concurrency import run_in_threadpool

from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.services import reviews as service

from ..auth import Principal
from ..deps import API_DB_RETRY_S, StateDep, require_role
from ..limits import read_body
from ..schemas.common import MAX_DB_ID, error_responses, unprocessable, validated
from ..schemas.reviews import (
    ClaimedItemOut,
    ClaimedList,
    ReviewIn,
    ReviewList,
    ReviewOut,
    ReviewRecorded,
)

__all__ = ["router"]

router = APIRouter(tags=["reviews"])
Reviewer = Annotated[Principal, Depends(require_role("reviewer"))]
MAX_REVIEW_BODY = 64 * 1024  # a review is an id, a label, two categories and a 4000-char note
REVIEW_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReviewIn"}}},
    }
}


@router.get(
    "/v1/review-queue/next",
    response_model=ClaimedList,
    responses=error_responses(401, 403, 422, 503),
)
def claim_next(
    state: StateDep,
    principal: Reviewer,
    n: Annotated[int, Query(ge=1, le=service.MAX_CLAIM)] = 1,
) -> ClaimedList:
    """Claim up to ``n`` items (highest priority, then oldest; audit items waiting longer than
    ``review_audit_max_wait_s`` first) for ``review_lease_s`` seconds.

    Calling again returns your own live claims first (with a fresh lease)."""
    settings = state.settings
    items = in_transaction(
        state.sessions,
        lambda s: service.claim_items(
            s,
            reviewer=principal.name,
            n=n,
            lease_s=settings.review_lease_s,
            now=utcnow(),
            audit_max_wait_s=settings.review_audit_max_wait_s,
        ),
        give_up_after_s=API_DB_RETRY_S,
    )
    return ClaimedList(items=[ClaimedItemOut.of(i) for i in items])


@router.post(
    "/v1/reviews",
    status_code=201,
    response_model=ReviewRecorded,
    openapi_extra=REVIEW_DOC,
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
)
async def post_review(request: Request, state: StateDep, principal: Reviewer) -> ReviewRecorded:
    """Record a verdict: 404 unknown item, 409 claimed by another reviewer, 422 bad body
    (also an ``other_category`` that is not in the catalog). The token is checked before the
    body (at most 64 KiB) is read."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, "send application/json")
    raw = await read_body(request, MAX_REVIEW_BODY)
    body = validated(ReviewIn, raw, json_body=True)
    return await run_in_threadpool(_record, state, principal, body)


def _record(state: Any, principal: Principal, body: ReviewIn) -> ReviewRecorded:

    def write(session):  # type: ignore[no-untyped-def]
        return service.record_review(
            session,
            item_id=body.item_id,
            reviewer=principal.name,
            label=body.label,
            category=body.category,
            other_category=body.other_category,
            note=body.note,
            now=utcnow(),
            banking=service.BankingOptions.from_settings(state.settings),
        )

    try:
        result = in_transaction(state.sessions, write, give_up_after_s=API_DB_RETRY_S)
    except service.UnknownReviewItem as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except service.ClaimConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except service.InvalidReview as exc:
        raise unprocessable(str(exc)) from None
    return ReviewRecorded.of(result)


@router.get("/v1/reviews", response_model=ReviewList, responses=error_responses(401, 403, 422, 503))
def get_reviews(
    state: StateDep, principal: Reviewer, job_id: Annotated[int, Query(ge=1, le=MAX_DB_ID)]
) -> ReviewList:
    """Every review of one job, oldest first."""
    del principal
    views = in_transaction(
        state.sessions,
        lambda s: service.list_reviews(s, job_id=job_id),
        give_up_after_s=API_DB_RETRY_S,
    )
    return ReviewList(reviews=[ReviewOut.of(v) for v in views])
