"""``create_app(settings)``: the FastAPI application (OpenAPI at ``/docs``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from moderation.config import Settings, get_settings
from moderation.db.retry import in_transaction
from moderation.db.session import make_engine, make_sessionmaker
from moderation.metrics import JobStatusCollector, QueueDepthCollector, api_registry
from moderation.pipeline.publish import Publisher
from moderation.process import freeze_startup_objects
from moderation.services.jobs import count_by_status, oldest_by_status

from .auth import TokenAuthenticator
from .deps import ApiState
from .limits import BodySizeLimit
from .routes import (
    action_rules,
    admin_retention,
    admin_thresholds,
    admin_tokens,
    appeals,
    banks,
    callbacks,
    health,
    jobs,
    metrics,
    reviews,
)
from .schemas.admin import (
    ActionRulesIn,
    PinIn,
    RollbackIn,
    ThresholdRollbackIn,
    ThresholdSetIn,
    TokenIn,
)
from .schemas.banks import BankAddIn, BankMatchIn
from .schemas.common import clean_errors
from .schemas.jobs import BatchSubmission, JsonSubmission
from .schemas.reviews import ReviewIn

# request bodies the routes read themselves (after authentication) and document by $ref
BODY_MODELS = (
    JsonSubmission,
    BatchSubmission,
    ReviewIn,
    ThresholdSetIn,
    ThresholdRollbackIn,
    PinIn,
    TokenIn,
    ActionRulesIn,
    RollbackIn,
    BankAddIn,
    BankMatchIn,
)

__all__ = ["RETRY_AFTER_S", "create_app", "create_app_from_env"]

RETRY_AFTER_S = 5  # what a 503 for an unreachable database tells the client to wait


def create_app(settings: Settings, *, publisher: Publisher | None = None) -> FastAPI:
    """The API for ``settings``; ``publisher`` defaults to a Celery client on the configured
    broker (``moderation.pipeline.publish``: tasks by name, no import of ``workers``)."""
    if publisher is None:
        publisher = Publisher(settings)
    # A database outage answers 503 + Retry-After within about db_timeout_s: the pool wait,
    # the connect timeout and every request's retries are bounded by it.
    engine = make_engine(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        timeout_s=settings.db_timeout_s,
        statement_timeout_s=settings.db_statement_timeout_s,
    )
    sessions = make_sessionmaker(engine, retry_budget_s=settings.db_timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        freeze_startup_objects()  # the app, its routes and imports: never garbage
        yield
        engine.dispose()

    app = FastAPI(
        title="moderation",
        summary="Upload hook API of the content-moderation queue worker.",
        version="1",
        lifespan=lifespan,
    )
    app.state.api = ApiState(settings, sessions, publisher, TokenAuthenticator(settings, sessions))
    app.state.metrics = api_registry(
        QueueDepthCollector(
            settings.broker_url,
            [settings.queue_name, settings.ops_queue_name],
            settings.broker_key_prefix,
        ),
        JobStatusCollector(
            lambda statuses: in_transaction(
                sessions, lambda s: count_by_status(s, statuses), give_up_after_s=0
            ),
            lambda statuses: in_transaction(
                sessions, lambda s: oldest_by_status(s, statuses), give_up_after_s=0
            ),
        ),
    )
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(jobs.router)
    app.include_router(reviews.router)
    app.include_router(banks.router)
    app.include_router(admin_thresholds.router)
    app.include_router(admin_tokens.router)
    app.include_router(admin_retention.router)
    app.include_router(action_rules.router)
    app.include_router(callbacks.router)
    app.include_router(appeals.router)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeoutError)
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        # reached only after the bounded retries in the handlers ran out
        return JSONResponse(
            {"detail": "database unavailable, retry later"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # {loc, msg, type} only: FastAPI's default echoes the input (and logs nothing we want)
        return JSONResponse({"detail": clean_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code in (401, 403, 413) and _has_body(request):
            # answered without reading the body (or all of it): close the connection, so the
            # server does not go on receiving and discarding an upload nobody will read
            exc.headers = {**(exc.headers or {}), "Connection": "close"}
        if exc.status_code == 405:
            # Starlette names the methods of the first route of the path only (POST /v1/jobs,
            # not also GET): Allow lists every method the path has
            allowed = _allowed_methods(app, request)
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
        return await http_exception_handler(request, exc)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "0")
    return "transfer-encoding" in request.headers or (length.isdigit() and int(length) > 0)


def _allowed_methods(app: FastAPI, request: Request) -> set[str]:
    scope = {**request.scope, "method": "\x00"}  # no method matches: a path match is PARTIAL

    def walk(routes: Any) -> set[str]:
        allowed: set[str] = set()
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's lazily included routers
                allowed |= walk(route.original_router.routes)
            elif getattr(route, "methods", None) and route.matches(scope)[0] is Match.PARTIAL:
                allowed |= set(route.methods)
        return allowed

    return walk(app.router.routes)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request bodies the routes parse themselves, as components
    (their nested models too), so every ``$ref`` resolves."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        _, defs = models_json_schema(
            [(m, "validation") for m in BODY_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
        app.openapi_schema = schema
    return app.openapi_schema


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several API processes)."""
    return create_app(get_settings())
