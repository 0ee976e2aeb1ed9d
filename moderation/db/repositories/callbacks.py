"""Durable decision callbacks: the retry state kept on each job (``callback_*`` columns).

A callback is ``pending`` (due at ``callback_next_at``), ``sent``, ``dead`` (given up: refused,
or not delivered within ``MODERATION_CALLBACK_MAX_AGE_S``) or ``skipped`` (below the callback
tier). A sender ``claim``s a due callback by moving ``callback_next_at`` a lease ahead, so two
dispatches of one callback (the immediate one and the reaper's) never POST it twice at once.
Which are due: ``moderation.db.repositories.lost_work.pending_callbacks`` (the reaper's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from moderation.db.models import Job

__all__ = [
    "STATES",
    "CallbackRow",
    "claim",
    "count_by_state",
    "list_callbacks",
    "mark_dead",
    "mark_retry",
    "mark_sent",
    "resend",
]

JOBS = Job.__table__
STATES = ("pending", "sent", "dead", "skipped")


@dataclass(frozen=True)
class CallbackRow:
    job_id: int
    external_id: str | None
    url: str
    state: str
    attempts: int
    next_at: dt.datetime | None
    since: dt.datetime | None
    last_error: str | None
    finished_at: dt.datetime | None


def claim(session: Session, job_id: int, now: dt.datetime, lease_s: float) -> dt.datetime | None:
    """Take a due callback for one dispatch (its next_at moves ``lease_s`` ahead: a crashed
    sender's callback is due again then); returns since when it is due, None if it is not
    pending or not due (sent meanwhile, or another dispatch holds it)."""
    row = session.execute(
        update(JOBS)
        .where(
            JOBS.c.id == job_id,
            JOBS.c.callback_state == "pending",
            JOBS.c.callback_url.is_not(None),
            or_(JOBS.c.callback_next_at.is_(None), JOBS.c.callback_next_at <= now),
        )
        .values(
            callback_next_at=now + dt.timedelta(seconds=lease_s),
            callback_attempts=JOBS.c.callback_attempts + 1,
        )
        .returning(JOBS.c.callback_since, JOBS.c.finished_at)
    ).first()
    if row is None:
        return None
    since, finished_at = row
    return since or finished_at or now


def mark_sent(session: Session, job_id: int) -> None:
    session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.callback_state == "pending")
        .values(callback_state="sent", callback_next_at=None, callback_last_error=None)
    )


def mark_retry(session: Session, job_id: int, at: dt.datetime, error: str) -> None:
    session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.callback_state == "pending")
        .values(callback_next_at=at, callback_last_error=error[:2000])
    )


def mark_dead(session: Session, job_id: int, error: str) -> None:
    session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.callback_state == "pending")
        .values(callback_state="dead", callback_next_at=None, callback_last_error=error[:2000])
    )


def list_callbacks(
    session: Session,
    *,
    state: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[CallbackRow]:
    """Jobs with a callback URL, newest first (``state`` narrows to one state)."""
    query = select(
        JOBS.c.id,
        JOBS.c.external_id,
        JOBS.c.callback_url,
        JOBS.c.callback_state,
        JOBS.c.callback_attempts,
        JOBS.c.callback_next_at,
        JOBS.c.callback_since,
        JOBS.c.callback_last_error,
        JOBS.c.finished_at,
    ).where(JOBS.c.callback_url.is_not(None), JOBS.c.callback_state.is_not(None))
    if state is not None:
        query = query.where(JOBS.c.callback_state == state)
    if before_id is not None:
        query = query.where(JOBS.c.id < before_id)
    rows = session.execute(query.order_by(JOBS.c.id.desc()).limit(limit)).all()
    return [CallbackRow(*row) for row in rows]


def count_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(JOBS.c.callback_state, func.count())
        .where(JOBS.c.callback_state.is_not(None))
        .group_by(JOBS.c.callback_state)
    ).all()
    return {str(state): int(n) for state, n in rows}


def resend(
    session: Session, now: dt.datetime, job_ids: Sequence[int] = (), *, all_dead: bool = False
) -> list[int]:
    """Make sent or dead callbacks due again at once with fresh attempts (a pending one is on
    its way already); returns the job ids that will be sent."""
    if not job_ids and not all_dead:
        return []
    which = JOBS.c.callback_state == "dead" if all_dead else JOBS.c.id.in_(list(job_ids))
    rows = session.execute(
        update(JOBS)
        .where(
            which,
            JOBS.c.callback_url.is_not(None),
            JOBS.c.callback_state.in_(("sent", "dead")),
        )
        .values(
            callback_state="pending",
            callback_attempts=0,
            callback_next_at=now,
            callback_since=now,
            callback_last_error=None,
        )
        .returning(JOBS.c.id)
    ).all()
    return sorted(int(r[0]) for r in rows)
