"""``moderation tokens``: API tokens stored in the database (only their hash is kept)."""

from __future__ import annotations

import typer
from rich.table import Table

from ._common import URL_OPTION, CliError, console, database_session, settings_with

__all__ = ["register"]

tokens_app = typer.Typer(
    help="API tokens in the database: add, list, revoke.", no_args_is_help=True
)


@tokens_app.command("add")
def add(
    name: str = typer.Argument(...),
    role: str = typer.Argument(..., help="submitter, reviewer or admin"),
    url: str | None = URL_OPTION,
    actor: str | None = typer.Option(None, "--actor", help="Who adds it (default: $USER)."),
) -> None:
    """Create a token and print its secret (shown once). Names are unique across the
    database and MODERATION_API_TOKENS."""
    from moderation.services.tokens import create_token

    from .thresholds import default_actor

    static_names = [t.name for t in settings_with().parsed_tokens()]
    try:
        with database_session(url) as s:
            secret = create_token(
                s, name, role, static_names=static_names, actor=default_actor(actor)
            )
    except ValueError as exc:  # unknown role, or TokenExists
        raise CliError(str(exc)) from None
    console.print(secret, highlight=False)


@tokens_app.command("list")
def list_(url: str | None = URL_OPTION) -> None:
    """Token names, roles and whether they are revoked."""
    from moderation.services.tokens import list_tokens

    with database_session(url) as s:
        rows = list_tokens(s)
    table = Table()
    for column in ("name", "role", "created", "revoked"):
        table.add_column(column)
    for r in rows:
        table.add_row(r.name, r.role, str(r.created_at), str(r.revoked_at or ""))
    console.print(table)


@tokens_app.command("revoke")
def revoke(
    name: str = typer.Argument(...),
    url: str | None = URL_OPTION,
    actor: str | None = typer.Option(None, "--actor", help="Who revokes it (default: $USER)."),
) -> None:
    """Revoke a token by name (API processes notice within 10 s; dashboard logins with it
    end at their next request)."""
    from moderation.db.types import utcnow
    from moderation.services.tokens import revoke_token

    from .thresholds import default_actor

    with database_session(url) as s:
        if not revoke_token(s, name, utcnow(), actor=default_actor(actor)):
            raise CliError(f"no live token named {name!r}")
    console.print(f"revoked {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
