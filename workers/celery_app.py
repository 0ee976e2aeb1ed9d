"""Celery on Redis: ``make_celery(settings)`` builds the app; nothing is created on import.

Delivery is at-least-once: tasks are acknowledged late (after their DB commit), a message
whose pool child died is requeued (``task_reject_on_worker_lost``), and Redis redelivers a
message whose worker stopped refreshing it for ``visibility_timeout`` (a dead main process:
``workers.delivery``). Results live in Postgres, not in Celery.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_process_shutdown

from moderation.config import Settings
from moderation.pipeline.publish import (
    ADJUST_TASK,
    CALLBACK_TASK,
    REAP_TASK,
    RETENTION_TASK,
    ROLLUP_TASK,
    SCORE_TASK,
    broker_transport_options,
)
from moderation.services.retro import RETRO_SWEEP_TASK, RETRO_TASK

__all__ = [
    "ADJUST_TASK",
    "CALLBACK_TASK",
    "REAP_TASK",
    "RETENTION_TASK",
    "RETRO_SWEEP_TASK",
    "RETRO_TASK",
    "ROLLUP_TASK",
    "SCORE_TASK",
    "ModerationCelery",
    "make_celery",
    "ops_routes",
]


class ModerationCelery(Celery):  # type: ignore[misc]
    """A Celery app that carries the ``Settings`` it was made from."""

    settings: Settings


def ops_routes(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        SCORE_TASK: {"queue": settings.queue_name},
        CALLBACK_TASK: {"queue": settings.ops_queue_name},
        REAP_TASK: {"queue": settings.ops_queue_name},
        ROLLUP_TASK: {"queue": settings.ops_queue_name},
        ADJUST_TASK: {"queue": settings.ops_queue_name},
        RETRO_TASK: {"queue": settings.ops_queue_name},
        RETRO_SWEEP_TASK: {"queue": settings.ops_queue_name},
        RETENTION_TASK: {"queue": settings.ops_queue_name},
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The reaper always; dashboard rollups and the threshold adjuster when their interval
    is set (> 0)."""
    schedule: dict[str, dict[str, Any]] = {
        "reap-stale-claims": {"task": REAP_TASK, "schedule": float(settings.reaper_interval_s)}
    }
    if settings.rollup_interval_s:
        schedule["refresh-dashboard-rollups"] = {
            "task": ROLLUP_TASK,
            "schedule": float(settings.rollup_interval_s),
        }
    if settings.adjust_interval_s > 0:
        schedule["adjust-thresholds"] = {
            "task": ADJUST_TASK,
            "schedule": float(settings.adjust_interval_s),
        }
    if settings.bank_retro_sweep_s > 0:  # retro-matching's safety net (services.retro.sweep)
        schedule["retro-match-sweep"] = {
            "task": RETRO_SWEEP_TASK,
            "schedule": float(settings.bank_retro_sweep_s),
        }
    if settings.retention_interval_s > 0:  # stored bytes past their retention (services.retention)
        schedule["run-retention"] = {
            "task": RETENTION_TASK,
            "schedule": float(settings.retention_interval_s),
        }
    return schedule


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": broker_transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a worker waits out a Redis outage
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.queue_name,
        "task_routes": ops_routes(settings),
        "task_soft_time_limit": settings.batch_soft_time_limit_s,
        "task_time_limit": settings.batch_time_limit_s,
        # prefetch is what lets the batcher see a whole batch (plus the next) at once
        "worker_prefetch_multiplier": 2 * settings.batch_size,
        "worker_max_memory_per_child": settings.worker_max_memory_mb * 1024 or None,
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "beat_schedule": beat_schedule(settings),
        "timezone": "UTC",
    }


def make_celery(settings: Settings) -> ModerationCelery:
    """The app of the workers and beat (the API and CLI publish through
    ``moderation.pipeline.publish.publishing_client`` instead)."""
    from . import delivery, lifecycle, tasks

    app = ModerationCelery("moderation", set_as_current=False)
    app.settings = settings
    app.conf.update(celery_config(settings))
    tasks.register(app)
    app.steps["consumer"].add(delivery.KeepHeldMessagesFresh)
    app.steps["worker"].add(delivery.BrokerWatch)
    worker_process_init.connect(
        lifecycle.on_worker_process_init(app), weak=False, dispatch_uid="moderation-init"
    )
    worker_init.connect(lifecycle.on_worker_init(app), weak=False, dispatch_uid="moderation-ops")
    worker_process_shutdown.connect(
        lifecycle.on_worker_process_shutdown, weak=False, dispatch_uid="moderation-shutdown"
    )
    return app
