"""``moderation db``: schema creation on both backends, one-line errors for bad URLs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import inspect

from moderation.db import make_engine


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "moderation", *args],
        capture_output=True, text=True, env=full_env, timeout=120,
    )  # fmt: skip


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_schema_on_fresh_sqlite_path(tmp_path):
    path = tmp_path / "nested" / "dir" / "m.sqlite3"
    result = run_cli("db", "upgrade", "--url", f"sqlite:///{path}")
    assert result.returncode == 0, result.stderr
    assert {"jobs", "images", "scores", "decisions"} <= _tables(f"sqlite:///{path}")


def test_upgrade_creates_schema_on_postgres(empty_pg_url):
    result = run_cli("db", "upgrade", env={"MODERATION_DATABASE_URL": empty_pg_url})
    assert result.returncode == 0, result.stderr
    assert {"jobs", "images", "scores", "decisions"} <= _tables(empty_pg_url)
    current = run_cli("db", "current", env={"MODERATION_DATABASE_URL": empty_pg_url})
    assert "up to date" in current.stdout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "invalid"),
        ("mysql://root@localhost/x", "unsupported database"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", "database unreachable"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432", "names no database"),
    ],
)
def test_bad_urls_give_one_clear_line(url, expected):
    for args, env in (
        (("db", "upgrade", "--url", url), None),
        (("db", "upgrade"), {"MODERATION_DATABASE_URL": url}),
    ):
        result = run_cli(*args, env=env)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr + result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert expected in lines[0]


def test_every_command_has_help():
    result = run_cli("--help")
    assert result.returncode == 0
    for group in ("db", "config"):
        sub = run_cli(group, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "Usage" in sub.stdout


def test_rollup_fills_the_dashboard_rollups(engine, db_url):
    from sqlalchemy import func, select

    from moderation.db import make_sessionmaker
    from moderation.db.models import ROLLUP_TABLES
    from tests.dashboard_seed import seed_dashboard

    with make_sessionmaker(engine).begin() as session:
        seed_dashboard(session)  # November 2026: every bucket is closed by now
    result = run_cli("db", "rollup", "--url", db_url)
    assert result.returncode == 0, result.stderr
    assert "v_throughput_per_minute" in result.stdout
    table = ROLLUP_TABLES["v_throughput_per_minute"]
    with engine.connect() as conn:  # minutes with finished jobs (j1 and j2 share 12:00)
        assert conn.scalar(select(func.count()).select_from(table)) == 8
    again = run_cli("db", "rollup", "--rebuild", "--url", db_url)
    assert again.returncode == 0, again.stderr
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(table)) == 8
