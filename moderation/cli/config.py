"""``moderation config``: inspect the effective settings."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from moderation.config import Settings

from ._common import console, settings_with

__all__ = ["register"]

config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


@config_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective settings (env vars, .env, defaults) with secrets masked."""
    values = settings_with().masked()
    if as_json:
        typer.echo(json.dumps(values, indent=2, default=str))
        return
    table = Table(title="moderation settings", show_lines=False)
    table.add_column("setting (env var)")
    table.add_column("value")
    table.add_column("description", overflow="fold")
    for name, value in values.items():
        field = Settings.model_fields[name]
        table.add_row(f"MODERATION_{name.upper()}", str(value), field.description or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
