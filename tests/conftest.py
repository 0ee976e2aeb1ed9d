"""Shared fixtures: throwaway Postgres databases, SQLite files, Redis key prefixes, settings.

Every pytest run creates its own uniquely named Postgres databases on 127.0.0.1:5432 and drops
them at the end, so runs can repeat and run in parallel (CI, several developers) without
colliding. ``MODERATION_TEST_PG_ADMIN_URL`` / ``MODERATION_TEST_REDIS_URL`` point elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from moderation.config import Settings, get_settings
from moderation.db import make_engine
from moderation.db.migrate import upgrade

PG_ADMIN_URL = os.environ.get(
    "MODERATION_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("MODERATION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def _admin_conninfo() -> str:
    url = make_url(PG_ADMIN_URL)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _db_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _pg_execute(sql: str) -> None:
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql)


def _drop_database(name: str) -> None:
    _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    """``get_settings()`` is cached per process; tests that set env vars get a fresh one."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database migrated to head, used as the TEMPLATE of each test's database."""
    name = f"modtest_{RUN_ID}_template"
    _pg_execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(_db_url(name))
        yield name
    finally:
        _drop_database(name)


@pytest.fixture
def pg_url_factory(pg_template: str) -> Iterator[Callable[[], str]]:
    """Make fresh migrated Postgres databases (cloned from the template, ~0.1 s each)."""
    created: list[str] = []

    def make() -> str:
        name = f"modtest_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        _pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
        created.append(name)
        return _db_url(name)

    yield make
    for name in created:
        _drop_database(name)


@pytest.fixture
def pg_url(pg_url_factory: Callable[[], str]) -> str:
    """URL of a fresh, migrated Postgres database owned by this test."""
    return pg_url_factory()


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """URL of a fresh Postgres database with no schema at all."""
    name = f"modtest_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    _pg_execute(f'CREATE DATABASE "{name}"')
    yield _db_url(name)
    _drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh, migrated SQLite file owned by this test."""
    url = f"sqlite:///{tmp_path / 'moderation.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database, once on SQLite and once on Postgres."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix owned by this test; every key under it is deleted afterwards."""
    prefix = f"modtest:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated from the developer's env and .env: data under tmp_path."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": f"sqlite:///{tmp_path / 'settings.sqlite3'}",
            "pattern_cache_dir": tmp_path / "pattern-cache",
            "broker_url": REDIS_URL,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.gpu`` tests run only where CUDA is available."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in gpu_items:
            item.add_marker(skip)
