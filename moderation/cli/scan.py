"""``moderation scan DIR``: the embedded default main job (in-process, no broker)."""

from __future__ import annotations

import socket
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from moderation.domain import RiskTier

from ._common import CliError, check_backend, console, settings_with

__all__ = ["register"]


def scan(
    directory: Path = typer.Argument(..., exists=True, help="Folder (or one file) of images."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into subfolders."),
    url: str | None = typer.Option(None, "--url", help="Database URL (default: the SQLite file)."),
    backend: str | None = typer.Option(
        None, "--backend", help="A registered backend: open_nsfw, gme, fake, …"
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Images per forward."),
) -> None:
    """Score every image in DIR through the pipeline and print tiers and failures."""
    from moderation.db.migrate import upgrade
    from moderation.db.session import make_engine, make_sessionmaker
    from moderation.embedders.registry import BackendUnavailable
    from moderation.pipeline.scan import find_images, scan_paths
    from moderation.scoring.catalog import CatalogError
    from moderation.scoring.scorers import ScorerConfigError, build_scorer
    from moderation.services.pattern_vectors import DbPatternVectors
    from moderation.services.scorer_profiles import registered_scorer
    from moderation.thresholds.scales import UnknownScale

    check_backend(backend)
    settings = settings_with(database_url=url, backend=backend, batch_size=batch_size)
    paths = find_images(directory, recursive=recursive)
    if not paths:
        raise CliError(f"no image files in {directory} (use --recursive for subfolders)")
    upgrade(settings.database_url)  # the embedded default needs no separate setup step
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    try:
        try:
            with console.status(f"loading the {settings.backend} scorer…"):
                scorer = build_scorer(settings, shared=DbPatternVectors(sessions))
        except (CatalogError, ScorerConfigError, BackendUnavailable, UnknownScale) as exc:
            raise CliError(str(exc)) from None
        columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
        # the threshold adjuster adjusts the categories and scales of what is scored (this)
        worker = f"scan@{socket.gethostname()}"
        with (
            registered_scorer(sessions, scorer, settings, worker=worker),
            Progress(*columns, TimeElapsedColumn(), console=console) as progress,
        ):
            task = progress.add_task("scoring", total=len(paths))
            report = scan_paths(
                settings,
                scorer,
                sessions,
                paths,
                on_progress=lambda n: progress.advance(task, n),
            )
    finally:
        engine.dispose()
    _print_report(report)


def _print_report(report) -> None:  # type: ignore[no-untyped-def]
    tiers = [t.value for t in RiskTier]
    table = Table(title=f"Tiers per category ({len(report.job_ids)} images, {report.scorer})")
    table.add_column("category")
    for tier in tiers:
        table.add_column(tier, justify="right")
    for category in sorted(report.tiers):
        table.add_row(category, *[str(report.tiers[category].get(t, 0)) for t in tiers])
    table.add_row("[bold]overall[/]", *[f"[bold]{report.decisions.get(t, 0)}[/]" for t in tiers])
    console.print(table)
    if report.failures:
        failures = Table(title=f"Failures ({len(report.failures)})")
        for column in ("file", "code", "reason"):
            failures.add_column(column, overflow="fold")
        for path, code, reason in report.failures:
            failures.add_row(path, code, reason)
        console.print(failures)


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
