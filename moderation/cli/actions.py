"""``moderation actions``: the action rules in force, their versions, set and roll back."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table
from sqlalchemy.orm import Session

from ._common import URL_OPTION, CliError, console, database_session, settings_with
from .thresholds import ACTOR_OPTION, default_actor

__all__ = ["register"]

actions_app = typer.Typer(
    help="Action rules ((category, tier, source) → allow, blur, age_restrict, hold, block or a "
    "custom action): show, history, set, rollback. Versions are append-only; the newest is in "
    "force (else MODERATION_ACTION_RULES_FILE, else the packaged rules).",
    no_args_is_help=True,
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")


@contextlib.contextmanager
def _change(url: str | None) -> Iterator[Session]:
    from moderation.services import actions as service

    try:
        with database_session(url) as session:
            yield session
    except (service.ActionRulesChangeError, service.ActionRulesError) as exc:
        raise CliError(str(exc)) from None


def _version_dict(v: Any) -> dict[str, Any]:
    return {
        "id": v.id,
        "rules": dict(v.rules),
        "reason": v.reason,
        "created_by": v.created_by,
        "created_at": v.created_at.isoformat(),
        "restored_from_id": v.restored_from_id,
    }


@actions_app.command("show")
def show(as_json: bool = JSON_OPTION, url: str | None = URL_OPTION) -> None:
    """The action rules in force and where they come from (version, file or packaged)."""
    from moderation.services import actions as service

    settings = settings_with(database_url=url)
    with _change(url) as session:
        found = service.in_force(session, settings.action_rules_file)
    data = {"source": found.source, "version_id": found.version_id, "rules": found.rules.as_dict()}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    where = f"version {found.version_id}" if found.version_id else found.source
    console.print(f"action rules in force: {where}", highlight=False)
    typer.echo(yaml.safe_dump(data["rules"], sort_keys=False))


@actions_app.command("history")
def history(
    limit: int = typer.Option(50, "--limit", min=1, help="Most versions to show."),
    as_json: bool = JSON_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Rule versions, newest (in force) first."""
    from moderation.services import actions as service

    with _change(url) as session:
        versions = service.list_versions(session, limit=limit)
    if as_json:
        typer.echo(json.dumps([_version_dict(v) for v in versions], indent=2))
        return
    if not versions:
        console.print("no action rule versions yet: the rules file or the packaged rules apply")
        return
    table = Table(title="action rule versions")
    for column in ("id", "rules", "created", "by", "reason"):
        table.add_column(column, overflow="fold")
    for v in versions:
        restored = f" (restores {v.restored_from_id})" if v.restored_from_id else ""
        table.add_row(
            str(v.id),
            str(len(v.rules.get("rules", []))),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.created_by,
            v.reason + restored,
        )
    console.print(table)


@actions_app.command("set")
def set_rules(
    file: Path = typer.Argument(..., help="YAML rules file (docs/actions.md)."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the version and audit log)."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Validate FILE and make its rules the version in force."""
    from moderation.services import actions as service
    from moderation.services.reviews import catalog_categories

    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{file}: cannot read ({exc})") from None
    categories = catalog_categories(settings_with(database_url=url).catalog_file)
    try:
        with _change(url) as session:
            change = service.set_rules(
                session, text, reason=reason, actor=default_actor(actor), categories=categories
            )
    except CliError as exc:
        raise CliError(f"{file}: {exc}") from None
    console.print(f"action rules: version {change.version.id} in force", highlight=False)


@actions_app.command("rollback")
def rollback(
    to: int | None = typer.Option(None, "--to", help="Version to restore (default: previous)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (default: 'rollback to N')."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Put an older version in force again, as a new version carrying its rules."""
    from moderation.services import actions as service

    with _change(url) as session:
        change = service.rollback(session, actor=default_actor(actor), to=to, reason=reason)
    console.print(
        f"action rules: version {change.version.id} in force, restoring version "
        f"{change.restored_from_id}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(actions_app, name="actions")
