"""Requeueing: the reaper's pass and an operator's retry, both ending in one publish.

``reap_and_publish`` is the body of the beat task (``workers.ops``) and of ``moderation jobs
reap``; ``watch_broker`` is the ops worker's check every few seconds (Redis lost its lists,
batches redelivered); ``retry_and_publish`` is ``POST /v1/jobs/{id}/retry`` and ``moderation
jobs retry``. None of them republishes a job that a message in Redis still carries.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from sqlalchemy.orm import Session, sessionmaker

from moderation.config import Settings
from moderation.db.repositories.jobs import retry_jobs
from moderation.db.repositories.lost_work import (
    find_candidates,
    open_jobs,
    pending_callbacks,
    processing_claims,
    requeue_claims,
    settle_lost,
)
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.pipeline import broker as broker_state
from moderation.pipeline.publish import Publisher

__all__ = ["Retried", "Watched", "reap_and_publish", "retry_and_publish", "watch_broker"]

log = logging.getLogger(__name__)
PAGE = 10_000  # jobs per query of a reaper pass or a broker watch


def reap_and_publish(
    settings: Settings,
    sessions: sessionmaker[Session],
    publisher: Publisher,
    broker: redis.Redis | None = None,
) -> dict[str, int]:
    """Republish open jobs no message carries any more, re-dispatch stuck callbacks.

    The candidates are jobs queued since their publish, or processing since their claim, for
    longer than ``stale_claim_s`` (and never-published ones after a grace). Each is asked of
    the broker first (``broker.held_jobs``): a job in a waiting message is only behind a
    backlog, one in an unacknowledged message is being worked on by a live worker (it keeps
    the message fresh) — both are left alone. Only the rest is republished (a claim goes back
    to ``queued`` first, or to ``quarantined`` when it used every attempt).

    ``broker``: a Redis client (default: one on ``settings.broker_url``). When Redis cannot be
    read, nothing but never-published jobs is republished this time.
    """
    now = utcnow()
    held: frozenset[int] | None = None
    read = False
    published = quarantined = kept = 0
    after = 0
    while True:
        candidates = in_transaction(
            sessions,
            lambda s, after=after: find_candidates(
                s, now, stale_claim_s=settings.stale_claim_s, after_id=after, limit=PAGE
            ),
        )
        if not candidates:
            break
        if not read:  # once, after the first page: every later candidate was old already
            read = True
            try:
                held = broker_state.held_jobs(_client(settings, broker), settings).all
            except redis.RedisError as exc:
                log.warning("reaper: cannot read the broker (%s); publishing unpublished only", exc)
        if held is None:  # without the broker's word, only jobs that never had a message
            missing = [j for j, c in candidates.items() if not c.published]
        else:
            missing = [j for j in candidates if j not in held]
        kept += len(candidates) - len(missing)
        lost = in_transaction(
            sessions,
            lambda s, candidates=candidates, missing=missing: settle_lost(
                s,
                candidates,
                missing,
                utcnow(),
                max_attempts=settings.max_attempts,
                stale_claim_s=settings.stale_claim_s,
            ),
        )
        published += _publish(sessions, publisher, lost.republish)
        quarantined += len(lost.quarantined)
        after = max(candidates)
    callbacks = in_transaction(
        sessions, lambda s: pending_callbacks(s, now, stale_claim_s=settings.stale_claim_s)
    )
    if callbacks:
        publisher.publish_callbacks(callbacks)
    if published or quarantined or callbacks:
        log.warning(
            "reaper: republished %d jobs, quarantined %d, re-dispatched %d callbacks "
            "(%d old jobs still had their message)",
            published,
            quarantined,
            len(callbacks),
            kept,
        )
    return {"republished": published, "quarantined": quarantined, "callbacks": len(callbacks)}


def _client(settings: Settings, broker: redis.Redis | None) -> redis.Redis:
    return broker if broker is not None else broker_state.redis_client(settings.broker_url)


def _publish(
    sessions: sessionmaker[Session], publisher: Publisher, by_priority: dict[int, list[int]]
) -> int:
    published = 0
    for priority, job_ids in sorted(by_priority.items()):
        if publisher.enqueue(sessions, job_ids, priority):
            published += len(job_ids)
    return published


@dataclass(frozen=True)
class Watched:
    """One broker watch: whether Redis had lost its state, the claims whose message went
    back to the broker (now ``queued``), the jobs republished."""

    reset: bool = False
    requeued: int = 0
    republished: int = 0
    skipped: bool = False  # another ops worker watched a moment ago

    def as_dict(self) -> dict[str, int]:
        return {
            "reset": int(self.reset),
            "requeued": self.requeued,
            "republished": self.republished,
            "skipped": int(self.skipped),
        }


PUBLISH_GRACE_S = 2.0  # the API commits a job, then publishes it: not lost in between


def watch_broker(
    settings: Settings,
    sessions: sessionmaker[Session],
    publisher: Publisher,
    broker: redis.Redis | None = None,
) -> Watched:
    """The ops worker's check every ``broker_check_interval_s`` (one at a time in the fleet).

    1. Claims whose message no worker holds any more (the batch failed and was rejected, the
       worker's main process died and kombu restored its messages) go back to ``queued``:
       ``processing`` counts only jobs being worked on.
    2. When Redis lost its state (``broker.broker_reset``: restarted without persistence,
       failed over), every open job no message carries is republished at once — not after
       ``stale_claim_s``.
    """
    client = _client(settings, broker)
    if not broker_state.acquire_watch(client, settings, 0.8 * settings.broker_check_interval_s):
        return Watched(skipped=True)
    reset = broker_state.broker_reset(client, settings)
    now = utcnow()
    claims = in_transaction(sessions, lambda s: processing_claims(s, now))
    if not claims and not reset:
        return Watched()
    held = broker_state.held_jobs(client, settings, waiting=reset)
    gone = [j for j in claims if j not in held.unacked]
    requeued = in_transaction(sessions, lambda s: requeue_claims(s, gone, before=now))
    if requeued:
        log.info("broker watch: %d redelivered claims back to queued", len(requeued))
    republished = 0
    if reset:
        cutoff = now - dt.timedelta(seconds=PUBLISH_GRACE_S)
        after = 0
        while True:
            page = in_transaction(
                sessions,
                lambda s, after=after: open_jobs(s, published_before=cutoff, after_id=after),
            )
            if not page:
                break
            by_priority: dict[int, list[int]] = {}
            for job_id, priority in page.items():
                if job_id not in held.all:
                    by_priority.setdefault(priority, []).append(job_id)
            republished += _publish(sessions, publisher, by_priority)
            after = max(page)
        log.warning(
            "broker watch: Redis lost its state; republished %d jobs that had no message",
            republished,
        )
    return Watched(reset, len(requeued), republished)


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
