"""Engine and session factories (no engine exists until one is asked for)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "DatabaseURLError",
    "make_engine",
    "make_sessionmaker",
    "normalise_url",
    "retry_budget",
    "session_scope",
]

SUPPORTED_BACKENDS = ("postgresql", "sqlite")


class DatabaseURLError(ValueError):
    """The configured database URL cannot be used; the message says why in one line."""


def normalise_url(raw: str) -> URL:
    """Parse and check a database URL; plain ``postgresql://`` gets the psycopg (v3) driver."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise DatabaseURLError(f"invalid database URL {raw!r}: {exc}") from None
    if url.get_backend_name() not in SUPPORTED_BACKENDS:
        raise DatabaseURLError(
            f"unsupported database {url.get_backend_name()!r} in URL; "
            f"use postgresql+psycopg://user@host/db or sqlite:///path/file.sqlite3"
        )
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "postgresql" and not url.database:
        raise DatabaseURLError("database URL names no database (…/dbname missing)")
    return url


def make_engine(
    raw_url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    timeout_s: float | None = None,
    statement_timeout_s: float = 0,
    **kwargs: Any,
) -> Engine:
    """An engine for Postgres or SQLite with the same behaviour on both.

    SQLite gets foreign keys on, WAL journaling and a busy timeout so concurrent writers wait
    instead of failing; its parent directory is created.

    ``timeout_s`` bounds how long a Postgres connection is waited for — from the pool
    (``pool_timeout``) and from the server (``connect_timeout``; libpq's minimum is 2 s) —
    so a caller facing a database outage fails fast (the API: 503) instead of hanging;
    ``statement_timeout_s`` (> 0) cancels a statement running longer on the server.
    """
    url = normalise_url(raw_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("pool_pre_ping", True)
        connect: dict[str, Any] = {"connect_timeout": 10}
        if timeout_s is not None:
            kwargs.setdefault("pool_timeout", timeout_s)
            connect["connect_timeout"] = max(2, math.ceil(timeout_s))
        if statement_timeout_s > 0:
            connect["options"] = f"-c statement_timeout={int(statement_timeout_s * 1000)}"
        kwargs.setdefault("connect_args", connect)
    try:
        engine = create_engine(url, echo=echo, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise DatabaseURLError(f"cannot use database URL: {exc}") from None
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(
    engine: Engine, *, retry_budget_s: float | None = None
) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (results outlive the transaction).

    ``retry_budget_s`` caps how long ``moderation.db.retry.in_transaction`` retries any
    transaction of these sessions, whatever the caller asks (the API's bound on an outage)."""
    info = {RETRY_BUDGET: retry_budget_s} if retry_budget_s is not None else {}
    return sessionmaker(engine, expire_on_commit=False, info=info)


RETRY_BUDGET = "retry_budget_s"


def retry_budget(factory: sessionmaker[Session]) -> float | None:
    """The cap ``make_sessionmaker`` put on retries of ``factory``'s transactions, if any."""
    info = factory.kw.get("info") or {}
    budget = info.get(RETRY_BUDGET)
    return float(budget) if budget is not None else None


@contextlib.contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. The caller owns it."""
    with factory() as session, session.begin():
        yield session
