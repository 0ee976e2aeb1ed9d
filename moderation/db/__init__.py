"""Persistence: ORM rows, engine/session factories, migrations and repositories."""

from .session import DatabaseURLError, make_engine, make_sessionmaker, session_scope

__all__ = ["DatabaseURLError", "make_engine", "make_sessionmaker", "session_scope"]
