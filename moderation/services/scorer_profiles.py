"""Register what a pipeline process scores with, so the threshold adjuster adjusts that.

Each scoring process — a worker's pool process (``workers/lifecycle.py``) and ``moderation
scan`` — upserts its scorer's profile (model, backend, catalog version, per category scale,
severity and catalog base) under its worker name when it starts and then every
``refresh_interval_s`` while it lives: one small upsert. The adjuster
(``moderation.thresholds.adjusting.profile_in_force``) takes the union of the profiles seen
within ``MODERATION_ADJUST_PROFILE_WINDOW_S``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from moderation.db.repositories.scorer_profiles import ScorerProfileRecord, register_profile
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow
from moderation.scoring.profiles import profile_categories

if TYPE_CHECKING:
    import datetime as dt

    from sqlalchemy.orm import Session, sessionmaker

    from moderation.config import Settings
    from moderation.scoring.base import Scorer

__all__ = [
    "MAX_REFRESH_INTERVAL_S",
    "ProfileHeartbeat",
    "refresh_interval_s",
    "register_scorer",
    "registered_scorer",
    "start_heartbeat",
]

log = logging.getLogger(__name__)
MAX_REFRESH_INTERVAL_S = 300.0


def refresh_interval_s(settings: Settings) -> float:
    """How often a live process re-registers: every 5 minutes, and at least 4 times per
    window, so a running process never drops out of it."""
    return min(MAX_REFRESH_INTERVAL_S, settings.adjust_profile_window_s / 4)


def register_scorer(
    sessions: sessionmaker[Session],
    scorer: Scorer,
    *,
    worker: str,
    backend: str,
    now: dt.datetime | None = None,
) -> ScorerProfileRecord:
    """Upsert ``scorer``'s profile as ``worker``'s, seen now (its own transaction)."""
    categories = profile_categories(scorer)
    return in_transaction(
        sessions,
        lambda session: register_profile(
            session,
            worker=worker,
            model_id=scorer.model_id,
            backend=backend,
            catalog_version=scorer.catalog_version,
            categories=categories,
            now=now or utcnow(),
        ),
    )


class ProfileHeartbeat:
    """Calls ``register`` every ``interval_s`` on a daemon thread until ``stop``; a failed
    call is logged and tried again at the next beat (the pipeline does not depend on it)."""

    def __init__(self, register: Callable[[], object], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.register = register
        self.interval_s = interval_s
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> bool:
        """One registration; False (logged) when it failed."""
        try:
            self.register()
        except Exception as exc:
            log.warning("cannot register the scorer profile: %s", exc)
            return False
        self.beats += 1
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scorer-profile", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


@contextlib.contextmanager
def registered_scorer(
    sessions: sessionmaker[Session],
    scorer: Scorer,
    settings: Settings,
    *,
    worker: str,
) -> Iterator[ProfileHeartbeat]:
    """Register ``scorer`` now and keep its profile fresh while the block runs."""
    heartbeat = start_heartbeat(sessions, scorer, settings, worker=worker)
    try:
        yield heartbeat
    finally:
        heartbeat.stop()


def start_heartbeat(
    sessions: sessionmaker[Session], scorer: Scorer, settings: Settings, *, worker: str
) -> ProfileHeartbeat:
    """Register ``scorer`` as ``worker``'s profile now and then every ``refresh_interval_s``
    (``ProfileHeartbeat``, started; ``stop`` it when the process ends)."""
    heartbeat = ProfileHeartbeat(
        lambda: register_scorer(sessions, scorer, worker=worker, backend=settings.backend),
        refresh_interval_s(settings),
    )
    heartbeat.beat()
    heartbeat.start()
    return heartbeat
