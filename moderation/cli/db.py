"""``moderation db``: create and migrate the schema."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from moderation.config import masked_url
from moderation.db import migrate
from moderation.db.session import make_engine

from ._common import console, database_session, settings_with

__all__ = ["register"]

db_app = typer.Typer(
    help="Database schema: upgrade, downgrade, current; dashboard rollups.", no_args_is_help=True
)

URL_OPTION = typer.Option(
    None, "--url", help="Database URL (default: MODERATION_DATABASE_URL or the SQLite file)."
)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head"), url: str | None = URL_OPTION) -> None:
    """Apply migrations up to REVISION (default: head)."""
    database_url = settings_with(database_url=url).database_url
    migrate.upgrade(database_url, revision)
    console.print(f"schema at [bold]{revision}[/] on {masked_url(database_url)}", highlight=False)


@db_app.command("downgrade")
def downgrade(revision: str = typer.Argument(...), url: str | None = URL_OPTION) -> None:
    """Revert migrations down to REVISION (`base` drops every table)."""
    database_url = settings_with(database_url=url).database_url
    migrate.downgrade(database_url, revision)
    console.print(f"schema at [bold]{revision}[/] on {masked_url(database_url)}", highlight=False)


@db_app.command("current")
def current(url: str | None = URL_OPTION) -> None:
    """Show the schema revision of the database and the newest one available."""
    engine = make_engine(settings_with(database_url=url).database_url)
    try:
        rev = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    state = "up to date" if rev == head else "needs `moderation db upgrade`"
    console.print(f"current: {rev or 'empty'}  head: {head}  ({state})")


@db_app.command("rollup")
def rollup(
    rebuild: bool = typer.Option(False, "--rebuild", help="Recompute every rolled bucket."),
    url: str | None = URL_OPTION,
) -> None:
    """Refresh the dashboard rollups now (beat does it every MODERATION_ROLLUP_INTERVAL_S)."""
    from moderation.db.rollups import refresh_rollups
    from moderation.db.types import utcnow

    settings = settings_with(database_url=url)
    with database_session(url) as session:
        settle = dt.timedelta(hours=settings.rollup_settle_hours)
        done = refresh_rollups(session, utcnow(), settle=settle, rebuild=rebuild)
    table = Table("view", "recomputed from", "rolled until", "rows", box=None)
    for r in done:
        table.add_row(r.view, f"{r.start:%Y-%m-%d %H:%M}", f"{r.end:%Y-%m-%d %H:%M}", str(r.rows))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
