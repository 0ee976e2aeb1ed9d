"""Dashboard rollups: closed buckets of the windowed views, copied into tables.

A 7-day dashboard over the live views aggregates ~700 k jobs per request (docs/views.md). The
refresh copies each view's *closed* buckets into its ``rollup_*`` table (migration 0004), and
the dashboard queries (moderation/db/views.py) read buckets before ``rolled_until`` from the
rollup and the rest live. Both halves come from the same view SQL, so the numbers agree.

Closed is not final for everything: a second review made hours later changes the agreement and
the IPW weight of the first review's hour. Each refresh therefore recomputes the last
``settle`` before ``rolled_until`` as well; later changes are picked up by ``rebuild``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from moderation.db.models import ROLLUP_TABLES, RollupState

from .views import ROLLUP_EPOCH as EPOCH
from .views import rolled_until, view_clause

__all__ = ["EPOCH", "RollupRefresh", "closed_until", "refresh_rollups", "rolled_until"]


@dataclass(frozen=True)
class RollupRefresh:
    view: str
    start: dt.datetime  # buckets in [start, end) were recomputed
    end: dt.datetime
    rows: int


def closed_until(now: dt.datetime, grace: dt.timedelta) -> dt.datetime:
    """The start of the newest hour that ended at least ``grace`` ago (late commits: a worker
    stamps ``finished_at`` before its transaction commits)."""
    moment = (now - grace).astimezone(dt.UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def refresh_rollups(
    session: Session,
    now: dt.datetime,
    *,
    settle: dt.timedelta = dt.timedelta(hours=48),
    grace: dt.timedelta = dt.timedelta(minutes=5),
    rebuild: bool = False,
) -> list[RollupRefresh]:
    """Recompute every rollup from ``rolled_until - settle`` (everything if ``rebuild``) up to
    the last closed hour, in the caller's transaction. Concurrent refreshes serialise on the
    state rows (``FOR UPDATE``), so each bucket is written once."""
    end = closed_until(now, grace)
    return [
        _refresh_one(session, table, end, now, settle=settle, rebuild=rebuild)
        for table in ROLLUP_TABLES.values()
    ]


def _refresh_one(
    session: Session,
    table: Table,
    end: dt.datetime,
    now: dt.datetime,
    *,
    settle: dt.timedelta,
    rebuild: bool,
) -> RollupRefresh:
    view_name, bucket_name = table.info["view"], table.info["bucket"]
    state = session.get(RollupState, view_name, with_for_update=True)
    if state is None:
        state = RollupState(view=view_name, rolled_until=EPOCH, refreshed_at=now)
        session.add(state)
        session.flush()
    start = EPOCH if rebuild else max(EPOCH, min(state.rolled_until, end) - settle)
    bucket = table.c[bucket_name]
    session.execute(delete(table).where(bucket >= start))
    view = view_clause(view_name)
    names = [c.name for c in table.c if c.name != "id"]
    window = (view.c[bucket_name] >= start, view.c[bucket_name] < end)
    session.execute(
        insert(table).from_select(names, select(*(view.c[n] for n in names)).where(*window))
    )
    # rowcount of INSERT … SELECT is -1 with some drivers: count the (indexed) bucket range
    rows = session.scalar(select(func.count()).select_from(table).where(bucket >= start)) or 0
    state.rolled_until, state.refreshed_at = end, now
    return RollupRefresh(view_name, start, end, rows)
