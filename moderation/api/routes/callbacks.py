"""Admin API for decision callbacks: the list (dead letters first of all) and resend — what
``moderation callbacks list|resend`` and the dashboard's Callbacks page do."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from moderation.services import callbacks as callback_service

from ..deps import StateDep, in_db
from ..schemas.callbacks import CallbackOut, ResendIn, ResendOut
from ..schemas.common import MAX_DB_ID, error_responses
from ._admin import Admin, actor_of

__all__ = ["router"]

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])


@router.get("", responses=error_responses(401, 403, 422, 503))
def list_callbacks(
    state: StateDep,
    _admin: Admin,
    status: Literal["pending", "sent", "dead", "skipped"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_DB_ID)] = None,
) -> list[CallbackOut]:
    """Jobs with a callback, newest first (``before_id``: the page after the last id seen);
    ``status=dead``: the dead letters."""
    rows = in_db(
        state,
        lambda s: callback_service.list_callbacks(
            s, state=status, limit=limit, before_id=before_id
        ),
    )
    return [CallbackOut.of(r) for r in rows]


@router.post("/resend", responses=error_responses(400, 401, 403, 422, 503))
def resend(body: ResendIn, state: StateDep, admin: Admin) -> ResendOut:
    """Send sent or dead callbacks again: fresh attempts, due now (audit-logged)."""
    ids = callback_service.resend(
        state.sessions,
        body.job_ids,
        all_dead=body.all_dead,
        actor=actor_of(admin),
        publish=state.publisher.publish_callbacks,
    )
    return ResendOut(resent=ids, not_resendable=sorted(set(body.job_ids) - set(ids)))
