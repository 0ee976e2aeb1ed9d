"""``moderation worker`` (supervised Celery workers per GPU/CPU), ``beat`` and ``api``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ._common import CliError, check_scoring_files, console, settings_with

if TYPE_CHECKING:
    from moderation.config import Settings

__all__ = ["register"]


def worker(
    gpus: str | None = typer.Option(
        None, "--gpus", help="'all' or indices like 0,1: one worker process per GPU."
    ),
    cpu: int | None = typer.Option(None, "--cpu", min=0, help="Number of CPU worker processes."),
    ops: bool = typer.Option(
        True, "--ops/--no-ops", help="Also run the worker for callbacks and the reaper."
    ),
    beat: bool = typer.Option(False, "--beat", help="Also run the beat scheduler (one per site)."),
    loglevel: str = typer.Option("info", "--loglevel", "-l"),
) -> None:
    """Start scoring workers (one per GPU, or --cpu N), supervised; SIGTERM drains them."""
    from moderation.cli.launcher import Supervisor, parse_gpus, worker_specs

    settings = settings_with()
    try:
        gpu_list = parse_gpus(gpus) if gpus else []
    except ValueError as exc:
        raise CliError(str(exc)) from None
    cpu_count = cpu if cpu is not None else (0 if gpu_list else 1)
    specs = worker_specs(
        settings, gpus=gpu_list, cpu=cpu_count, ops=ops, beat=beat, loglevel=loglevel
    )
    if not specs:
        raise CliError("nothing to run: give --gpus, --cpu N (N > 0), --ops or --beat")
    if gpu_list or cpu_count:
        _check_scorer(settings)
    console.print(f"starting {', '.join(s.name for s in specs)}", highlight=False)
    stop_timeout = settings.batch_time_limit_s + 30
    raise typer.Exit(Supervisor(specs, stop_timeout_s=stop_timeout).run())


def _check_scorer(settings: Settings) -> None:
    """Start-up check, before any process starts: the backend, catalog and every category's
    score scale (``check_scales``) must be usable — one line, exit 2, not a crash per batch."""
    from moderation.embedders.registry import BackendUnavailable
    from moderation.scoring.catalog import CatalogError
    from moderation.scoring.scorers import ScorerConfigError, scorer_profile
    from moderation.thresholds.scales import UnknownScale

    try:
        profile = scorer_profile(settings)
    except (BackendUnavailable, CatalogError, ScorerConfigError, UnknownScale) as exc:
        raise CliError(str(exc)) from None
    check_scoring_files(settings, profile)  # the thresholds file, on the profile's scales


def beat(loglevel: str = typer.Option("info", "--loglevel", "-l")) -> None:
    """Run the Celery beat scheduler (the reaper of stale claims, periodic jobs)."""
    from moderation.cli.launcher import Supervisor, worker_specs

    specs = worker_specs(settings_with(), ops=False, beat=True, loglevel=loglevel)
    raise typer.Exit(Supervisor(specs, stop_timeout_s=10).run())


def api(
    host: str | None = typer.Option(None, "--host", help="Bind address (MODERATION_API_HOST)."),
    port: int | None = typer.Option(None, "--port", help="Port (MODERATION_API_PORT)."),
    workers: int = typer.Option(1, "--workers", min=1, help="API processes."),
) -> None:
    """Serve the upload hook API (OpenAPI at /docs)."""
    import uvicorn

    settings = settings_with(api_host=host, api_port=port)
    _fresh_multiprocess_dir()
    uvicorn.run(
        "moderation.api.app:create_app_from_env",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=workers,
        access_log=False,
    )


def _fresh_multiprocess_dir() -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR`` (several API processes share /metrics), start from an
    empty directory: files left by a previous run would be added to this run's counters."""
    import os
    from pathlib import Path

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("beat")(beat)
    app.command("api")(api)
