"""``GET /metrics``: Prometheus text format, no token (like the probes).

Serves this process's counters (or every uvicorn process's, with ``PROMETHEUS_MULTIPROC_DIR``)
plus the live collectors — queue depth from Redis and queued/processing jobs from the DB —
which are read at scrape time. Keep the path off the public ingress; Prometheus scrapes the
API's port directly.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format)."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
