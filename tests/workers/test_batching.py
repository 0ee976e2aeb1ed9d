"""The consumer-side batcher with an in-memory pool and timer (delivery bookkeeping only)."""

from __future__ import annotations

import json
from typing import Any

from workers.batching import Batcher


class Message:
    def __init__(self, job_ids: list[int]) -> None:
        self.body = json.dumps([[job_ids], {}, {}])
        self.acked = 0
        self.rejected: list[bool] = []

    def decode(self) -> Any:
        return json.loads(self.body)

    def ack(self, *_: Any) -> None:
        self.acked += 1

    def reject(self, *_: Any, requeue: bool = False) -> None:
        self.rejected.append(requeue)


class Pool:
    limit = 1

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def apply_async(self, fn: Any, args: Any, **kwargs: Any) -> None:
        self.calls.append({"ids": args[0], "upcoming": args[1], **kwargs})


class Timer:
    def __init__(self) -> None:
        self.pending: list[tuple[float, Any]] = []

    def call_after(self, delay: float, fn: Any) -> object:
        self.pending.append((delay, fn))
        return object()

    def fire(self) -> None:
        pending, self.pending = self.pending, []
        for _, fn in pending:
            fn()


class Consumer:
    def __init__(self) -> None:
        self.pool, self.timer, self.connection_errors = Pool(), Timer(), ()


def batcher(batch_size: int = 4, max_wait_s: float = 60) -> tuple[Batcher, Consumer]:
    consumer = Consumer()
    return Batcher(consumer, batch_size=batch_size, max_wait_s=max_wait_s, limits=(5, 8)), consumer


def deliver(b: Batcher, *job_ids: int) -> Message:
    message = Message(list(job_ids))
    b.on_message(message, None, message.ack, message.reject)
    return message


def test_full_batch_dispatches_at_once_with_look_ahead_and_acks_after_commit():
    b, consumer = batcher()
    m1, m2 = deliver(b, 1, 2, 3), deliver(b, 4, 5, 6)
    (call,) = consumer.pool.calls
    assert call["ids"] == [1, 2, 3, 4]
    assert (call["soft_timeout"], call["timeout"]) == (5, 8)
    m3 = deliver(b, 7, 8)  # arrives while the child works: becomes the look-ahead
    call["callback"](("ok", {}))
    assert m1.acked == 1 and m2.acked == 0  # m2's jobs 5 and 6 are not committed yet
    second = consumer.pool.calls[1]  # a full batch was waiting: sent at once
    assert second["ids"] == [5, 6, 7, 8]
    second["callback"](("ok", {}))
    assert m2.acked == 1 and m3.acked == 1


def test_the_next_batch_is_passed_along_for_decoding_ahead():
    b, consumer = batcher(batch_size=2)
    deliver(b, 1, 2)
    deliver(b, 3, 4)
    deliver(b, 5)
    consumer.pool.calls[0]["callback"](("ok", {}))
    assert consumer.pool.calls[1]["ids"] == [3, 4] and consumer.pool.calls[1]["upcoming"] == [5]


def test_partial_batch_waits_for_the_timer():
    b, consumer = batcher(max_wait_s=0.05)
    m = deliver(b, 1)
    assert consumer.pool.calls == [] and len(consumer.timer.pending) == 1
    consumer.timer.fire()
    assert consumer.pool.calls[0]["ids"] == [1]
    consumer.pool.calls[0]["callback"](("ok", {}))
    assert m.acked == 1


def test_failure_or_lost_child_requeues_every_message_of_the_batch_once():
    b, consumer = batcher(batch_size=2)
    m1, m2 = deliver(b, 1), deliver(b, 2, 3)
    consumer.pool.calls[0]["error_callback"](RuntimeError("WorkerLostError"))
    assert m1.rejected == [True] and m2.rejected == [True]
    assert list(b.buffer) == []  # job 3 comes back with its redelivered message
    m3 = deliver(b, 4, 5)
    consumer.pool.calls[1]["callback"](("retry", "scorer exploded"))
    assert m3.rejected == [True] and m3.acked == 0


def test_only_one_batch_in_flight_per_pool_slot():
    b, consumer = batcher(batch_size=2)
    deliver(b, 1, 2)
    deliver(b, 3, 4)
    assert len(consumer.pool.calls) == 1
    consumer.pool.calls[0]["callback"](("ok", {}))
    assert consumer.pool.calls[1]["ids"] == [3, 4]


def test_malformed_and_empty_messages():
    b, _ = batcher()
    bad = Message([])
    bad.body = json.dumps(["not", "args"])
    b.on_message(bad, None, bad.ack, bad.reject)
    assert bad.rejected == [False]  # dropped, not requeued forever
    empty = deliver(b)
    assert empty.acked == 1
