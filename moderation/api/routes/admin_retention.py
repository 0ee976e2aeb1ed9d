"""``/v1/admin/retention``: the retention policy in force, what it deleted per day, and a run
(what ``moderation retention run`` and the beat task do, through the same service). Legal
holds are ``PUT/DELETE /v1/jobs/{id}/legal-hold``."""

from __future__ import annotations

from fastapi import APIRouter, Query

from moderation.db.types import utcnow
from moderation.services.retention import retention_by_day, run_retention

from ..deps import StateDep, in_db
from ..schemas.admin import RetentionDayOut, RetentionOut, RetentionRunOut
from ..schemas.common import error_responses
from ._admin import Admin, actor_of

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/retention", tags=["admin: retention"])


@router.get("", response_model=RetentionOut, responses=error_responses(401, 403, 503))
def show_retention(state: StateDep, _admin: Admin) -> RetentionOut:
    """The policy's settings and the images whose bytes it deleted per day (last 14 days)."""
    days = in_db(state, lambda s: retention_by_day(s, utcnow()))
    settings = state.settings
    return RetentionOut(
        clear_days=settings.retention_clear_days,
        reviewed_days=settings.retention_reviewed_days,
        interval_s=settings.retention_interval_s,
        by_day=[RetentionDayOut(**vars(d)) for d in days],
    )


@router.post("/run", response_model=RetentionRunOut, responses=error_responses(401, 403, 422, 503))
def run(
    state: StateDep,
    admin: Admin,
    dry_run: bool = Query(True, description="Count what would go; delete nothing (default)."),
) -> RetentionRunOut:
    """Run the retention policy now: delete the stored bytes of clear jobs and reviewed
    non-violations past their days (confirmed violations, open appeals, open review items
    and legal holds keep theirs; rows, hashes and scores stay). A dry run by default; a real
    run is audit-logged as ``retention.run``."""
    report = run_retention(state.settings, state.sessions, dry_run=dry_run, actor=actor_of(admin))
    return RetentionRunOut(
        dry_run=report.dry_run,
        purged=report.purged,
        purged_clear=report.purged_clear,
        purged_reviewed=report.purged_reviewed,
        purged_bytes=report.purged_bytes,
        errors=report.errors,
    )
