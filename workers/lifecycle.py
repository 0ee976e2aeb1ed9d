"""Per-process life of a scoring worker: load the model once on ``worker_process_init``.

Celery's prefork parent never builds a scorer (CUDA does not survive ``fork``); each pool
child builds its own, with its own DB engine, right after it is forked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded

from moderation.db.session import make_engine, make_sessionmaker
from moderation.metrics import start_worker_server
from moderation.pipeline.batch import BatchError, run_batch
from moderation.pipeline.context import PipelineContext, build_context
from moderation.process import freeze_startup_objects
from moderation.services.scorer_profiles import ProfileHeartbeat, start_heartbeat

if TYPE_CHECKING:
    from .celery_app import ModerationCelery

__all__ = [
    "current_context",
    "on_worker_init",
    "on_worker_process_init",
    "on_worker_process_shutdown",
    "run_pool_batch",
]

log = logging.getLogger(__name__)
# The process-global state of *this* pool process: its pipeline context and the heartbeat
# that keeps its scorer profile registered (what the threshold adjuster adjusts).
_context: PipelineContext | None = None
_heartbeat: ProfileHeartbeat | None = None


def build_worker_context(app: ModerationCelery, hostname: str) -> PipelineContext:
    """Scorer + engine + decoder for one pool process (heavy imports happen here, not before)."""
    from moderation.pipeline.publish import Publisher
    from moderation.scoring.scorers import build_scorer
    from moderation.services.pattern_vectors import DbPatternVectors

    settings = app.settings
    engine = make_engine(settings.database_url, echo=settings.db_echo, pool_size=2)
    sessions = make_sessionmaker(engine)
    # pattern vectors: this host's files, else the ones another host stored in the DB
    scorer = build_scorer(settings, shared=DbPatternVectors(sessions))
    publisher = Publisher(settings, app)
    return build_context(
        settings,
        scorer,
        sessions,
        worker=f"{hostname or 'worker'}/{os.getpid()}",
        on_callbacks_due=publisher.publish_callbacks,
    )


def on_worker_process_init(app: ModerationCelery) -> Callable[..., None]:
    def init(sender: str | None = None, **_: Any) -> None:
        global _context, _heartbeat
        _context = build_worker_context(app, sender or "")
        # one profile row per worker node: its pool processes all score with the same scorer
        _heartbeat = start_heartbeat(
            _context.sessions, _context.scorer, app.settings, worker=sender or "worker"
        )
        # the pool child serves /metrics: the batches, the model and CUDA all live here
        start_worker_server(app.settings.worker_metrics_port, app.settings.worker_metrics_host)
        freeze_startup_objects()  # the model, engine and imports: never garbage
        log.info("scorer %s ready in pid %s", _context.scorer.model_id, os.getpid())

    return init


def serves_in_main_process(pool: Any) -> bool:
    """True for a pool whose tasks run in the worker's own process (threads, solo): there the
    main process serves /metrics; a prefork pool's child does (``on_worker_process_init``)."""
    from celery.concurrency import get_implementation
    from celery.concurrency.prefork import TaskPool as PreforkPool

    impl = get_implementation(pool)
    return not (isinstance(impl, type) and issubclass(impl, PreforkPool))


def on_worker_init(app: ModerationCelery) -> Callable[..., None]:
    """The ops worker (threads pool) serves its metrics — reaper, callbacks, beat tasks, the
    adjuster's recall estimate — from its one process."""

    def init(sender: Any = None, **_: Any) -> None:
        if sender is not None and serves_in_main_process(getattr(sender, "pool_cls", None)):
            start_worker_server(app.settings.worker_metrics_port, app.settings.worker_metrics_host)

    return init


def on_worker_process_shutdown(**_: Any) -> None:
    global _context, _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None
    if _context is not None:
        _context.close()
        _context = None


def current_context() -> PipelineContext:
    if _context is None:
        raise RuntimeError("worker process not initialised (worker_process_init did not run)")
    return _context


def run_pool_batch(job_ids: Sequence[int], upcoming: Sequence[int]) -> tuple[str, Any]:
    """Runs in the pool child: one batch through the pipeline.

    Returns ``("ok", counts)`` once every job is committed, or ``("retry", reason)`` when the
    batch must be delivered again. Exceptions never cross the process boundary (they may not
    pickle); a child that dies or hits the hard limit is reported by the pool instead.
    """
    try:
        outcome = run_batch(current_context(), job_ids, upcoming=upcoming)
    except BatchError as exc:
        return "retry", str(exc)
    except SoftTimeLimitExceeded:
        log.error("batch %s hit the soft time limit", list(job_ids))
        return "retry", "soft time limit exceeded"
    except Exception as exc:  # DB gone for longer than the retry budget, a bug…
        log.exception("batch %s failed", list(job_ids))
        return "retry", f"{type(exc).__name__}: {exc}"
    return "ok", {
        "scored": len(outcome.scored),
        "failed": len(outcome.failed),
        "quarantined": len(outcome.quarantined),
        "skipped": len(outcome.skipped),
    }
