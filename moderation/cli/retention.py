"""``moderation retention``: delete stored image bytes the retention policy lets go, and
legal holds that keep an image's bytes whatever the policy says."""

from __future__ import annotations

import typer

from ._common import URL_OPTION, CliError, console, database_session, open_database, settings_with

__all__ = ["register"]

retention_app = typer.Typer(
    help="Retention of stored image bytes: run the policy, legal holds.", no_args_is_help=True
)


@retention_app.command("run")
def run(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; delete nothing."),
    url: str | None = URL_OPTION,
) -> None:
    """Delete the stored bytes of clear jobs older than MODERATION_RETENTION_CLEAR_DAYS and of
    reviewed non-violations older than MODERATION_RETENTION_REVIEWED_DAYS (the beat task runs
    the same). Confirmed violations, appeals and legal holds keep theirs; rows, hashes and
    scores always stay."""
    from moderation.services.retention import run_retention

    settings = settings_with(database_url=url)
    with open_database(url) as sessions:
        report = run_retention(settings, sessions, dry_run=dry_run, actor="cli")
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} the bytes of {report.purged} images ({report.purged_clear} clear, "
        f"{report.purged_reviewed} reviewed; {report.purged_bytes} bytes)"
        + (f"; {report.errors} blob-store deletions failed (logged)" if report.errors else ""),
        highlight=False,
    )


@retention_app.command("hold")
def hold(
    job_id: int = typer.Argument(..., min=1, help="A job on the image to hold."),
    release: bool = typer.Option(False, "--release", help="Lift the hold instead."),
    url: str | None = URL_OPTION,
) -> None:
    """Put a legal hold on the image of a job (retention never deletes its bytes), or lift it."""
    from moderation.services.retention import UnknownJob, set_legal_hold

    try:
        with database_session(url) as s:
            image_id = set_legal_hold(s, job_id, not release)
    except UnknownJob as exc:
        raise CliError(str(exc)) from None
    state = "lifted" if release else "on"
    console.print(f"legal hold {state}: image {image_id} (job {job_id})", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
