"""``moderation scan DIR``: the embedded default main job (in-process, no broker)."""

from __future__ import annotations

import csv
import json
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from moderation.domain import RiskTier

from ._common import (
    CliError,
    check_backend,
    check_scoring_files,
    console,
    err_console,
    settings_with,
)

if TYPE_CHECKING:
    from moderation.pipeline.scan import FileListing, FileResult, ScanReport

__all__ = ["register"]


def scan(
    directory: Path = typer.Argument(
        ..., exists=True, help="Folder (or one file): every file in it is scanned."
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into subfolders."),
    url: str | None = typer.Option(None, "--url", help="Database URL (default: the SQLite file)."),
    backend: str | None = typer.Option(
        None, "--backend", help="A registered backend: open_nsfw (default), gme, fake."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Images per forward."),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="JSON Lines on stdout: one object per file (path, job_id, status, "
        "tier, categories, error_code, error).",
    ),
    as_csv: bool = typer.Option(False, "--csv", help="CSV on stdout: one row per file."),
) -> None:
    """Score every file in DIR through the pipeline: tiers per category, failures with reasons.

    Every regular file is submitted whatever its name (the content decides: a non-image fails
    with not_an_image); unreadable files fail with `unreadable`, FIFOs, sockets and devices
    with `not_a_file` (never opened). Subfolders need --recursive.

    Exit codes: 0 every file scored; 1 the scan finished but some files failed; 2 bad setup or
    configuration (one line on stderr, no job registered).
    """
    from moderation.db.migrate import upgrade
    from moderation.db.session import make_engine, make_sessionmaker, normalise_url
    from moderation.embedders.registry import BackendUnavailable
    from moderation.pipeline.scan import find_files, scan_paths
    from moderation.scoring.catalog import CatalogError
    from moderation.scoring.scorers import ScorerConfigError, build_scorer
    from moderation.services.pattern_vectors import DbPatternVectors
    from moderation.services.scorer_profiles import registered_scorer
    from moderation.thresholds.scales import UnknownScale

    if as_json and as_csv:
        raise CliError("choose one of --json and --csv")
    check_backend(backend)
    settings = settings_with(database_url=url, backend=backend, batch_size=batch_size)
    own_files = _database_files(normalise_url(settings.database_url))
    listing = find_files(directory, recursive=recursive, exclude=own_files)
    if not listing.entries:
        raise CliError(f"no files in {directory}" + ("" if recursive else " (use --recursive)"))
    upgrade(settings.database_url)  # the embedded default needs no separate setup step
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    out = _Output(as_json=as_json, as_csv=as_csv)
    try:
        try:
            with err_console.status(f"loading the {settings.backend} scorer…"):
                scorer = build_scorer(settings, shared=DbPatternVectors(sessions))
        except (CatalogError, ScorerConfigError, BackendUnavailable, UnknownScale) as exc:
            if isinstance(exc, CatalogError):
                raise CliError(f"invalid MODERATION_CATALOG_FILE: {exc}") from None
            raise CliError(f"MODERATION_BACKEND={settings.backend}: {exc}") from None
        check_scoring_files(settings, scorer)  # before any job is registered
        out.start(sorted(scorer.categories))
        columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
        # the threshold adjuster adjusts the categories and scales of what is scored (this)
        worker = f"scan@{socket.gethostname()}"
        progress_console = err_console if out.machine else console
        with (
            registered_scorer(sessions, scorer, settings, worker=worker),
            Progress(
                *columns,
                TimeElapsedColumn(),
                console=progress_console,
                transient=out.machine,
                disable=out.machine and not progress_console.is_terminal,
            ) as progress,
        ):
            task = progress.add_task("scoring", total=len(listing.entries))
            report = scan_paths(
                settings,
                scorer,
                sessions,
                listing.entries,
                on_progress=lambda n: progress.advance(task, n),
                on_file=out.file,
            )
    finally:
        engine.dispose()
    if out.machine:
        _print_summary(report, listing, err_console)
    else:
        _print_report(report, listing)
    if report.failed:
        raise typer.Exit(1)


def _database_files(url: Any) -> list[Path]:
    """The SQLite file the scan writes to and its journals: never scanned themselves."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    db = Path(url.database).expanduser()
    return [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]


class _Output:
    """Per-file lines as they are scored: JSON Lines or CSV on stdout (nothing else there)."""

    def __init__(self, *, as_json: bool, as_csv: bool) -> None:
        self.as_json, self.as_csv = as_json, as_csv
        self.machine = as_json or as_csv
        self._csv: Any = None
        self._categories: list[str] = []

    def start(self, categories: list[str]) -> None:
        self._categories = categories
        if self.as_csv:
            self._csv = csv.writer(sys.stdout, lineterminator="\n")
            head = ["path", "job_id", "status", "tier", "error_code", "error"]
            self._csv.writerow(head + [f"{c}:{k}" for c in categories for k in ("score", "tier")])

    def file(self, result: FileResult) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(_as_dict(result), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif self.as_csv:
            row: list[object] = [
                result.path,
                "" if result.job_id is None else result.job_id,
                result.status,
                result.tier or "",
                result.error_code or "",
                result.error or "",
            ]
            for category in self._categories:
                score, tier = result.categories.get(category, ("", ""))
                row += [score, tier]
            self._csv.writerow(row)
            sys.stdout.flush()


def _as_dict(result: FileResult) -> dict[str, object]:
    return {
        "path": result.path,
        "job_id": result.job_id,
        "status": result.status,
        "tier": result.tier,
        "categories": {
            c: {"score": s, "tier": t} for c, (s, t) in sorted(result.categories.items())
        },
        "error_code": result.error_code,
        "error": result.error,
    }


def _counts(report: ScanReport) -> str:
    return f"{report.scored} images scored, {report.failed} files failed"


def _print_summary(report: ScanReport, listing: FileListing, out: Any) -> None:
    ids = sorted(report.job_ids)
    jobs = f"; jobs {ids[0]}–{ids[-1]}" if ids else ""
    out.print(f"{report.files} files: {_counts(report)} ({report.scorer}){jobs}", highlight=False)
    for path, why in listing.skipped:
        out.print(f"not scanned: {escape(str(path))}: {why}", highlight=False)


def _print_report(report: ScanReport, listing: FileListing) -> None:
    tiers = [t.value for t in RiskTier]
    table = Table(title=f"Tiers per category ({_counts(report)}, {report.scorer})")
    table.add_column("category")
    for tier in tiers:
        table.add_column(tier, justify="right")
    for category in sorted(report.tiers):
        table.add_row(category, *[str(report.tiers[category].get(t, 0)) for t in tiers])
    table.add_row("[bold]overall[/]", *[f"[bold]{report.decisions.get(t, 0)}[/]" for t in tiers])
    console.print(table)
    if report.failures:
        failures = Table(title=f"Failures ({len(report.failures)})")
        for column in ("file", "job", "code", "reason"):
            failures.add_column(column, overflow="fold")
        for f in report.failures:
            job = "" if f.job_id is None else str(f.job_id)
            failures.add_row(escape(f.path), job, f.error_code or "", escape(f.error or ""))
        console.print(failures)
    _print_summary(report, listing, console)
    console.print("one line per file with its job id: --json or --csv", style="dim")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan)
