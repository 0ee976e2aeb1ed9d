"""Celery task shims: each re-reads what it needs and calls a plain function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .batching import BatchingTask
from .celery_app import (
    ADJUST_TASK,
    CALLBACK_TASK,
    REAP_TASK,
    RETENTION_TASK,
    RETRO_SWEEP_TASK,
    RETRO_TASK,
    ROLLUP_TASK,
    SCORE_TASK,
)

if TYPE_CHECKING:
    from .celery_app import ModerationCelery

__all__ = ["register"]


def register(app: ModerationCelery) -> None:
    @app.task(name=SCORE_TASK, base=BatchingTask, bind=True)
    def score_jobs(self: BatchingTask, job_ids: list[int]) -> dict[str, int]:
        """Only reached when called directly (eager/tests); workers batch via the strategy."""
        from .lifecycle import run_pool_batch

        status, detail = run_pool_batch(job_ids, [])
        if status != "ok":
            raise RuntimeError(detail)
        return dict(detail)

    @app.task(name=CALLBACK_TASK)
    def send_callback(job_id: int) -> str:
        from .ops import send_callback_for_job

        return send_callback_for_job(app, job_id)

    @app.task(name=REAP_TASK)
    def reap() -> dict[str, int]:
        from .ops import reap_and_publish

        return reap_and_publish(app)

    @app.task(name=ROLLUP_TASK)
    def refresh_rollups() -> dict[str, int]:
        from .ops import refresh_dashboard_rollups

        return refresh_dashboard_rollups(app)

    @app.task(name=RETENTION_TASK)
    def retention() -> dict[str, int]:
        from .ops import run_retention

        return run_retention(app)

    @app.task(name=RETRO_TASK)
    def retro_match(run_id: int) -> dict[str, int]:
        from .ops import retro_match_run

        return retro_match_run(app, run_id)

    @app.task(name=RETRO_SWEEP_TASK)
    def retro_sweep() -> dict[str, int]:
        from .ops import retro_match_sweep

        return retro_match_sweep(app)

    @app.task(name=ADJUST_TASK)
    def adjust_thresholds() -> dict[str, Any]:
        from .ops import adjust_from_reviews

        return adjust_from_reviews(app)
