"""``moderation dashboard``: serve the ops dashboard over HTTP."""

from __future__ import annotations

import typer

from moderation.config import Settings, masked_url
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
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        help="Ask nobody to log in (every reviewer is 'local'); loopback addresses only.",
    ),
) -> None:
    """Serve the ops dashboard: Overview, Review, Thresholds, Matcher playground.

    Reviewers and admins log in with their API token (MODERATION_API_TOKENS or `moderation
    tokens add`); without any such token it refuses to start unless --no-auth on loopback."""
    settings = settings_with(database_url=url, dashboard_host=host, dashboard_port=port)
    from moderation.web.app import NO_VIEWER, create_dashboard_app, is_loopback

    if no_auth and not is_loopback(settings.dashboard_host):
        raise CliError(
            f"--no-auth serves the dashboard to anyone who reaches it: bind a loopback "
            f"address (127.0.0.1, ::1, localhost), not {settings.dashboard_host}"
        )
    _require_current_schema(settings.database_url)
    if not no_auth and not _has_viewer(settings):
        raise CliError(NO_VIEWER)
    if settings.session_secret is None:
        err_console.print(
            "[yellow]note:[/] MODERATION_SESSION_SECRET is unset: logins hold until this "
            "process restarts",
            highlight=False,
        )
    import uvicorn

    console.print(
        f"dashboard on http://{settings.dashboard_host}:{settings.dashboard_port}/ "
        f"reading {masked_url(settings.database_url)}",
        highlight=False,
    )
    uvicorn.run(
        create_dashboard_app(settings, no_auth=no_auth),
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


def _has_viewer(settings: Settings) -> bool:
    from moderation.db.session import make_sessionmaker
    from moderation.services.tokens import TokenResolver

    engine = make_engine(settings.database_url)
    try:
        return TokenResolver(settings, make_sessionmaker(engine)).has_viewer()
    finally:
        engine.dispose()


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
