"""``/v1/admin/tokens``: API tokens stored in the database — add, list, revoke (what
``moderation tokens add/list/revoke`` do, through the same services)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status

from moderation.db.types import utcnow
from moderation.services import tokens as service

from ..deps import StateDep, in_db, in_db_off_loop
from ..schemas.admin import TokenCreated, TokenIn, TokenOut
from ..schemas.common import error_responses, unprocessable
from ._admin import Admin, actor_of, body_doc, read_json

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/tokens", tags=["admin: tokens"])
TokenName = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]


@router.get("", response_model=list[TokenOut], responses=error_responses(401, 403, 503))
def list_tokens(state: StateDep, _admin: Admin) -> list[TokenOut]:
    """The database's tokens (never their secrets), revoked ones too."""
    rows = in_db(state, service.list_tokens)
    return [TokenOut(**vars(r)) for r in rows]


@router.post(
    "",
    status_code=201,
    response_model=TokenCreated,
    openapi_extra=body_doc(TokenIn),
    responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503),
)
async def add_token(request: Request, state: StateDep, admin: Admin) -> TokenCreated:
    """Create a token; its secret is in the answer only (only its sha256 is kept). 409: the
    name is taken (in the database, revoked or not, or by MODERATION_API_TOKENS)."""
    body = await read_json(request, TokenIn)
    static_names = [t.name for t in state.settings.parsed_tokens()]
    secret = await in_db_off_loop(
        state,
        lambda s: service.create_token(
            s, body.name, body.role, static_names=static_names, actor=actor_of(admin)
        ),
        [
            (
                service.TokenExists,
                lambda _: HTTPException(status.HTTP_409_CONFLICT, "a token with that name exists"),
            ),
            (ValueError, lambda exc: unprocessable(str(exc))),
        ],
    )
    return TokenCreated(name=body.name, role=body.role, secret=secret)


@router.post(
    "/{name}/revoke",
    response_model=TokenOut,
    responses=error_responses(401, 403, 404, 422, 503),
)
def revoke_token(name: TokenName, state: StateDep, admin: Admin) -> TokenOut:
    """Revoke a live token (API processes notice within 10 s; dashboard sessions at their
    next request). 404: no live token of that name."""

    def write(s):  # type: ignore[no-untyped-def]
        if not service.revoke_token(s, name, utcnow(), actor=actor_of(admin)):
            return None
        return next(r for r in service.list_tokens(s) if r.name == name)

    row = in_db(state, write)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no live token of that name")
    return TokenOut(**vars(row))
