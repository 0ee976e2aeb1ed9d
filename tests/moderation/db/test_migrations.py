"""Migrations: upgrade → downgrade → upgrade on both backends; ORM and migrations agree."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from moderation.db import make_engine
from moderation.db.migrate import current_revision, downgrade, head_revision, upgrade
from moderation.db.models import Base

EXPECTED_TABLES = {
    "images", "image_blobs", "jobs", "pattern_sets", "pattern_embeddings", "threshold_versions",
    "scores", "decisions", "review_items", "reviews", "audit_samples", "audit_log", "api_tokens",
    "bank_entries",
}  # fmt: skip


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    upgrade(url)
    assert EXPECTED_TABLES <= _tables(url)
    downgrade(url, "base")
    assert _tables(url) == set()
    upgrade(url)
    assert EXPECTED_TABLES <= _tables(url)
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_round_trip_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'rt.sqlite3'}")


def test_round_trip_postgres(empty_pg_url):
    _round_trip(empty_pg_url)


def test_orm_matches_migrations_sqlite(sqlite_url):
    assert _schema_diff(sqlite_url) == []


def test_orm_matches_migrations_postgres(pg_url):
    assert _schema_diff(pg_url) == []


def test_every_orm_table_is_created_by_migrations(sqlite_url):
    assert set(Base.metadata.tables) == _tables(sqlite_url)
