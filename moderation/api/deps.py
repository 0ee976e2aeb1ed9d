"""Named FastAPI dependencies: the app state, the caller (``CurrentPrincipal``), role checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from moderation.config import Settings
from moderation.db.retry import in_transaction
from moderation.pipeline.publish import Publisher

from .auth import Principal, TokenAuthenticator, TooManyFailures

__all__ = [
    "API_DB_RETRY_S",
    "ApiState",
    "CurrentPrincipal",
    "ErrorMap",
    "StateDep",
    "in_db",
    "in_db_off_loop",
    "require_role",
]

T = TypeVar("T")
API_DB_RETRY_S = 10  # a request waits this long for a restarting database, then gets a 503
# (service error type, HTTP status or a function building the HTTPException): first match wins
ErrorMap = Sequence[
    tuple[
        type[Exception] | tuple[type[Exception], ...],
        int | Callable[[Exception], HTTPException],
    ]
]


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


def in_db(state: ApiState, work: Callable[[Session], T], errors: ErrorMap = ()) -> T:
    """``work`` in one transaction (retried on transient errors for up to ``API_DB_RETRY_S``,
    then the app's 503), with the service errors in ``errors`` answered as their HTTP status
    (the message is the error's text) or as the ``HTTPException`` their function builds."""
    try:
        return in_transaction(state.sessions, work, give_up_after_s=API_DB_RETRY_S)
    except tuple(
        k for kind, _ in errors for k in (kind if isinstance(kind, tuple) else (kind,))
    ) as exc:
        answer = next(a for kind, a in errors if isinstance(exc, kind))
        if isinstance(answer, int):
            raise HTTPException(answer, str(exc)) from None
        raise answer(exc) from None


async def in_db_off_loop(state: ApiState, work: Callable[[Session], T], errors: ErrorMap = ()) -> T:
    """``in_db`` in the thread pool: for async routes (those that read their body themselves)."""
    return await run_in_threadpool(in_db, state, work, errors)
