"""Held messages in kombu's real Redis transport: a worker's heartbeat keeps them from being
redelivered, a dead worker's come back (after the visibility timeout, or at once through its
successor), and the broker watch puts a redelivered batch's claims back to ``queued``."""

from __future__ import annotations

import datetime as dt
import time
import types
import uuid

import pytest
import redis
from kombu import Connection
from sqlalchemy import update

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import Job
from moderation.db.session import session_scope
from moderation.db.types import utcnow
from moderation.domain import JobStatus
from moderation.pipeline import broker as broker_state
from moderation.pipeline.intake import Submission, register_submissions
from moderation.pipeline.publish import Publisher, broker_transport_options
from moderation.services import requeue
from tests.fakes import png_bytes
from workers.delivery import HELD_KEY, refresh_held, restore_predecessor


@pytest.fixture
def settings(settings_factory, redis_prefix, db_url):
    return settings_factory(
        database_url=db_url,
        broker_key_prefix=redis_prefix,
        queue_name=f"dl-{uuid.uuid4().hex[:6]}.score",
        ops_queue_name=f"dl-{uuid.uuid4().hex[:6]}.ops",
        job_visibility_timeout_s=10,
    )


@pytest.fixture
def channel(settings):
    conn = Connection(settings.broker_url, transport_options=broker_transport_options(settings))
    chan = conn.channel()
    yield chan
    chan.qos._delivered.clear()  # nothing to restore on close: the test decides
    conn.release()


@pytest.fixture
def client(settings):
    c = redis.Redis.from_url(settings.broker_url)
    yield c
    c.close()


def consumer_of(channel, node: str = "cpu9@test"):
    """What ``refresh_held``/``restore_predecessor`` read of a Celery consumer."""
    task_consumer = types.SimpleNamespace(channel=channel)
    return types.SimpleNamespace(task_consumer=task_consumer, hostname=node)


def deliver(settings, channel, job_ids: list[int]):
    """Publish one scoring message and take it as a worker does (now held: unacked)."""
    Publisher(settings).publish_jobs(job_ids, priority=5)
    for _ in range(50):
        message = channel.basic_get(settings.queue_name, no_ack=False)
        if message is not None:
            return message
        time.sleep(0.05)
    raise AssertionError("no message delivered")


def age(client, settings, tag: str, seconds: float) -> None:
    """Pretend the message was last stamped ``seconds`` ago."""
    key = f"{settings.broker_key_prefix}unacked_index"
    client.zadd(key, {tag: time.time() - seconds}, xx=True)


def test_a_held_message_is_kept_fresh_and_never_redelivered(settings, channel, client):
    message = deliver(settings, channel, [1, 2, 3])
    assert broker_state.held_jobs(client, settings).unacked == {1, 2, 3}
    age(client, settings, message.delivery_tag, 60)  # older than the 10 s visibility timeout
    assert refresh_held(consumer_of(channel)) == 1  # the worker's heartbeat
    channel.qos.restore_visible(num=None, interval=1)  # what every consumer runs every 2 s
    held = broker_state.held_jobs(client, settings)
    assert held.unacked == {1, 2, 3} and held.waiting == frozenset()


def test_a_dead_workers_message_comes_back_after_the_visibility_timeout(settings, channel, client):
    message = deliver(settings, channel, [4, 5])
    age(client, settings, message.delivery_tag, 60)  # nobody refreshed it: its worker died
    channel.qos.restore_visible(num=None, interval=1)
    held = broker_state.held_jobs(client, settings)
    assert held.waiting == {4, 5} and held.unacked == frozenset()


def test_a_restarted_worker_restores_its_predecessors_messages_at_once(settings, channel, client):
    mine = deliver(settings, channel, [6])
    theirs = deliver(settings, channel, [7, 8])
    held = f"{settings.broker_key_prefix}{HELD_KEY}cpu9@test"
    # the previous process of node cpu9@test (another pid) held ``theirs``; this one ``mine``
    refresh_held(consumer_of(channel))
    client.hset(held, theirs.delivery_tag, 1)
    assert restore_predecessor(consumer_of(channel)) == 1
    state = broker_state.held_jobs(client, settings)
    assert state.waiting == {7, 8} and state.unacked == {6}
    assert client.hkeys(held) == [mine.delivery_tag.encode()]
    assert restore_predecessor(consumer_of(channel)) == 0


def test_the_broker_watch_requeues_claims_whose_message_no_worker_holds(
    settings, channel, client, db_url
):
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        ids = register_submissions(
            s,
            [Submission.from_bytes(png_bytes((i, 1, 1))) for i in range(3)],
            utcnow() - dt.timedelta(seconds=60),
        )
        s.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(status=JobStatus.PROCESSING, attempts=1, started_at=utcnow())
        )
    deliver(settings, channel, ids[:1])  # a worker holds the first job's message
    Publisher(settings).publish_jobs(ids[1:2])  # the second's went back to the queue
    publisher = Publisher(settings)
    first = requeue.watch_broker(settings, sessions, publisher, client)
    assert first.reset  # the first check ever: the sentinel was not there
    # the third job had no message at all: republished; the second waits in the queue
    assert first.requeued == 2 and first.republished == 1
    with session_scope(sessions) as s:
        status = {j: s.get(Job, j).status for j in ids}
    assert status == {
        ids[0]: JobStatus.PROCESSING,
        ids[1]: JobStatus.QUEUED,
        ids[2]: JobStatus.QUEUED,
    }
    time.sleep(0.8 * settings.broker_check_interval_s + 0.1)  # the watch lock expires
    again = requeue.watch_broker(settings, sessions, publisher, client)
    assert not again.reset and again.requeued == 0 and again.republished == 0
    assert broker_state.held_jobs(client, settings).all == set(ids)
    engine.dispose()
