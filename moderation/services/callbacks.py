"""Durable decision callbacks for operators: list them (the dead letters above all) and send
them again — what ``moderation callbacks``, ``/v1/admin/callbacks`` and the dashboard's
Callbacks page call. Sending itself is the ops worker's (``workers.ops.send_callback_for_job``);
the retry state lives on the job (``moderation.db.repositories.callbacks``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker

from moderation.db.repositories import callbacks as repo
from moderation.db.repositories.audit_log import record_action
from moderation.db.repositories.callbacks import STATES, CallbackRow
from moderation.db.retry import in_transaction
from moderation.db.types import utcnow

__all__ = ["STATES", "CallbackRow", "counts", "list_callbacks", "resend"]

log = logging.getLogger(__name__)


def list_callbacks(
    session: Session, *, state: str | None = None, limit: int = 100, before_id: int | None = None
) -> list[CallbackRow]:
    """Callbacks newest first (``state``: only ``pending``, ``sent``, ``dead`` or ``skipped``)."""
    if state is not None and state not in STATES:
        raise ValueError(f"unknown callback state {state!r}; one of {', '.join(STATES)}")
    return repo.list_callbacks(session, state=state, limit=limit, before_id=before_id)


def counts(session: Session) -> dict[str, int]:
    """Callbacks per state (every state present, 0 when none)."""
    found = repo.count_by_state(session)
    return {state: found.get(state, 0) for state in STATES}


def resend(
    sessions: sessionmaker[Session],
    job_ids: Sequence[int] = (),
    *,
    all_dead: bool = False,
    actor: str,
    publish: Callable[[Sequence[int]], None] | None = None,
) -> list[int]:
    """Make sent or dead callbacks due again with fresh attempts (audit-logged), then hand
    them to ``publish`` (the ops queue); when publishing fails the reaper dispatches them at
    its next run (they are due now). Returns the job ids made due."""

    def work(session: Session) -> list[int]:
        ids = repo.resend(session, utcnow(), job_ids, all_dead=all_dead)
        if ids:
            record_action(
                session,
                actor=actor,
                action="callbacks.resend",
                target_type="callbacks",
                target_id=None,
                details={"job_ids": ids[:1000], "count": len(ids), "all_dead": all_dead},
            )
        return ids

    ids = in_transaction(sessions, work)
    if ids and publish is not None:
        try:
            publish(ids)
        except Exception as exc:  # the reaper picks them up: they are due now
            log.warning(
                "could not publish %d resent callbacks (the reaper will): %s", len(ids), exc
            )
    return ids
