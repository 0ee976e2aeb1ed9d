"""``moderation jobs``: inspect failures and quarantine, retry jobs, run the reaper once."""

from __future__ import annotations

import typer
from rich.table import Table

from moderation.domain import JobStatus

from ._common import CliError, console, settings_with

__all__ = ["register"]

jobs_app = typer.Typer(help="Jobs: failed, quarantined, show, retry, reap.", no_args_is_help=True)
LIMIT = typer.Option(50, "--limit", min=1, help="Most rows to show.")


def _sessions():  # type: ignore[no-untyped-def]
    from moderation.db.session import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(settings_with().database_url))


def _list(status: JobStatus, limit: int) -> None:
    from moderation.db.session import session_scope
    from moderation.services.jobs import list_stopped_jobs

    with session_scope(_sessions()) as s:
        jobs = list_stopped_jobs(s, status, limit)
    table = Table(title=f"{status.value} jobs (newest {limit})")
    for column in ("id", "external id", "attempts", "code", "reason", "finished"):
        table.add_column(column, overflow="fold")
    for j in jobs:
        row = (j.id, j.external_id, j.attempts, j.error_code, j.error, j.finished_at)
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


@jobs_app.command("failed")
def failed(limit: int = LIMIT) -> None:
    """Jobs whose input was bad (undecodable, too large…), with the reason."""
    _list(JobStatus.FAILED, limit)


@jobs_app.command("quarantined")
def quarantined(limit: int = LIMIT) -> None:
    """Jobs given up after max_attempts deliveries, with the last error."""
    _list(JobStatus.QUARANTINED, limit)


@jobs_app.command("show")
def show(job_id: int = typer.Argument(...)) -> None:
    """One job with its scores and decision, as JSON."""
    import json

    from moderation.api.schemas.jobs import JobOut
    from moderation.db.session import session_scope
    from moderation.services.jobs import get_job_view

    with session_scope(_sessions()) as s:
        view = get_job_view(s, job_id)
    if view is None:
        raise CliError(f"no job {job_id}")
    console.print_json(json.dumps(JobOut.of(view).model_dump(mode="json")))


@jobs_app.command("retry")
def retry(job_ids: list[int] = typer.Argument(..., help="Failed or quarantined job ids.")) -> None:
    """Requeue failed/quarantined jobs with a fresh attempt count and publish them."""
    from moderation.pipeline.publish import Publisher
    from moderation.services.requeue import retry_and_publish

    retried = retry_and_publish(_sessions(), Publisher(settings_with()), job_ids)
    if retried.requeued:
        note = "" if retried.published else " (broker unreachable: the reaper will publish them)"
        console.print(f"requeued {retried.requeued}{note}", highlight=False)
    if retried.missing:
        raise CliError(f"not failed/quarantined (or unknown): {retried.missing}")


@jobs_app.command("reap")
def reap() -> None:
    """Run the reaper once: requeue stale claims, publish never-published jobs."""
    from moderation.pipeline.publish import Publisher
    from moderation.services.requeue import reap_and_publish

    settings = settings_with()
    console.print(reap_and_publish(settings, _sessions(), Publisher(settings)))


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
