"""The beat task that refreshes dashboard rollups: scheduled, and fills the tables."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import func, select

from moderation.db import make_engine, make_sessionmaker
from moderation.db.models import ROLLUP_TABLES
from tests.dashboard_seed import seed_dashboard
from workers.celery_app import REAP_TASK, ROLLUP_TASK, beat_schedule
from workers.ops import refresh_dashboard_rollups


def test_beat_runs_the_refresh_unless_disabled(settings_factory):
    only = settings_factory(  # each has its own test
        adjust_interval_s=0, bank_retro_sweep_s=0, retention_interval_s=0
    )
    tasks = {e["task"]: e["schedule"] for e in beat_schedule(only).values()}
    assert tasks == {REAP_TASK: 30.0, ROLLUP_TASK: 300.0}
    off = beat_schedule(
        settings_factory(
            rollup_interval_s=0, adjust_interval_s=0, bank_retro_sweep_s=0, retention_interval_s=0
        )
    )
    assert [e["task"] for e in off.values()] == [REAP_TASK]


def test_refresh_task_fills_the_rollups(pg_url, settings_factory):
    engine = make_engine(pg_url)
    with make_sessionmaker(engine).begin() as session:
        seed_dashboard(session)
    app = SimpleNamespace(settings=settings_factory(database_url=pg_url))
    rows = refresh_dashboard_rollups(app)  # type: ignore[arg-type]
    assert set(rows) == set(ROLLUP_TABLES)
    assert rows["v_throughput_per_minute"] == 8
    with engine.connect() as conn:
        count = select(func.count()).select_from(ROLLUP_TABLES["v_tier_mix_hourly"])
        assert conn.scalar(count) == rows["v_tier_mix_hourly"] > 0
    engine.dispose()
