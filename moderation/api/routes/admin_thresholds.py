"""``/v1/admin/thresholds``: threshold versions — list, show, set, roll back, pin, unpin (what
``moderation thresholds list/show/set/rollback/pin/unpin`` do, through the same services)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from moderation.services import thresholds as service
from moderation.services.reviews import catalog_categories
from moderation.thresholds.tiers import LADDER

from ..auth import Principal
from ..deps import ErrorMap, StateDep, in_db, in_db_off_loop
from ..schemas.admin import PinIn, ThresholdRollbackIn, ThresholdSetIn, ThresholdVersionOut
from ..schemas.common import MAX_DB_ID, error_responses, unprocessable
from ._admin import Admin, actor_of, body_doc, read_json

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/thresholds", tags=["admin: thresholds"])
VersionId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
Category = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A category.")]
_CHANGE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)
# how a refused change is answered (first match wins: the last is the others' base class)
_REFUSALS: ErrorMap = (
    (service.UnknownThresholdVersion, 404),
    (service.InvalidThresholds, lambda exc: unprocessable(str(exc).replace("--", ""))),
    (service.ThresholdChangeError, 409),
)


def _out(v: service.ThresholdVersionRecord, active: bool | None = None) -> ThresholdVersionOut:
    return ThresholdVersionOut(
        id=v.id,
        category=v.category,
        value=v.value,
        cutoffs={t.value: c for t, c in sorted(v.cutoffs.items(), key=lambda kv: kv[0].rank)},
        scale=v.scale,
        policy=v.policy,
        strategy=v.strategy,
        reason=v.reason,
        created_by=v.created_by,
        created_at=v.created_at,
        restored_from_id=v.restored_from_id,
        pinned=v.pinned,
        active=active,
        stats=dict(v.stats),
    )


def _known(state: StateDep, category: str) -> None:
    if category not in catalog_categories(state.settings.catalog_file):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such category in the catalog")


@router.get(
    "", response_model=list[ThresholdVersionOut], responses=error_responses(401, 403, 422, 503)
)
def list_versions(
    state: StateDep,
    _admin: Admin,
    category: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = None,
    all_versions: Annotated[bool, Query(alias="all")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ThresholdVersionOut]:
    """The active version of every category that has one; with ``category`` or ``all``, the
    history, newest first."""

    def read(s):  # type: ignore[no-untyped-def]
        if category or all_versions:
            return service.list_versions(s, category, limit=limit)
        return service.active_versions(s)

    found = in_db(state, read)
    return [_out(v) for v in found]


@router.get(
    "/versions/{version_id}",
    response_model=ThresholdVersionOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def show_version(state: StateDep, _admin: Admin, version_id: VersionId) -> ThresholdVersionOut:
    """One version in full, and whether it is its category's active one."""
    view = in_db(
        state, lambda s: service.show_version(s, version_id), [(service.ThresholdChangeError, 404)]
    )
    return _out(view.version, view.active)


async def _change(state: StateDep, write) -> ThresholdVersionOut:  # type: ignore[no-untyped-def]
    change = await in_db_off_loop(state, write, _REFUSALS)
    return _out(change.version, True)


@router.post(
    "/{category}/set",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(ThresholdSetIn),
    responses=_CHANGE_ERRORS,
)
async def set_version(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """A hand-set, pinned version of the category: the ladder moved to ``base``, or explicit
    ``cutoffs``. 404: not a catalog category; 422: unusable cut-offs or scale."""
    body = await read_json(request, ThresholdSetIn)
    _known(state, category)
    cutoffs = None
    if body.cutoffs is not None:
        if set(body.cutoffs) != set(LADDER):
            names = ", ".join(t.value for t in LADDER)
            raise unprocessable(f"cutoffs needs exactly {names}", ("body", "cutoffs"))
        cutoffs = dict(body.cutoffs)
    return await _change(
        state,
        lambda s: service.set_version(
            s, category, reason=body.reason, actor=actor_of(admin), policy=state.settings.policy,
            base=body.base, cutoffs=cutoffs, scale=body.scale,
        ),
    )  # fmt: skip


@router.post(
    "/{category}/rollback",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(ThresholdRollbackIn, required=False),
    responses=_CHANGE_ERRORS,
)
async def rollback(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """Make an older version (``to``; default the previous) active again, as a new pinned
    version. 404: unknown version or category; 409: nothing to roll back to."""
    body = await read_json(request, ThresholdRollbackIn, optional=True)
    _known(state, category)
    return await _change(
        state,
        lambda s: service.rollback(
            s, category, actor=actor_of(admin), to=body.to, reason=body.reason
        ),
    )


async def _pin(
    request: Request, state: StateDep, admin: Principal, category: str, pinned: bool
) -> ThresholdVersionOut:
    body = await read_json(request, PinIn, optional=True)
    _known(state, category)
    change = service.pin if pinned else service.unpin
    return await _change(
        state, lambda s: change(s, category, actor=actor_of(admin), reason=body.reason)
    )


@router.post(
    "/{category}/pin",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(PinIn, required=False),
    responses=_CHANGE_ERRORS,
)
async def pin(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """Pin the category's active cut-offs (a new version carrying them): the adjuster leaves
    them alone. 409: no version yet, or already pinned."""
    return await _pin(request, state, admin, category, True)


@router.post(
    "/{category}/unpin",
    status_code=201,
    response_model=ThresholdVersionOut,
    openapi_extra=body_doc(PinIn, required=False),
    responses=_CHANGE_ERRORS,
)
async def unpin(
    request: Request, state: StateDep, admin: Admin, category: Category
) -> ThresholdVersionOut:
    """Hand the category back to the adjuster (a new unpinned version, same cut-offs). 409:
    no version yet, or not pinned."""
    return await _pin(request, state, admin, category, False)
