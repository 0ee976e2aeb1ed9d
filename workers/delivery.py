"""Delivery health inside a worker: held messages stay fresh; the ops worker watches Redis.

``KeepHeldMessagesFresh`` (every worker's consumer): kombu's Redis transport restores a
delivered, unacknowledged message to its queue once its entry in ``unacked_index`` is
``visibility_timeout`` old. This step re-stamps that entry for every message this consumer
holds (prefetched, buffered by the batcher, or in a running batch) every second — a
heartbeat per held message in Redis. A live worker's messages are therefore never
redelivered, however long its batch runs, while a dead worker's messages (its main process
killed, its host gone) come back within ``visibility_timeout`` plus kombu's restore interval
(``moderation.pipeline.publish.broker_transport_options``), restored by any other consumer or
by the worker's own restart — at once, when the restarted process finds them listed under
its node name (``restore_predecessor``). The reaper reads the same hash: a claim whose
message is held is alive (``moderation.services.requeue``).

``BrokerWatch`` (the ops worker): a thread that runs ``moderation.services.requeue.
watch_broker`` every ``broker_check_interval_s`` — Redis lost its lists → republish what was
in flight at once; a redelivered batch's jobs → back to ``queued``. A thread rather than a
beat task: the check must not wait behind a backlog of callbacks on the ops queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import bootsteps

__all__ = [
    "BrokerWatch",
    "KeepHeldMessagesFresh",
    "note_held",
    "refresh_held",
    "restore_predecessor",
]

log = logging.getLogger(__name__)


HELD_KEY = "moderation:held:"  # + node name: hash delivery tag → pid of the holding process


def _redis_channel(consumer: Any) -> Any:
    """The kombu Redis channel ``consumer`` takes task messages from (None: another
    transport)."""
    channel = getattr(getattr(consumer, "task_consumer", None), "channel", None)
    if channel is None or not hasattr(channel, "unacked_index_key"):
        return None
    return channel


def refresh_held(consumer: Any, now: float | None = None) -> int:
    """Re-stamp ``unacked_index`` for the messages ``consumer`` holds; returns how many.

    ``XX``: only entries that still exist (an acknowledged or restored message is not brought
    back). kombu keeps the consumer's delivered, not yet acknowledged tags in its channel's
    ``QoS._delivered`` (acknowledged ones wait in ``_dirty`` for removal). The tags are also
    listed under this worker's node name, so its successor can restore them at once
    (``restore_predecessor``)."""
    channel = _redis_channel(consumer)
    qos = getattr(channel, "qos", None)
    delivered = getattr(qos, "_delivered", None)
    if channel is None or delivered is None:
        return 0
    dirty = getattr(qos, "_dirty", set())
    tags = [tag for tag in list(delivered) if tag not in dirty]
    stamp = time.time() if now is None else now
    held = HELD_KEY + str(getattr(consumer, "hostname", "") or "worker")
    with channel.conn_or_acquire() as client:
        pipe = client.pipeline(transaction=False)
        for tag in tags:
            pipe.zadd(channel.unacked_index_key, {tag: stamp}, xx=True)
        pipe.delete(held)
        if tags:
            pipe.hset(held, mapping=dict.fromkeys(tags, os.getpid()))
            pipe.pexpire(held, int(channel.visibility_timeout * 2000))
        pipe.execute()
    return len(tags)


def note_held(message: Any, hostname: str) -> None:
    """List one just-delivered message under this worker's node name at once (the next
    ``refresh_held`` is up to a second away: a kill in between would leave it to the
    visibility timeout)."""
    channel = getattr(message, "channel", None)
    tag = getattr(message, "delivery_tag", None)
    if channel is None or tag is None or not hasattr(channel, "unacked_index_key"):
        return
    try:
        with channel.conn_or_acquire() as client:
            client.hset(HELD_KEY + (hostname or "worker"), tag, os.getpid())
    except Exception as exc:  # the visibility timeout covers it
        log.debug("could not list held message %s: %s", tag, exc)


def restore_predecessor(consumer: Any) -> int:
    """At start-up: put back the messages the previous process of this node name held (it
    died without acknowledging them — killed, OOM) instead of waiting out the visibility
    timeout. Tags this very process listed (a consumer restarted after a lost connection)
    are left alone. Returns how many were restored."""
    channel = _redis_channel(consumer)
    if channel is None:
        return 0
    held = HELD_KEY + str(getattr(consumer, "hostname", "") or "worker")
    me = str(os.getpid()).encode()
    with channel.conn_or_acquire() as client:
        # kombu's prefixing client does not prefix HGETALL (it does HSET, HDEL, DEL)
        listed = client.hgetall(getattr(client, "global_keyprefix", "") + held)
        theirs = [tag for tag, pid in listed.items() if pid != me]
        for tag in theirs:
            # kombu's own restore: atomic, a no-op for a tag acknowledged meanwhile; to the
            # consuming end of the list, so the batch is the next one taken
            channel.qos.restore_by_tag(tag.decode() if isinstance(tag, bytes) else tag, client)
        if theirs:
            client.hdel(held, *theirs)
    if theirs:
        log.warning("restored %d messages held by this node's previous process", len(theirs))
    return len(theirs)


class KeepHeldMessagesFresh(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer step: ``restore_predecessor`` once, then ``refresh_held`` every second."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        try:
            restore_predecessor(c)
        except Exception as exc:  # the visibility timeout brings them back instead
            log.warning("could not restore the previous process's messages: %s", exc)
        # every second: the list under the node name stays current for a successor, and the
        # stamps stay far younger than the visibility timeout
        interval = min(1.0, c.app.settings.job_visibility_timeout_s / 6)
        self.tref = c.timer.call_repeatedly(interval, self._tick, (c,), priority=10)

    def _tick(self, c: Any) -> None:
        try:
            refresh_held(c)
        except Exception as exc:  # Redis away: the consumer reconnects; next tick retries
            log.warning("could not refresh held messages: %s", exc)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop


class BrokerWatch(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker step: in a worker that consumes the ops queue, a thread running the broker
    watch every ``broker_check_interval_s`` (``workers.ops.watch_broker``)."""

    def __init__(self, w: Any, **kwargs: Any) -> None:
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        super().__init__(w, **kwargs)

    def start(self, w: Any) -> None:
        app = w.app
        consumes = getattr(app.amqp.queues, "consume_from", None) or {}
        if app.settings.ops_queue_name not in consumes:
            return
        self.thread = threading.Thread(
            target=self._run, args=(app,), name="broker-watch", daemon=True
        )
        self.thread.start()

    def _run(self, app: Any) -> None:
        from .ops import watch_broker

        interval = app.settings.broker_check_interval_s
        while not self.stopping.wait(interval):
            try:
                watch_broker(app)
            except Exception as exc:  # Redis or the DB away: the next tick tries again
                log.warning("broker watch failed: %s", exc)

    def stop(self, w: Any) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None

    shutdown = stop
