"""Transactions that survive a database restart: bounded retries with exponential backoff."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_before_delay,
    wait_exponential,
)

from .session import retry_budget, session_scope

__all__ = ["in_transaction", "is_transient"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """Connection lost/refused, server restarting, SQLite busy: worth trying again."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def in_transaction(
    sessions: sessionmaker[Session], work: Callable[[Session], T], *, give_up_after_s: float = 60
) -> T:
    """Run ``work`` in one transaction; on a transient error roll back and run it again.

    ``give_up_after_s`` is capped by the sessions' own budget (``make_sessionmaker``).
    ``work`` must be safe to repeat — every pipeline transaction is (guarded updates and
    insert-or-ignore), so a retry after an unknown commit outcome writes nothing twice.
    """
    cap = retry_budget(sessions)
    if cap is not None:
        give_up_after_s = min(give_up_after_s, cap)
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential(multiplier=0.2, max=5),
        # no retry that would start past the budget: a caller's bound holds (the API's 503)
        stop=stop_before_delay(give_up_after_s),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    for attempt in retrying:
        with attempt, session_scope(sessions) as session:
            return work(session)
    raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises
