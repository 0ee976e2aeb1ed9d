"""``moderation calibrate``: labelled images → a calibrated threshold version per category."""

from __future__ import annotations

import datetime as dt
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from moderation.config import Settings

from ._common import CliError, console, err_console, settings_with
from .thresholds import ACTOR_OPTION, URL_OPTION, default_actor, open_session

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from moderation.scoring.base import Scorer
    from moderation.thresholds.calibration import CalibrationRun
    from moderation.thresholds.labels import LabelRow

__all__ = ["calibrate_command", "register"]

STRATEGY_NAMES = ("recall_target", "precision_target", "roc_optimal", "mean_std", "percentile")


def _scorer_factory(settings: Settings) -> Callable[[], Scorer]:
    """Builds the configured scorer (``MODERATION_BACKEND`` …) when image files need scoring."""

    def build() -> Scorer:
        from moderation.scoring.scorers import ScorerConfigError, build_scorer

        try:
            return build_scorer(settings)
        except ScorerConfigError as exc:
            raise CliError(str(exc)) from None

    return build


def _print_table(run: CalibrationRun) -> None:
    from moderation.thresholds.report import threshold_rows

    table = Table(title=f"calibration: {run.strategy}")
    columns = (
        "category",
        "n",
        "positives",
        "threshold",
        "precision",
        "recall",
        "fpr",
        "previous",
        "version",
        "status",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in threshold_rows(run):
        table.add_row(*(row[c] for c in columns))
    console.print(table)
    for row in threshold_rows(run):
        console.print(f"{row['category']}: {row['bound']}", highlight=False)
    for s in run.skipped:
        err_console.print(f"[yellow]skipped[/] line {s.line} {s.ref}: {s.reason}", highlight=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("scoring images"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def calibrate_command(
    labels: Path = typer.Argument(
        ...,
        help="CSV with columns category, is_violation and job_id / sha256 / path (image) / "
        "score (a labelled score).",
    ),
    strategy: str = typer.Option(
        "recall_target", "--strategy", help=f"One of: {', '.join(STRATEGY_NAMES)}."
    ),
    recall: float = typer.Option(0.95, "--recall", help="recall_target: recall to guarantee."),
    delta: float = typer.Option(0.05, "--delta", help="recall_target: allowed failure rate."),
    precision: float = typer.Option(0.9, "--precision", help="precision_target: precision."),
    category: list[str] | None = typer.Option(None, "--category", help="Only these categories."),
    scale: str | None = typer.Option(None, "--scale", help="Score scale of stored scores."),
    report: Path | None = typer.Option(None, "--report", help="Write report.md/.html + PNGs."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compute and report; write nothing."),
    appeals: bool = typer.Option(
        False,
        "--appeals",
        help="Add decided appeals as labels weighted MODERATION_APPEAL_EVIDENCE_WEIGHT.",
    ),
    reason: str | None = typer.Option(None, "--reason", help="Reason stored with the versions."),
    actor: str | None = ACTOR_OPTION,
    url: str | None = URL_OPTION,
) -> None:
    """Calibrate thresholds from labelled images: one new threshold version per category.

    Scores the images (stored scores for job_id/sha256 rows), chooses a threshold per category
    with --strategy and appends a version with its evidence. All categories are written or
    none: exit status 2 when any cannot be calibrated (e.g. too few violations for --recall).
    """
    from moderation.thresholds.calibration import CalibrationError
    from moderation.thresholds.labels import read_labels

    if strategy not in STRATEGY_NAMES:
        raise CliError(f"unknown --strategy {strategy!r}; choose from {', '.join(STRATEGY_NAMES)}")
    if report is not None and importlib.util.find_spec("matplotlib") is None:
        raise CliError("--report needs matplotlib: pip install 'moderation[report]'")
    settings = settings_with(database_url=url)
    params = {"recall": recall, "delta": delta, "precision": precision}
    try:
        rows = read_labels(labels)
        # One transaction: versions, audit entries and the report land together or not at all.
        with open_session(url) as session:
            run = _run(
                session, rows, settings, strategy, params, scale, category, str(labels),
                apply=not dry_run, actor=default_actor(actor), reason=reason,
                appeal_weight=settings.appeal_evidence_weight if appeals else None,
            )  # fmt: skip
            _print_table(run)
            if report is not None:
                _write_report(run, report)
    except CalibrationError as exc:
        raise CliError(str(exc)) from None
    if run.failed:
        details = "; ".join(f"{c.category}: {c.error}" for c in run.failed)
        raise CliError(
            f"{len(run.failed)} of {len(run.categories)} categories not calibrated, "
            f"nothing written: {details}"
        )
    console.print("dry run: nothing written" if dry_run else "threshold versions written")


def _run(
    session: Session,
    rows: list[LabelRow],
    settings: Settings,
    strategy: str,
    params: dict[str, float],
    scale: str | None,
    categories: list[str] | None,
    labels_file: str,
    *,
    apply: bool,
    actor: str,
    reason: str | None,
    appeal_weight: float | None = None,
) -> CalibrationRun:
    from moderation.services.thresholds import calibrate

    with _progress() as progress:
        task = progress.add_task("scoring", total=None)
        return calibrate(
            session,
            rows,
            apply=apply,
            actor=actor,
            appeal_weight=appeal_weight,
            policy=settings.policy,
            reason=reason,
            strategy=strategy,
            params=params,
            scale=scale,
            scorer_factory=_scorer_factory(settings),
            categories=categories,
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
            working_pixels=settings.decode_pixels,
            batch_size=settings.batch_size,
            labels_file=labels_file,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


def _write_report(run: CalibrationRun, report: Path) -> None:
    from moderation.thresholds.report import write_report

    try:
        files = write_report(run, report, now=dt.datetime.now(dt.UTC))
    except OSError as exc:
        raise CliError(f"cannot write the report to {report}: {exc}") from None
    console.print(f"report: {files.html} ({len(files.images)} plots)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_command)
