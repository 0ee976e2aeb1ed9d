"""Appeals: the submitter contests a decision (``POST /v1/jobs/{id}/appeal``); reviewers
other than those who reviewed the job claim and decide appeals (``/v1/appeals``), a queue
separate from the review queue (docs/review.md#appeals)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

from moderation.db.types import utcnow
from moderation.domain import RiskTier
from moderation.services import appeals as service

from ..auth import Principal
from ..deps import ApiState, ErrorMap, StateDep, in_db, require_role
from ..schemas.appeals import AppealDecisionIn, AppealIn, AppealOut
from ..schemas.common import MAX_DB_ID, error_responses, unprocessable

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["appeals"])
Submitter = Annotated[Principal, Depends(require_role("submitter"))]
Reviewer = Annotated[Principal, Depends(require_role("reviewer"))]
Id = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
T = TypeVar("T")


_REFUSALS: ErrorMap = (
    (service.UnknownAppeal, 404),
    (service.AppealForbidden, 403),
    (service.AppealConflict, 409),
    (ValueError, lambda exc: unprocessable(str(exc))),
)


def _run(state: ApiState, work: Callable[[Session], T]) -> T:
    return in_db(state, work, _REFUSALS)


@router.post(
    "/v1/jobs/{job_id:int}/appeal",
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
)
def appeal_job(job_id: Id, body: AppealIn, state: StateDep, principal: Submitter) -> AppealOut:
    """Appeal the decision of one's own job, with a reason: 404 for another submitter's (or
    an unknown) job, 409 when it is not decided yet or was already appealed."""
    row = _run(
        state,
        lambda s: service.submit_appeal(
            s, job_id, submitter=principal.name, reason=body.reason, now=utcnow()
        ),
    )
    return AppealOut.of(row)


@router.get("/v1/appeals", responses=error_responses(401, 403, 422, 503))
def list_appeals(
    state: StateDep,
    _reviewer: Reviewer,
    status_: Annotated[Literal["open", "decided"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_DB_ID)] = None,
) -> list[AppealOut]:
    """Appeals, newest first (``status=open``: the queue)."""
    rows = _run(
        state,
        lambda s: service.list_appeals(s, status=status_, limit=limit, before_id=before_id),
    )
    return [AppealOut.of(r) for r in rows]


@router.post("/v1/appeals/claim", responses=error_responses(401, 403, 503))
def claim_next(state: StateDep, principal: Reviewer) -> AppealOut | None:
    """Claim the oldest open appeal this reviewer may judge (null when none): appeals of jobs
    they reviewed are never offered to them."""
    lease = state.settings.review_lease_s
    row = _run(
        state,
        lambda s: service.claim_next_appeal(s, principal.name, now=utcnow(), lease_s=lease),
    )
    return AppealOut.of(row) if row is not None else None


@router.post(
    "/v1/appeals/{appeal_id}/claim", responses=error_responses(401, 403, 404, 409, 422, 503)
)
def claim(appeal_id: Id, state: StateDep, principal: Reviewer) -> AppealOut:
    """Claim one appeal: 403 for a reviewer of the appealed job, 409 when another reviewer
    holds it or it is decided."""
    lease = state.settings.review_lease_s
    row = _run(
        state,
        lambda s: service.claim_appeal(s, appeal_id, principal.name, now=utcnow(), lease_s=lease),
    )
    return AppealOut.of(row)


@router.post(
    "/v1/appeals/{appeal_id}/decide", responses=error_responses(400, 401, 403, 404, 409, 422, 503)
)
def decide(
    appeal_id: Id, body: AppealDecisionIn, state: StateDep, principal: Reviewer
) -> AppealOut:
    """Uphold or overturn (with the corrected tier): a new decision version (the old one kept),
    the job's callback sent again, the outcome audit-logged. 403 for a reviewer of the job,
    409 when another reviewer holds the claim or it is decided."""
    done = _run(
        state,
        lambda s: service.decide_appeal(
            s, appeal_id, principal.name, outcome=body.outcome,
            tier=RiskTier(body.tier) if body.tier else None,
            note=body.note, now=utcnow(), action_rules_file=state.settings.action_rules_file,
        ),
    )  # fmt: skip
    if done.callback_due:
        try:
            state.publisher.publish_callbacks([done.appeal.job_id])
        except Exception as exc:  # the reaper dispatches it: it is due now
            log.warning("could not publish the callback of job %s: %s", done.appeal.job_id, exc)
    return AppealOut.of(done.appeal)
