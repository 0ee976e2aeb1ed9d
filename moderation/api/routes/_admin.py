"""What the admin routes share: the admin principal, the JSON body read after it, the actor."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel

from ..auth import Principal
from ..deps import API_DB_RETRY_S, require_role
from ..limits import read_body
from ..schemas.common import validated

__all__ = ["API_DB_RETRY_S", "Admin", "actor_of", "body_doc", "read_json"]

M = TypeVar("M", bound=BaseModel)
Admin = Annotated[Principal, Depends(require_role("admin"))]
MAX_ADMIN_BODY = 64 * 1024  # a rule set of a few hundred rules, a reason of 2000 characters


def actor_of(admin: Principal) -> str:
    """The audit log's actor of an admin API change (the column holds 100 characters; a DB
    token name may have 100 itself)."""
    return f"api:{admin.name}"[:100]


def body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads its ``model`` body itself (after the auth)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": ref}}}}


async def read_json(
    request: Request,
    model: type[M],
    *,
    optional: bool = False,
    max_bytes: int = MAX_ADMIN_BODY,
) -> M:
    """The body as ``model``: 415 not JSON, 413 over ``max_bytes`` (64 KiB), 400 malformed,
    422 invalid; an ``optional`` body may be empty (the model's defaults)."""
    content_type = request.headers.get("content-type", "")
    raw = await read_body(request, max_bytes)
    if optional and not raw.strip():
        return model()
    if not content_type.startswith("application/json"):
        raise HTTPException(415, "send application/json")
    return validated(model, bytes(raw), json_body=True)
