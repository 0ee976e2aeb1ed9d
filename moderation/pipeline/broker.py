"""What the broker (Redis, kombu's transport) holds right now: which jobs still have a message.

The reaper and the broker watch (``moderation.services.requeue``) republish a job only when
no message carries it any more — neither one waiting in a queue list nor one a worker holds
(delivered, not yet acknowledged: kombu's ``unacked`` hash). A long backlog is therefore never
republished, however old it is.

kombu's Redis layout (``kombu.transport.redis``): a queue is one list per priority step
(``name`` and ``name + "\\x06\\x16" + step``), published with LPUSH and consumed with BRPOP;
a delivered message moves to the hash ``unacked`` (tag → ``[payload, exchange, routing_key]``)
and the sorted set ``unacked_index`` (tag → delivery time), from which any consumer restores
it to its queue once it is ``visibility_timeout`` old. Every key carries the
``global_keyprefix`` (``MODERATION_BROKER_KEY_PREFIX``).

A Redis restart without persistence loses all of it. ``broker_reset`` notices: a sentinel key
holds the server's ``run_id``; a missing key or another ``run_id`` (a restart, a failover, an
older snapshot restored) means the messages of that moment may be gone.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from moderation.config import Settings
from moderation.metrics import broker_queue_keys

from .publish import SCORE_TASK

__all__ = [
    "Held",
    "acquire_watch",
    "broker_reset",
    "held_jobs",
    "message_job_ids",
    "redis_client",
]

log = logging.getLogger(__name__)

SENTINEL_KEY = "moderation:broker-run-id"
WATCH_LOCK_KEY = "moderation:broker-watch-lock"
UNACKED_KEY = "unacked"  # kombu's default ``unacked_key``
CHUNK = 1000  # messages per LRANGE/HSCAN round trip


@functools.cache
def redis_client(url: str) -> redis.Redis:
    """A plain redis-py client on the broker (bounded timeouts: never hang a reaper pass)."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


@dataclass(frozen=True)
class Held:
    """Job ids carried by scoring messages: ``waiting`` in a queue list, ``unacked`` held by a
    worker (or by a dead one, until kombu restores the message to its list)."""

    waiting: frozenset[int]
    unacked: frozenset[int]

    @property
    def all(self) -> frozenset[int]:
        return self.waiting | self.unacked


def message_job_ids(payload: Any) -> list[int]:
    """Job ids of one kombu payload of the scoring task (other tasks or garbage: none)."""
    try:
        if payload["headers"]["task"] != SCORE_TASK:
            return []
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return [int(j) for j in args[0]]
    except (KeyError, TypeError, ValueError, IndexError):
        return []


def _unacked(client: redis.Redis, prefix: str) -> set[int]:
    ids: set[int] = set()
    for _tag, raw in client.hscan_iter(f"{prefix}{UNACKED_KEY}", count=CHUNK):
        try:
            payload = json.loads(raw)[0]
        except (TypeError, ValueError, IndexError):
            continue
        ids.update(message_job_ids(payload))
    return ids


def _waiting(client: redis.Redis, keys: Iterable[str]) -> set[int]:
    """Read each list left (newest) to right in chunks. LPUSH shifts what is unread further
    right and BRPOP takes from the right end, so no message present throughout is skipped; one
    consumed meanwhile is in ``unacked`` by the second read of it."""
    ids: set[int] = set()
    for key in keys:
        start = 0
        while True:
            chunk = client.lrange(key, start, start + CHUNK - 1)
            for raw in chunk:
                try:
                    ids.update(message_job_ids(json.loads(raw)))
                except (TypeError, ValueError):
                    continue
            if len(chunk) < CHUNK:
                break
            start += CHUNK
    return ids


def held_jobs(client: redis.Redis, settings: Settings, *, waiting: bool = True) -> Held:
    """The job ids every scoring message in Redis carries (``waiting=False``: only the
    unacknowledged ones, a small hash — enough to tell a live claim from a redelivered one).

    ``unacked`` is read before and after the lists, so a message that moves from a list to a
    worker during the read is seen in one of them."""
    prefix = settings.broker_key_prefix
    before = _unacked(client, prefix)
    lists = _waiting(client, broker_queue_keys(settings.queue_name, prefix)) if waiting else set()
    after = _unacked(client, prefix)
    return Held(frozenset(lists), frozenset(before | after))


def broker_reset(client: redis.Redis, settings: Settings) -> bool:
    """True once after Redis lost (or may have lost) its messages: the sentinel holding the
    server's ``run_id`` is gone (a restart without persistence) or names another server run
    (a restart from an older snapshot, a failover). The first check ever also says True —
    harmless: the caller then republishes only jobs no message carries."""
    key = f"{settings.broker_key_prefix}{SENTINEL_KEY}"
    run_id = str(client.info("server")["run_id"])
    seen = client.get(key)
    if seen is not None and seen.decode() == run_id:
        return False
    client.set(key, run_id)
    if seen is not None:
        log.warning("broker: Redis run changed (%s → %s)", seen.decode(), run_id)
    return True


def acquire_watch(client: redis.Redis, settings: Settings, ttl_s: float) -> bool:
    """One broker watch at a time across every ops worker (a lock that expires by itself)."""
    key = f"{settings.broker_key_prefix}{WATCH_LOCK_KEY}"
    return bool(client.set(key, uuid.uuid4().hex, nx=True, px=max(100, int(ttl_s * 1000))))
