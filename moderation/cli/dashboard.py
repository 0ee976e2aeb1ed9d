"""``moderation dashboard``: serve the ops dashboard over HTTP."""

from __future__ import annotations

import ipaddress

import typer

from moderation.config import masked_url
from moderation.db import migrate
from moderation.db.session import make_engine

from ._common import CliError, console, err_console, settings_with

__all__ = ["register"]


def dashboard(
    host: str | None = typer.Option(
        None, "--host", help="Bind address (MODERATION_DASHBOARD_HOST)."
    ),
    port: int | None = typer.Option(None, "--port", help="Port (MODERATION_DASHBOARD_PORT)."),
    url: str | None = typer.Option(None, "--url", help="Database URL (MODERATION_DATABASE_URL)."),
) -> None:
    """Serve the ops dashboard: Overview and Thresholds from the SQL views, Matcher playground."""
    settings = settings_with(database_url=url, dashboard_host=host, dashboard_port=port)
    _require_current_schema(settings.database_url)
    if not any(t.role in ("reviewer", "admin") for t in settings.parsed_tokens()):
        if not _is_loopback(settings.dashboard_host):
            err_console.print(
                "[yellow]warning:[/] no reviewer/admin API token is configured, so the dashboard "
                f"on {settings.dashboard_host} asks nobody to log in"
            )
    import uvicorn

    from moderation.web.app import create_dashboard_app

    console.print(
        f"dashboard on http://{settings.dashboard_host}:{settings.dashboard_port}/ "
        f"reading {masked_url(settings.database_url)}",
        highlight=False,
    )
    uvicorn.run(
        create_dashboard_app(settings),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        log_level="info",
    )


def _require_current_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        revision = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    if revision != head:
        raise CliError(
            f"database schema is at {revision or 'nothing'}, the dashboard needs {head}: "
            "run `moderation db upgrade`"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
