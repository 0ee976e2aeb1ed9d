"""``moderation callbacks``: decision callbacks — list them (dead letters first of all) and
send them again."""

from __future__ import annotations

import typer
from rich.table import Table

from ._common import URL_OPTION, CliError, console, database_session, open_database, settings_with

__all__ = ["register"]

callbacks_app = typer.Typer(
    help="Decision callbacks: list (e.g. the dead letters), resend.", no_args_is_help=True
)


@callbacks_app.command("list")
def list_(
    state: str | None = typer.Option(
        None, "--status", help="Only this state: pending, sent, dead or skipped."
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    url: str | None = URL_OPTION,
) -> None:
    """Jobs with a callback, newest first: state, dispatches tried, next try, last error."""
    from moderation.services.callbacks import list_callbacks

    try:
        with database_session(url) as s:
            rows = list_callbacks(s, state=state, limit=limit)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    table = Table()
    for column in ("job", "state", "attempts", "next try", "url", "last error"):
        table.add_column(column)
    from moderation.callbacks import redact_url

    for r in rows:
        table.add_row(
            str(r.job_id), r.state, str(r.attempts), str(r.next_at or ""),
            redact_url(r.url), (r.last_error or "")[:200],
        )  # fmt: skip
    console.print(table)


@callbacks_app.command("resend")
def resend(
    job_ids: list[int] = typer.Argument(None, help="Jobs whose callback to send again."),
    all_dead: bool = typer.Option(False, "--all-dead", help="Every dead letter."),
    url: str | None = URL_OPTION,
) -> None:
    """Send sent or dead callbacks again (fresh attempts, due now; audit-logged)."""
    from moderation.pipeline.publish import Publisher
    from moderation.services.callbacks import resend as resend_callbacks

    if not job_ids and not all_dead:
        raise CliError("give job ids or --all-dead")
    if job_ids and all_dead:
        raise CliError("give job ids or --all-dead, not both")
    settings = settings_with(database_url=url)
    with open_database(url) as sessions:
        ids = resend_callbacks(
            sessions,
            job_ids or (),
            all_dead=all_dead,
            actor="cli",
            publish=Publisher(settings).publish_callbacks,
        )
    console.print(f"resending {len(ids)} callbacks", highlight=False)
    missing = sorted(set(job_ids or ()) - set(ids))
    if missing:
        raise CliError(f"no sent or dead callback for jobs {missing}")


def register(app: typer.Typer) -> None:
    app.add_typer(callbacks_app, name="callbacks")
