"""``moderation db``: create and migrate the schema."""

from __future__ import annotations

import typer

from moderation.config import masked_url
from moderation.db import migrate
from moderation.db.session import make_engine

from ._common import console, settings_with

__all__ = ["register"]

db_app = typer.Typer(help="Database schema: upgrade, downgrade, current.", no_args_is_help=True)

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


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
