"""Named FastAPI dependencies: the app state, the caller (``CurrentPrincipal``), role checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.pipeline.publish import Publisher

from .auth import Principal, TokenAuthenticator, TooManyFailures

__all__ = ["ApiState", "CurrentPrincipal", "StateDep", "require_role"]


@dataclass
class ApiState:
    settings: Settings
    sessions: sessionmaker[Session]
    publisher: Publisher
    auth: TokenAuthenticator


def get_state(request: Request) -> ApiState:
    return request.app.state.api  # type: ignore[no-any-return]


StateDep = Annotated[ApiState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False, description="API token (the secret part)")


def get_principal(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of a bearer token; wrong tokens count against the client address
    (``MODERATION_AUTH_MAX_FAILURES`` per ``MODERATION_AUTH_FAILURE_WINDOW_S``, then 429)."""
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "missing or invalid bearer token",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    client = request.client.host if request.client is not None else "unknown"
    try:
        principal = state.auth.authenticate(credentials.credentials, client=client)
    except TooManyFailures as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            str(exc),
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    if principal is None:
        raise unauthorized
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_role(role: str) -> Callable[[Principal], Principal]:
    """Dependency: the caller must hold ``role`` (or a higher one), else 403."""

    def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role!r} may not do this ({role} needed)",
            )
        return principal

    check.required_role = role  # type: ignore[attr-defined]  # lets tests enumerate guarded routes
    return check
