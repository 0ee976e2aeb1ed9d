"""``moderation jobs``: inspect failures and quarantine, retry jobs, run the reaper once."""

from __future__ import annotations

import typer
from rich.table import Table

from moderation.domain import JobStatus

from ._common import URL_OPTION, CliError, console, database_session, open_database, settings_with

__all__ = ["register"]

jobs_app = typer.Typer(help="Jobs: failed, quarantined, show, retry, reap.", no_args_is_help=True)
LIMIT = typer.Option(50, "--limit", min=1, help="Most rows to show.")


def _list(status: JobStatus, limit: int, url: str | None) -> None:
    from moderation.services.jobs import list_stopped_jobs

    with database_session(url) as s:
        jobs = list_stopped_jobs(s, status, limit)
    table = Table(title=f"{status.value} jobs (newest {limit})")
    for column in ("id", "external id", "attempts", "code", "reason", "finished"):
        table.add_column(column, overflow="fold")
    for j in jobs:
        row = (j.id, j.external_id, j.attempts, j.error_code, j.error, j.finished_at)
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


@jobs_app.command("failed")
def failed(limit: int = LIMIT, url: str | None = URL_OPTION) -> None:
    """Jobs whose input was bad (undecodable, too large…), with the reason."""
    _list(JobStatus.FAILED, limit, url)


@jobs_app.command("quarantined")
def quarantined(limit: int = LIMIT, url: str | None = URL_OPTION) -> None:
    """Jobs given up after max_attempts deliveries, with the last error."""
    _list(JobStatus.QUARANTINED, limit, url)


@jobs_app.command("show")
def show(job_id: int = typer.Argument(...), url: str | None = URL_OPTION) -> None:
    """One job with its scores and decision, as JSON."""
    import json

    from moderation.api.schemas.jobs import JobOut
    from moderation.services.jobs import get_job_view

    with database_session(url) as s:
        view = get_job_view(s, job_id)
    if view is None:
        raise CliError(f"no job {job_id}")
    console.print_json(json.dumps(JobOut.of(view).model_dump(mode="json")))


@jobs_app.command("retry")
def retry(
    job_ids: list[int] = typer.Argument(..., help="Failed or quarantined job ids."),
    url: str | None = URL_OPTION,
) -> None:
    """Requeue failed/quarantined jobs with a fresh attempt count and publish them."""
    from moderation.pipeline.publish import Publisher
    from moderation.services.requeue import retry_and_publish

    settings = settings_with(database_url=url)
    with open_database(url) as sessions:
        retried = retry_and_publish(sessions, Publisher(settings), job_ids)
    if retried.requeued:
        note = "" if retried.published else " (broker unreachable: the reaper will publish them)"
        console.print(f"requeued {retried.requeued}{note}", highlight=False)
    if retried.missing:
        raise CliError(f"not failed/quarantined (or unknown): {retried.missing}")


@jobs_app.command("reap")
def reap(url: str | None = URL_OPTION) -> None:
    """Run the reaper once: requeue stale claims, publish never-published jobs."""
    from moderation.pipeline.publish import Publisher
    from moderation.services.requeue import reap_and_publish

    settings = settings_with(database_url=url)
    with open_database(url) as sessions:
        console.print(reap_and_publish(settings, sessions, Publisher(settings)))


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
