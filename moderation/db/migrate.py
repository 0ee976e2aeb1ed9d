"""Schema migrations driven from code (``moderation db upgrade|downgrade|current``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations

from .session import make_engine

__all__ = ["alembic_config", "current_revision", "downgrade", "head_revision", "upgrade"]


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged ``migrations/`` and the given URL."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: the newest)."""
    _check_reachable(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Take the schema down to ``revision`` (``base`` drops everything)."""
    _check_reachable(database_url)
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _check_reachable(database_url: str) -> None:
    """Fail early, with the driver's one-line reason, when the database cannot be reached."""
    engine = make_engine(database_url)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()
