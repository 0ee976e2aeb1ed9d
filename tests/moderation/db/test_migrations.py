"""Migrations: upgrade → downgrade → upgrade on both backends; ORM and migrations agree."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Index, inspect, text
from sqlalchemy.schema import CreateIndex, DropIndex

from moderation.db import make_engine
from moderation.db.migrate import current_revision, downgrade, head_revision, upgrade
from moderation.db.models import Base

EXPECTED_TABLES = {
    "images", "image_blobs", "jobs", "pattern_sets", "pattern_embeddings", "threshold_versions",
    "scores", "decisions", "review_items", "reviews", "audit_samples", "audit_log", "api_tokens",
    "bank_entries", "scorer_profiles", "dashboard_rollup_state", "rollup_throughput_per_minute",
    "rollup_tier_mix_hourly", "rollup_review_latency_hourly", "rollup_reviewer_agreement_hourly",
    "rollup_review_estimates_hourly",
}  # fmt: skip
EXPECTED_VIEWS = {
    "v_throughput_per_minute", "v_tier_mix_hourly", "v_backlog", "v_failures_hourly",
    "v_review_latency_hourly", "v_reviewer_agreement_hourly", "v_review_estimates_hourly",
    "v_threshold_history",
}  # fmt: skip


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _views(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_view_names())
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            with warnings.catch_warnings():
                # SQLite cannot reflect expression indexes, so Alembic skips the ORM's
                # PostgreSQL-only ones there (with this warning); they are checked on Postgres.
                warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified")
                return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    upgrade(url)
    assert EXPECTED_TABLES <= _tables(url)
    assert EXPECTED_VIEWS <= _views(url)
    downgrade(url, "base")
    assert _tables(url) == set()
    assert _views(url) == set()
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


def _postgres_only_indexes() -> list[Index]:
    return [
        index
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if index.info.get("only_on") == "postgresql"
    ]


def test_postgres_only_indexes_match_the_orm(pg_url):
    """Autogenerate compares an expression index's keys but not its INCLUDE or WHERE: compare
    PostgreSQL's own rendering of the migrated index with that of the ORM's definition."""
    indexes = _postgres_only_indexes()
    assert indexes
    query = text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:names)")
    names = [index.name for index in indexes]
    engine = make_engine(pg_url)
    try:
        with engine.begin() as conn:
            migrated = dict(conn.execute(query, {"names": names}).all())
            for index in indexes:
                conn.execute(DropIndex(index))
                conn.execute(CreateIndex(index))
            assert dict(conn.execute(query, {"names": names}).all()) == migrated
    finally:
        engine.dispose()
    assert set(migrated) == set(names)


def _blob_storage(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(
                text(
                    "SELECT attstorage FROM pg_attribute "
                    "WHERE attrelid = 'image_blobs'::regclass AND attname = 'data'"
                )
            )
    finally:
        engine.dispose()


def test_image_bytes_are_stored_uncompressed_on_postgres(empty_pg_url):
    """Uploads are compressed formats: pglz only costs CPU (migration 0007)."""
    upgrade(empty_pg_url)
    assert _blob_storage(empty_pg_url) == "e"  # EXTERNAL
    downgrade(empty_pg_url, "0006")
    assert _blob_storage(empty_pg_url) == "x"  # EXTENDED, PostgreSQL's default for bytea
