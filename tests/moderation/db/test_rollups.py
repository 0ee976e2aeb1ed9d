"""Rollups: dashboard answers read half from rollup tables equal the answers read all live."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from moderation.db import make_sessionmaker
from moderation.db import views as v
from moderation.db.models import ROLLUP_TABLES, Review, RollupState
from moderation.db.rollups import EPOCH, closed_until, refresh_rollups
from moderation.domain import ReviewLabel
from tests.dashboard_seed import NOW, at, seed_dashboard

WINDOWS = [
    v.TimeWindow.last(2, NOW),
    v.TimeWindow.last(24, NOW),
    v.TimeWindow.last(24 * 7, NOW),
    v.TimeWindow(at(11, 15), NOW),  # starts mid-hour, ends in the open hour
    v.TimeWindow(at(9, 0), at(11, 45)),  # ends before the rolled boundary
]
QUERIES = [
    v.throughput_per_minute,
    v.tier_mix_hourly,
    v.review_latency,
    v.reviewer_agreement,
    v.review_estimates,
]


@pytest.fixture
def session(engine):
    factory = make_sessionmaker(engine)
    with factory() as s:
        ids = seed_dashboard(s)
        s.info["ids"] = ids
        yield s


def answers(session: Session) -> list[list[Any]]:
    return [query(session, window) for window in WINDOWS for query in QUERIES]


def live_answers(session: Session) -> list[list[Any]]:
    """The same queries with every rollup ignored (rolled_until = EPOCH), state restored."""
    saved = dict(session.execute(select(RollupState.view, RollupState.rolled_until)).all())
    session.execute(update(RollupState).values(rolled_until=EPOCH))
    try:
        return answers(session)
    finally:
        for view, until in saved.items():
            session.execute(
                update(RollupState).where(RollupState.view == view).values(rolled_until=until)
            )


def rollup_rows(session: Session) -> dict[str, int]:
    return {
        name: session.scalar(select(func.count()).select_from(table))
        for name, table in ROLLUP_TABLES.items()
    }


def test_closed_until_is_the_last_hour_that_ended_a_grace_period_ago():
    assert closed_until(at(12, 30), dt.timedelta(minutes=5)) == at(12, 0)
    assert closed_until(at(12, 3), dt.timedelta(minutes=5)) == at(11, 0)


def test_never_refreshed_reads_everything_live(session):
    assert all(v.rolled_until(session, name) == EPOCH for name in ROLLUP_TABLES)
    assert answers(session) == live_answers(session)


def test_rolled_and_live_halves_add_up_to_the_live_answer(session):
    expected = answers(session)
    done = refresh_rollups(session, NOW)
    assert {r.view for r in done} == set(ROLLUP_TABLES)
    assert all(r.end == at(12, 0) for r in done)
    rows = rollup_rows(session)
    # closed buckets before 12:00: 09:00 and 11:15/11:20/11:30/11:50 minutes; 12:xx stays live
    assert rows["v_throughput_per_minute"] == 5
    assert rows["v_reviewer_agreement_hourly"] == 1  # carol's 11:40 review
    assert all(v.rolled_until(session, name) == at(12, 0) for name in ROLLUP_TABLES)
    assert answers(session) == expected


def test_refresh_is_idempotent(session):
    refresh_rollups(session, NOW)
    first = rollup_rows(session)
    refresh_rollups(session, NOW)
    assert rollup_rows(session) == first
    assert answers(session) == live_answers(session)


def test_everything_rolled_still_answers_the_same(session):
    expected = answers(session)
    refresh_rollups(session, NOW + dt.timedelta(hours=3))  # 12:xx closed as well
    assert v.rolled_until(session, "v_tier_mix_hourly") == at(15, 0)
    assert answers(session) == expected


def add_late_review(session: Session) -> None:
    """A second opinion, at 12:25, on carol's 11:40 audit review (an hour already rolled)."""
    first = session.scalars(select(Review).where(Review.reviewer == "carol")).all()
    audit = min(first, key=lambda r: r.created_at)
    session.add(
        Review(
            job_id=audit.job_id,
            review_item_id=audit.review_item_id,
            reviewer="dave",
            category=audit.category,
            label=ReviewLabel.VIOLATION,
            created_at=at(12, 25),
        )
    )
    session.flush()


def test_a_late_review_reaches_rolled_hours_within_the_settle_period(session):
    refresh_rollups(session, NOW)
    add_late_review(session)
    stale = answers(session)
    assert stale != live_answers(session)  # carol's 11:00 row has not seen dave yet
    refresh_rollups(session, NOW)  # default settle: 48 h before rolled_until
    assert answers(session) == live_answers(session)
    carol = [a for a in v.reviewer_agreement(session, WINDOWS[0]) if a.reviewer == "carol"]
    assert [(a.reviews, a.compared, a.agreed) for a in carol] == [(2, 1, 0)]


def test_changes_older_than_the_settle_period_need_a_rebuild(session):
    refresh_rollups(session, NOW, settle=dt.timedelta(0))
    add_late_review(session)
    refresh_rollups(session, NOW, settle=dt.timedelta(0))
    assert answers(session) != live_answers(session)
    refresh_rollups(session, NOW, settle=dt.timedelta(0), rebuild=True)
    assert answers(session) == live_answers(session)
