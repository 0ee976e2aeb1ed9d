"""``create_app(settings)``: the FastAPI application (OpenAPI at ``/docs``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from moderation.config import Settings, get_settings
from moderation.db.retry import in_transaction
from moderation.db.session import make_engine, make_sessionmaker
from moderation.metrics import JobStatusCollector, QueueDepthCollector, api_registry
from moderation.pipeline.publish import Publisher
from moderation.services.jobs import count_by_status, oldest_by_status

from .auth import TokenAuthenticator
from .deps import ApiState
from .limits import BodySizeLimit
from .routes import banks, health, jobs, metrics, reviews

__all__ = ["create_app", "create_app_from_env"]


def create_app(settings: Settings, *, publisher: Publisher | None = None) -> FastAPI:
    """The API for ``settings``; ``publisher`` defaults to a Celery client on the configured
    broker (``moderation.pipeline.publish``: tasks by name, no import of ``workers``)."""
    if publisher is None:
        publisher = Publisher(settings)
    engine = make_engine(
        settings.database_url, echo=settings.db_echo, pool_size=settings.db_pool_size
    )
    sessions = make_sessionmaker(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
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

    @app.exception_handler(DBAPIError)
    async def database_down(_request: Request, exc: DBAPIError) -> JSONResponse:
        # reached only after the bounded retries in the handlers ran out
        return JSONResponse({"detail": "database unavailable, retry later"}, status_code=503)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several API processes)."""
    return create_app(get_settings())
