"""Micro-batching inside Celery's consumer, without weakening at-least-once delivery.

Each broker message carries a list of job ids. Instead of running one task per message, the
consumer (parent process) buffers the prefetched messages' ids and sends the pool child one
batch of up to ``batch_size`` ids — as soon as that many are waiting, or when the oldest has
waited ``max_wait_ms`` — together with the ids of the *next* batch, which the child decodes in
the background while its model runs.

A message is acknowledged only after every job it carries has been committed by the child;
if the child reports a failure, dies (``WorkerLostError``) or hits the hard time limit, each
message of the batch is rejected with ``requeue=True`` (what ``task_reject_on_worker_lost``
does for ordinary tasks). Messages still buffered when the worker stops are never
acknowledged, so the broker restores them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from celery.app.task import Task

from .delivery import note_held
from .lifecycle import run_pool_batch

__all__ = ["Batcher", "BatchingTask"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Message:
    """One broker message and how many of its jobs are not yet committed."""

    ack: Callable[..., Any]
    reject: Callable[..., Any]
    remaining: int
    settled: bool = False


@dataclass(frozen=True)
class _Item:
    job_id: int
    message: _Message
    arrived: float


class Batcher:
    """The consumer-side buffer. Runs in the worker's event loop (single-threaded)."""

    def __init__(self, consumer: Any, *, batch_size: int, max_wait_s: float, limits: Any) -> None:
        self.pool = consumer.pool
        self.timer = consumer.timer
        self.connection_errors = consumer.connection_errors
        self.hostname = str(getattr(consumer, "hostname", "") or "")
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.soft_limit, self.hard_limit = limits
        self.slots = max(1, int(getattr(self.pool, "limit", 1) or 1))
        self.buffer: deque[_Item] = deque()
        self.in_flight = 0
        self._timer_entry: Any = None

    # -- receiving ---------------------------------------------------------------------------
    def on_message(
        self, message: Any, body: Any, ack: Any, reject: Any, *_: Any, **__: Any
    ) -> None:
        try:
            job_ids = _job_ids(message)
        except ValueError as exc:
            log.error("dropping malformed scoring message: %s", exc)
            reject(log, self.connection_errors, requeue=False)
            return
        if not job_ids:
            ack(log, self.connection_errors)
            return
        note_held(message, self.hostname)  # a successor of this process restores it at once
        entry = _Message(ack, reject, len(job_ids))
        now = time.monotonic()
        self.buffer.extend(_Item(j, entry, now) for j in job_ids)
        self.maybe_dispatch()

    # -- dispatching -------------------------------------------------------------------------
    def maybe_dispatch(self, waited_enough: bool = False) -> None:
        """Send batches while a pool slot is free: full ones at once, a partial one only when
        its oldest job has waited ``max_wait_s`` (``waited_enough``: the timer says so)."""
        while self.buffer and self.in_flight < self.slots:
            waited = time.monotonic() - self.buffer[0].arrived
            partial = len(self.buffer) < self.batch_size
            if partial and not waited_enough and waited < self.max_wait_s:
                self._arm_timer(self.max_wait_s - waited)
                return
            self._dispatch()
            waited_enough = False

    def _arm_timer(self, delay: float) -> None:
        if self._timer_entry is None:
            self._timer_entry = self.timer.call_after(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_entry = None
        self.maybe_dispatch(waited_enough=True)

    def _dispatch(self) -> None:
        n = min(self.batch_size, len(self.buffer))
        batch = [self.buffer.popleft() for _ in range(n)]
        upcoming = [
            item.job_id for item, _ in zip(self.buffer, range(self.batch_size), strict=False)
        ]
        self.in_flight += 1
        self.pool.apply_async(
            run_pool_batch,
            args=([item.job_id for item in batch], upcoming),
            callback=partial(self._on_result, batch),
            error_callback=partial(self._on_pool_error, batch),
            soft_timeout=self.soft_limit,
            timeout=self.hard_limit,
        )

    # -- settling ----------------------------------------------------------------------------
    def _on_result(self, batch: list[_Item], result: tuple[str, Any]) -> None:
        self.in_flight -= 1
        status, detail = result
        if status == "ok":
            for item in batch:
                item.message.remaining -= 1
                if item.message.remaining == 0 and not item.message.settled:
                    item.message.settled = True
                    item.message.ack(log, self.connection_errors)
        else:
            log.warning("batch of %d will be redelivered: %s", len(batch), detail)
            self._requeue(batch)
        self.maybe_dispatch()

    def _on_pool_error(self, batch: list[_Item], exc_info: Any) -> None:
        """The child died (``WorkerLostError``) or was killed at the hard time limit."""
        self.in_flight -= 1
        log.error("pool process lost while scoring %d jobs: %r", len(batch), exc_info)
        self._requeue(batch)
        self.maybe_dispatch()

    def _requeue(self, batch: list[_Item]) -> None:
        for item in batch:
            if not item.message.settled:
                item.message.settled = True
                item.message.reject(log, self.connection_errors, requeue=True)
        # jobs of those messages still waiting here come back with the redelivered message
        self.buffer = deque(item for item in self.buffer if not item.message.settled)


def _job_ids(message: Any) -> list[int]:
    """Job ids from a Celery protocol-2 message body ``[args, kwargs, embed]``."""
    try:
        body = message.decode()
    except Exception as exc:  # undecodable or a content type we do not accept
        raise ValueError(f"cannot decode message: {exc}") from exc
    try:
        (ids,) = body[0]
        return [int(j) for j in ids]
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"expected args [[job ids]], got {str(body)[:200]}") from exc


def batching_strategy(task: Task, app: Any, consumer: Any, **_: Any) -> Callable[..., None]:
    """Celery ``Task.Strategy`` hook: messages of the scoring task go to a ``Batcher``."""
    settings = app.settings
    batcher = Batcher(
        consumer,
        batch_size=settings.batch_size,
        max_wait_s=settings.max_wait_ms / 1000,
        limits=(settings.batch_soft_time_limit_s, settings.batch_time_limit_s),
    )
    return batcher.on_message


class BatchingTask(Task):  # type: ignore[misc]
    """The scoring task: consumed through ``batching_strategy``, never one message at a time."""

    Strategy = "workers.batching:batching_strategy"
    acks_late = True
    reject_on_worker_lost = True
