"""``/v1/admin/action-rules``: the action rules in force, their versions, set and roll back
(what ``moderation actions show/history/set/rollback`` do)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from moderation.services import actions as service
from moderation.services.reviews import catalog_categories

from ..deps import StateDep, in_db, in_db_off_loop
from ..schemas.admin import ActionRulesIn, ActionRulesInForceOut, ActionRuleVersionOut, RollbackIn
from ..schemas.common import MAX_DB_ID, error_responses, unprocessable
from ._admin import Admin, actor_of, body_doc, read_json

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/action-rules", tags=["admin: action rules"])
VersionId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]


def _out(v: service.ActionRuleVersionRecord) -> ActionRuleVersionOut:
    return ActionRuleVersionOut(
        id=v.id,
        rules=dict(v.rules),
        reason=v.reason,
        created_by=v.created_by,
        created_at=v.created_at,
        restored_from_id=v.restored_from_id,
    )


@router.get("", response_model=ActionRulesInForceOut, responses=error_responses(401, 403, 503))
def show(state: StateDep, _admin: Admin) -> ActionRulesInForceOut:
    """The action rules in force: a DB version, else the rules file, else the packaged ones."""
    found = in_db(state, lambda s: service.in_force(s, state.settings.action_rules_file))
    return ActionRulesInForceOut(
        source=found.source,  # type: ignore[arg-type]
        version_id=found.version_id,
        rules=found.rules.as_dict(),
    )


@router.get(
    "/versions",
    response_model=list[ActionRuleVersionOut],
    responses=error_responses(401, 403, 422, 503),
)
def versions(
    state: StateDep, _admin: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[ActionRuleVersionOut]:
    """Rule versions, newest (in force) first."""
    found = in_db(state, lambda s: service.list_versions(s, limit=limit))
    return [_out(v) for v in found]


@router.get(
    "/versions/{version_id}",
    response_model=ActionRuleVersionOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def version(state: StateDep, _admin: Admin, version_id: VersionId) -> ActionRuleVersionOut:
    """One rule version."""
    found = in_db(
        state,
        lambda s: service.show_version(s, version_id),
        [(service.ActionRulesChangeError, 404)],
    )
    return _out(found)


@router.put(
    "",
    status_code=201,
    response_model=ActionRuleVersionOut,
    openapi_extra=body_doc(ActionRulesIn),
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
)
async def set_rules(request: Request, state: StateDep, admin: Admin) -> ActionRuleVersionOut:
    """Validate a rule set and make it the version in force (audit-logged). Invalid rules:
    422 with one line naming the place, e.g. ``rules[2].tier: not a tier``."""
    body = await read_json(request, ActionRulesIn)
    categories = catalog_categories(state.settings.catalog_file)
    change = await in_db_off_loop(
        state,
        lambda s: service.set_rules(
            s, body.rules, reason=body.reason, actor=actor_of(admin), categories=categories
        ),
        [
            (
                (service.ActionRulesError, service.ActionRulesChangeError),
                lambda exc: unprocessable(str(exc), ("body", "rules")),
            )
        ],
    )
    return _out(change.version)


@router.post(
    "/rollback",
    status_code=201,
    response_model=ActionRuleVersionOut,
    openapi_extra=body_doc(RollbackIn, required=False),
    responses=error_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
)
async def rollback(request: Request, state: StateDep, admin: Admin) -> ActionRuleVersionOut:
    """Put an older version (``to``; default the previous) in force again, as a new version
    carrying its rules. 404: no such version; 409: nothing to roll back to."""
    body = await read_json(request, RollbackIn, optional=True)
    change = await in_db_off_loop(
        state,
        lambda s: service.rollback(s, actor=actor_of(admin), to=body.to, reason=body.reason),
        [(service.UnknownActionRuleVersion, 404), (service.ActionRulesChangeError, 409)],
    )
    return _out(change.version)
