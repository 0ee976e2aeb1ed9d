"""Requeueing: the reaper's pass and an operator's retry, both ending in one publish.

``reap_and_publish`` is the body of the beat task (``workers.ops``) and of ``moderation jobs
reap``; ``retry_and_publish`` is ``POST /v1/jobs/{id}/retry`` and ``moderation jobs retry``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db.repositories.jobs import retry_jobs
from moderation.db.repositories.lost_work import LostWork, find_lost_work
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.pipeline.publish import Publisher

__all__ = ["Retried", "reap_and_publish", "retry_and_publish"]

log = logging.getLogger(__name__)


def reap_and_publish(
    settings: Settings, sessions: sessionmaker[Session], publisher: Publisher
) -> dict[str, int]:
    """Requeue stale claims, publish never-published jobs, re-dispatch stuck callbacks."""
    lost: LostWork = in_transaction(
        sessions,
        lambda s: find_lost_work(
            s, utcnow(), stale_claim_s=settings.stale_claim_s, max_attempts=settings.max_attempts
        ),
    )
    published = 0
    for priority, job_ids in sorted(lost.republish.items()):
        if publisher.enqueue(sessions, job_ids, priority):
            published += len(job_ids)
    if lost.callbacks:
        publisher.publish_callbacks(lost.callbacks)
    if published or lost.quarantined or lost.callbacks:
        log.warning(
            "reaper: republished %d jobs, quarantined %d, re-dispatched %d callbacks",
            published,
            len(lost.quarantined),
            len(lost.callbacks),
        )
    return {
        "republished": published,
        "quarantined": len(lost.quarantined),
        "callbacks": len(lost.callbacks),
    }


@dataclass(frozen=True)
class Retried:
    requeued: list[int]  # failed/quarantined jobs now queued with a fresh attempt count
    missing: list[int]  # asked for, but unknown or not failed/quarantined
    published: bool  # False: the broker was down; the reaper publishes them later


def retry_and_publish(
    sessions: sessionmaker[Session], publisher: Publisher, job_ids: Sequence[int]
) -> Retried:
    """Requeue failed/quarantined ``job_ids`` (one transaction) and publish them."""
    done = in_transaction(sessions, lambda s: retry_jobs(s, list(job_ids)))
    published = publisher.enqueue(sessions, done) if done else True
    return Retried(list(done), sorted(set(job_ids) - set(done)), published)
