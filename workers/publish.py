"""Publishing job messages (API, CLI, reaper) and callback tasks (workers)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from moderation.db.repositories.jobs import mark_enqueued
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow

from .celery_app import CALLBACK_TASK, SCORE_TASK

if TYPE_CHECKING:
    from .celery_app import ModerationCelery

__all__ = ["Publisher", "broker_priority"]

log = logging.getLogger(__name__)

# Bounded: a request must not hang on a dead broker. A job whose publish fails stays in the DB
# with enqueued_at NULL and the reaper publishes it later — nothing is lost.
RETRY_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}


def broker_priority(priority: int) -> int:
    """API priority 0–9 (9 most urgent) → Redis transport priority (0 is consumed first)."""
    return 9 - min(max(priority, 0), 9)


class Publisher:
    def __init__(self, app: ModerationCelery) -> None:
        self.app = app
        self.settings = app.settings

    def publish_jobs(self, job_ids: Sequence[int], priority: int = 0) -> None:
        """One message per ``batch_size`` jobs (a batch submission costs few messages)."""
        size = self.settings.batch_size
        for start in range(0, len(job_ids), size):
            self.app.send_task(
                SCORE_TASK,
                args=[list(job_ids[start : start + size])],
                queue=self.settings.queue_name,
                priority=broker_priority(priority),
                retry=True,
                retry_policy=RETRY_POLICY,
            )

    def publish_callbacks(self, job_ids: Sequence[int]) -> None:
        for job_id in job_ids:
            self.app.send_task(
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
