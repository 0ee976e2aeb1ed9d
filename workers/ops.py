"""Bodies of the maintenance tasks: the reaper and decision callbacks."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from moderation import metrics
from moderation.callbacks import (
    CallbackRefused,
    CallbackRejected,
    deliver_callback,
    schedule_retry,
)
from moderation.db.repositories import callbacks as callbacks_repo
from moderation.db.repositories.job_views import JobView, get_job_view
from moderation.db.retry import in_transaction
from moderation.db.rollups import refresh_rollups
from moderation.db.session import make_engine, make_sessionmaker
from moderation.db.types import utcnow
from moderation.pipeline.publish import Publisher
from moderation.services import requeue, retention

if TYPE_CHECKING:
    from moderation.config import Settings

    from .celery_app import ModerationCelery

__all__ = [
    "adjust_from_reviews",
    "callback_payload",
    "reap_and_publish",
    "refresh_dashboard_rollups",
    "run_retention",
    "send_callback_for_job",
    "watch_broker",
]

log = logging.getLogger(__name__)


@functools.cache
def _sessions(database_url: str, echo: bool) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(database_url, echo=echo, pool_size=4))


def sessions_for(settings: Settings) -> sessionmaker[Session]:
    return _sessions(settings.database_url, settings.db_echo)


def run_retention(app: ModerationCelery) -> dict[str, int]:
    """The beat task's body: ``moderation.services.retention.run_retention`` (in batches)."""
    report = retention.run_retention(app.settings, sessions_for(app.settings))
    metrics.record_task_success("retention")
    return {
        "purged_clear": report.purged_clear,
        "purged_reviewed": report.purged_reviewed,
        "purged_bytes": report.purged_bytes,
        "errors": report.errors,
    }


def refresh_dashboard_rollups(app: ModerationCelery) -> dict[str, int]:
    """Copy newly closed dashboard buckets into the rollup tables (rows written per view)."""
    settings = app.settings
    done = in_transaction(
        sessions_for(settings),
        lambda s: refresh_rollups(
            s, utcnow(), settle=dt.timedelta(hours=settings.rollup_settle_hours)
        ),
    )
    metrics.record_task_success("rollup")
    return {r.view: r.rows for r in done}


def reap_and_publish(app: ModerationCelery) -> dict[str, int]:
    """The beat task's body: ``moderation.services.requeue.reap_and_publish``."""
    settings = app.settings
    done = requeue.reap_and_publish(settings, sessions_for(settings), Publisher(settings, app))
    metrics.record_reap(**done)
    metrics.record_task_success("reap")
    return done


def watch_broker(app: ModerationCelery) -> dict[str, int]:
    """The broker watch's body (``workers.delivery.BrokerWatch``, every
    ``broker_check_interval_s``): ``moderation.services.requeue.watch_broker``."""
    settings = app.settings
    done = requeue.watch_broker(settings, sessions_for(settings), Publisher(settings, app))
    if not done.skipped:
        metrics.record_broker_watch(
            reset=done.reset, requeued=done.requeued, republished=done.republished
        )
    metrics.record_task_success("watch")
    return done.as_dict()


def adjust_from_reviews(app: ModerationCelery) -> dict[str, Any]:
    """The beat task's body: ``settings.adjuster`` over every reviewed category of what the
    pipeline scores (the scorer profiles the workers registered, else this process's settings,
    which the log then says); a changed proposal becomes a new threshold version
    (``moderation.thresholds.adjusting``)."""
    from moderation.thresholds.adjusting import run_configured

    run = run_configured(app.settings, sessions_for(app.settings), now=utcnow())
    # the fallback adjusts what this process would score, which may not be what is scored
    log.log(
        logging.WARNING if run.source == "settings" else logging.INFO, "adjuster: %s", run.profile
    )
    for category, why in run.skipped.items():
        log.warning("adjuster: %s skipped: %s", category, why)
    for o in run.outcomes:
        if o.version_id is not None:
            log.warning(
                "adjuster: %s %.4f → %.4f (version %s): %s",
                o.category,
                o.proposal.previous,
                o.proposal.value,
                o.version_id,
                o.proposal.reason,
            )
    if app.settings.adjuster == "recall_target":
        estimates = {o.category: metrics.recall_in_force(o.proposal.evidence) for o in run.outcomes}
        metrics.record_recall(
            app.settings.recall_target, {c: e for c, e in estimates.items() if e is not None}
        )
    metrics.record_task_success("adjust")
    return run.as_dict()


def callback_payload(view: JobView) -> dict[str, Any]:
    """What a receiver gets: enough to act without calling back (it may dedupe on job_id)."""
    return {
        "job_id": view.id,
        "external_id": view.external_id,
        "status": str(view.status),
        "tier": view.tier,
        "action": view.action,
        "category": view.category,
        "policy": view.policy,
        "threshold_versions": view.threshold_versions,
        "scores": {s.category: {"score": s.score, "tier": s.tier} for s in view.scores},
        "finished_at": view.finished_at.isoformat() if view.finished_at else None,
        # action rules (issue 18 part 1): {action, escalate, rules_version, categories}
        "enforcement": dict(view.enforcement) if view.enforcement else None,
    }


def send_callback_for_job(app: ModerationCelery, job_id: int) -> str:
    """One dispatch of the decision callback of ``job_id`` if it is due (durable callbacks:
    ``moderation.db.repositories.callbacks``): claimed, POSTed (``callback_max_attempts`` quick
    tries), then marked sent, retried later on the exponential schedule, or dead — refused
    (4xx, redirect, a non-public address), or the next try would fall past
    ``callback_max_age_s``."""
    settings = app.settings
    sessions = sessions_for(settings)
    # the longest a dispatch may take (each POST's timeout, the backoff between them, capped
    # at 2 s) and a margin: a dispatch lost with its worker is due again after it
    lease_s = settings.callback_max_attempts * (settings.callback_timeout_s + 2.0) + 10.0
    now = utcnow()
    since = in_transaction(sessions, lambda s: callbacks_repo.claim(s, job_id, now, lease_s))
    if since is None:
        return "nothing to send"
    view = in_transaction(sessions, lambda s: get_job_view(s, job_id))
    if view is None or not view.callback_url:  # pragma: no cover - claimed rows have a URL
        return "nothing to send"
    secret = settings.callback_secret.get_secret_value() if settings.callback_secret else None
    started = time.perf_counter()
    try:
        status = deliver_callback(
            view.callback_url,
            callback_payload(view),
            allowlist=settings.callback_allowlist,
            secret=secret,
            timeout_s=settings.callback_timeout_s,
            max_attempts=settings.callback_max_attempts,
            max_backoff_s=2.0,
        )
    except Exception as exc:
        seconds = time.perf_counter() - started
        error = f"{type(exc).__name__}: {exc}"
        retry_at = None
        if not isinstance(exc, (CallbackRefused, CallbackRejected)):
            retry_at = schedule_retry(
                view.callback_attempts,
                now=utcnow(),
                since=since,
                base_s=settings.callback_retry_base_s,
                cap_s=settings.callback_retry_cap_s,
                max_age_s=settings.callback_max_age_s,
            )
        if retry_at is None:
            log.warning("callback for job %s is a dead letter: %s", job_id, error)
            in_transaction(sessions, lambda s: callbacks_repo.mark_dead(s, job_id, error))
            metrics.record_callback("dead", seconds)
            return f"dead: {exc}"
        log.info("callback for job %s failed, retry at %s: %s", job_id, retry_at, error)
        in_transaction(sessions, lambda s: callbacks_repo.mark_retry(s, job_id, retry_at, error))
        metrics.record_callback("failed", seconds)
        return f"failed, retry at {retry_at.isoformat()}: {exc}"
    in_transaction(sessions, lambda s: callbacks_repo.mark_sent(s, job_id))
    metrics.record_callback("sent", time.perf_counter() - started)
    return f"sent ({status})"


def retro_match_run(app: ModerationCelery, run_id: int) -> dict[str, int]:
    """Run (or resume) retro-matching run ``run_id`` and publish the callbacks it made due."""
    from moderation.services import retro

    settings = app.settings
    outcome = retro.resume(sessions_for(settings), settings, run_id)
    if outcome.callbacks_due:
        Publisher(settings, app).publish_callbacks(outcome.callbacks_due)
    run = outcome.run
    return {"run": run.id, "scanned": run.scanned, "matched": run.matched,
            "redecided": run.redecided}  # fmt: skip


def retro_match_sweep(app: ModerationCelery) -> dict[str, int]:
    """Start runs for entries added or re-enabled without one, resume unfinished runs."""
    from moderation.services import retro

    settings = app.settings
    outcomes = retro.sweep(sessions_for(settings), settings)
    due = [job for o in outcomes for job in o.callbacks_due]
    if due:
        Publisher(settings, app).publish_callbacks(due)
    return {"runs": len(outcomes), "redecided": sum(o.run.redecided for o in outcomes)}
