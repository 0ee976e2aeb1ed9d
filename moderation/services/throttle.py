"""Failed-authentication limits per client address (pure: the clock is passed in).

One ``FailureLimiter`` per process: the API counts bad bearer tokens, the dashboard counts
failed logins. After ``max_failures`` failures inside ``window_s`` seconds an address is
refused (HTTP 429 with ``Retry-After``) until its oldest counted failure leaves the window.
The counts live in memory: each process counts on its own and a restart forgets them.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["FailureLimiter"]


class FailureLimiter:
    """Sliding-window failure counts per key (a client address), bounded in memory."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float],
        *,
        max_keys: int = 10_000,
    ) -> None:
        if max_failures < 1 or not window_s > 0 or max_keys < 1:
            raise ValueError("need max_failures >= 1, window_s > 0 and max_keys >= 1")
        self.max_failures, self.window_s, self._clock = max_failures, window_s, clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or None when it may try now."""
        now = self._clock()
        with self._lock:
            times = self._live(key, now)
            if times is None or len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[0] + self.window_s - now))

    def record_failure(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            times = self._live(key, now)
            if times is None:
                times = self._failures[key] = deque()
                if len(self._failures) > self._max_keys:
                    self._failures.popitem(last=False)  # forget the longest-known address
            self._failures.move_to_end(key)
            times.append(now)
            while len(times) > self.max_failures:
                times.popleft()

    def failures(self, key: str) -> int:
        """Failures of ``key`` still inside the window."""
        with self._lock:
            times = self._live(key, self._clock())
            return len(times) if times is not None else 0
