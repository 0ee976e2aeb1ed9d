"""``moderation submit FILES…``: upload images to a running API."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ._common import CliError, console, settings_with

__all__ = ["register"]


def submit(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="Image files."),
    url: str | None = typer.Option(None, "--url", help="API base URL (MODERATION_API_URL)."),
    token: str | None = typer.Option(None, "--token", help="Bearer token (MODERATION_API_TOKEN)."),
    priority: int = typer.Option(0, "--priority", min=0, max=9, help="0 … 9 (most urgent)."),
    wait: bool = typer.Option(False, "--wait", help="Wait for the results and show them."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait with --wait."),
    match_text: str | None = typer.Option(
        None, "--match-text", help="A text every image should match, e.g. a listing title."
    ),
    tags: bool | None = typer.Option(
        None, "--tags/--no-tags", help="Album tags (default: the policy's)."
    ),
    context: list[str] = typer.Option(
        [], "--context", help="Decision context key=value, repeatable (docs/policies.md)."
    ),
) -> None:
    """Submit images to the API (one request), optionally waiting for their results."""
    from moderation.client import ApiError, Client

    from .score import _parse_context

    parsed = _parse_context(context)
    scenario = {
        "match_text": match_text,
        "tags": tags,
        "context": parsed.as_dict() if parsed is not None else None,
    }

    settings = settings_with(api_url=url)
    secret = token or (settings.api_token.get_secret_value() if settings.api_token else None)
    if not secret:
        raise CliError("no API token: pass --token or set MODERATION_API_TOKEN")
    table = Table()
    for column in ("file", "job", "status", "tier", "action", "match", "reason"):
        table.add_column(column, overflow="fold")
    with Client(settings.api_url, secret) as client:
        try:
            accepted = client.submit_many(files, priority=priority, **scenario)
            jobs = [client.wait(a["id"], timeout) if wait else a for a in accepted]
        except ApiError as exc:
            raise CliError(str(exc)) from None
        except TimeoutError as exc:
            raise CliError(str(exc)) from None
    for path, job in zip(files, jobs, strict=True):
        match = (job.get("match") or {}).get("verdict") or ""
        table.add_row(
            str(path), str(job["id"]), job["status"], job.get("tier") or "",
            job.get("action") or "", match, job.get("error") or job.get("scenario_error") or "",
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
