"""Publishing job messages (API, CLI, reaper, workers) and callback tasks.

The library publishes by task *name* through a plain Celery client built from the settings
(``publishing_client``): it never imports the Celery app package (``workers``), whose tasks
consume these names. ``workers.celery_app`` takes the names and the broker options from here,
so a publisher and a worker always agree on queue, key prefix and transport.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db.repositories.jobs import mark_enqueued
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow

__all__ = [
    "ADJUST_TASK",
    "CALLBACK_TASK",
    "REAP_TASK",
    "RETENTION_TASK",
    "ROLLUP_TASK",
    "SCORE_TASK",
    "Publisher",
    "TaskSender",
    "broker_priority",
    "broker_transport_options",
    "publishing_client",
]

log = logging.getLogger(__name__)

SCORE_TASK = "moderation.score_jobs"
CALLBACK_TASK = "moderation.send_callback"
REAP_TASK = "moderation.reap"
ROLLUP_TASK = "moderation.refresh_rollups"
ADJUST_TASK = "moderation.adjust_thresholds"
RETENTION_TASK = "moderation.run_retention"

# Bounded: a request must not hang on a dead broker. A job whose publish fails stays in the DB
# with enqueued_at NULL and the reaper publishes it later — nothing is lost.
RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


class TaskSender(Protocol):
    """What publishing needs of a Celery app: ``send_task`` by name."""

    def send_task(self, name: str, *args: Any, **kwargs: Any) -> Any: ...


def broker_priority(priority: int) -> int:
    """API priority 0–9 (9 most urgent) → Redis transport priority (0 is consumed first)."""
    return 9 - min(max(priority, 0), 9)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Redis transport options shared by publishers and workers (same keys, same timeouts)."""
    return {
        # Short: a worker refreshes the messages it holds every sixth of it
        # (``workers.delivery``), so only a dead worker's messages get this old; every
        # consumer then restores them to their queue within ``unacked_restore_interval``.
        "visibility_timeout": settings.job_visibility_timeout_s,
        "unacked_restore_interval": 2,
        "unacked_restore_throttle": 1,  # scan on every tick (kombu's default: every 10th)
        "unacked_mutex_expire": 30,  # a consumer killed mid-restore blocks restores this long
        "global_keyprefix": settings.broker_key_prefix,
        # fail fast on a dead Redis so retries (with backoff) take over instead of hanging
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
        "retry_on_timeout": True,
        "health_check_interval": 10,
    }


def publishing_client(settings: Settings) -> TaskSender:
    """A Celery client for ``settings.broker_url`` that only sends tasks by name (no tasks,
    no worker signals: the API and CLI need nothing else)."""
    from celery import Celery

    client = Celery("moderation-publisher", set_as_current=False)
    client.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.queue_name,
    )
    return client  # type: ignore[no-any-return]


class Publisher:
    """Publishes through ``client`` (default: ``publishing_client(settings)``)."""

    def __init__(self, settings: Settings, client: TaskSender | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else publishing_client(settings)

    def publish_jobs(self, job_ids: Sequence[int], priority: int = 0) -> None:
        """One message per ``batch_size`` jobs (a batch submission costs few messages)."""
        size = self.settings.batch_size
        for start in range(0, len(job_ids), size):
            self.client.send_task(
                SCORE_TASK,
                args=[list(job_ids[start : start + size])],
                queue=self.settings.queue_name,
                priority=broker_priority(priority),
                retry=True,
                retry_policy=RETRY_POLICY,
            )

    def publish_callbacks(self, job_ids: Sequence[int]) -> None:
        for job_id in job_ids:
            self.client.send_task(
                CALLBACK_TASK,
                args=[job_id],
                queue=self.settings.ops_queue_name,
                retry=True,
                retry_policy=RETRY_POLICY,
            )

    def enqueue(
        self,
        sessions: sessionmaker[Session],
        job_ids: Sequence[int],
        priority: int = 0,
        *,
        premarked: bool = False,
    ) -> bool:
        """Publish and keep ``enqueued_at`` true to it. False (and a log line) when the broker is
        down. ``premarked``: the jobs were inserted with ``enqueued_at`` already set."""
        try:
            self.publish_jobs(job_ids, priority)
        except Exception as exc:  # kombu raises several types for a dead broker
            log.warning("could not publish jobs %s (the reaper will): %s", list(job_ids), exc)
            if premarked:
                in_transaction(sessions, lambda s: mark_enqueued(s, job_ids, None))
            return False
        if not premarked:
            in_transaction(sessions, lambda s: mark_enqueued(s, job_ids, utcnow()))
        return True
