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
    from sqlalchemy import select

    from moderation.db.models import Job
    from moderation.db.session import session_scope

    with session_scope(_sessions()) as s:
        rows = s.execute(
            select(
                Job.id, Job.external_id, Job.attempts, Job.error_code, Job.error, Job.finished_at
            )
            .where(Job.status == status)
            .order_by(Job.id.desc())
            .limit(limit)
        ).all()
    table = Table(title=f"{status.value} jobs (newest {limit})")
    for column in ("id", "external id", "attempts", "code", "reason", "finished"):
        table.add_column(column, overflow="fold")
    for row in rows:
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
    from moderation.db.repositories.job_views import get_job_view
    from moderation.db.session import session_scope

    with session_scope(_sessions()) as s:
        view = get_job_view(s, job_id)
    if view is None:
        raise CliError(f"no job {job_id}")
    console.print_json(json.dumps(JobOut.of(view).model_dump(mode="json")))


@jobs_app.command("retry")
def retry(job_ids: list[int] = typer.Argument(..., help="Failed or quarantined job ids.")) -> None:
    """Requeue failed/quarantined jobs with a fresh attempt count and publish them."""
    from moderation.db.repositories.jobs import retry_jobs
    from moderation.db.retry import in_transaction
    from workers.celery_app import make_celery
    from workers.publish import Publisher

    sessions = _sessions()
    done = in_transaction(sessions, lambda s: retry_jobs(s, job_ids))
    missing = sorted(set(job_ids) - set(done))
    if done:
        published = Publisher(make_celery(settings_with())).enqueue(sessions, done)
        note = "" if published else " (broker unreachable: the reaper will publish them)"
        console.print(f"requeued {done}{note}", highlight=False)
    if missing:
        raise CliError(f"not failed/quarantined (or unknown): {missing}")


@jobs_app.command("reap")
def reap() -> None:
    """Run the reaper once: requeue stale claims, publish never-published jobs."""
    from workers.celery_app import make_celery
    from workers.ops import reap_and_publish

    console.print(reap_and_publish(make_celery(settings_with())))


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
