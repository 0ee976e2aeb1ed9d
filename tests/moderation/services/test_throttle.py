"""The failed-authentication limiter: a sliding window per client address, bounded memory."""

from __future__ import annotations

import pytest

from moderation.services.throttle import FailureLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_starts_at_max_failures_and_ends_with_the_window():
    clock = Clock()
    limiter = FailureLimiter(3, 60, clock)
    for _ in range(2):
        limiter.record_failure("a")
        assert limiter.retry_after("a") is None
    clock.now += 10
    limiter.record_failure("a")
    assert limiter.retry_after("a") == 50  # the first failure leaves the window at +60
    assert limiter.retry_after("b") is None  # other addresses are not affected
    clock.now += 49.5
    assert limiter.retry_after("a") == 1
    clock.now += 0.5
    assert limiter.retry_after("a") is None and limiter.failures("a") == 1  # the +10 one
    clock.now += 10
    assert limiter.failures("a") == 0


def test_only_the_newest_max_failures_are_kept():
    clock = Clock()
    limiter = FailureLimiter(2, 30, clock)
    limiter.record_failure("a")
    limiter.record_failure("a")
    clock.now += 20
    limiter.record_failure("a")  # the window slides with the newest two (t+0 and t+20)
    assert limiter.failures("a") == 2
    assert limiter.retry_after("a") == 10


def test_memory_is_bounded_by_forgetting_the_least_recent_address():
    clock = Clock()
    limiter = FailureLimiter(1, 60, clock, max_keys=2)
    for key in ("a", "b", "a", "c"):
        limiter.record_failure(key)
    assert limiter.failures("b") == 0  # evicted: "a" failed again more recently
    assert limiter.retry_after("a") is not None and limiter.retry_after("c") is not None


@pytest.mark.parametrize("args", [(0, 60), (1, 0), (1, -1)])
def test_nonsense_limits_are_refused(args):
    with pytest.raises(ValueError):
        FailureLimiter(*args, Clock())
