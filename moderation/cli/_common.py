"""Helpers shared by CLI commands: consoles, the one expected-error type, settings access, the
one way a command opens the database, and the checks of scoring files made before any job."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from moderation.config import Settings, get_settings, masked_url

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from moderation.scoring.base import Scorer
    from moderation.scoring.scorers import ScorerProfile

__all__ = [
    "EXIT_CODES",
    "URL_OPTION",
    "CliError",
    "check_backend",
    "check_scoring_files",
    "console",
    "err_console",
    "open_database",
    "database_session",
    "require_schema",
    "settings_with",
]

console = Console()
err_console = Console(stderr=True)

URL_OPTION = typer.Option(
    None, "--url", help="Database URL (default: MODERATION_DATABASE_URL or the SQLite file)."
)

# Every command: 0 done, 1 done but some input failed (`scan`, `score`), 2 setup/config error.
EXIT_CODES = "Exit codes: 0 done, 1 some files failed, 2 bad setup or configuration."


class CliError(Exception):
    """A failure the user can fix; printed as one line, exit code 2."""


def settings_with(**overrides: object) -> Settings:
    """Effective settings with CLI options (those not None) applied on top."""
    base = get_settings()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=changes) if changes else base


def check_backend(backend: str | None) -> None:
    """``--backend`` must name a registered backend; the error lists them all."""
    from moderation.embedders.registry import backend_names

    if backend is not None and backend not in backend_names():
        raise CliError(f"unknown backend {backend!r}; choose one of {', '.join(backend_names())}")


def require_schema(engine: Engine, url: str) -> None:
    """Refuse a database that is unreachable, never migrated or at another schema revision —
    three different one-line errors (``CliError``)."""
    from sqlalchemy.exc import OperationalError

    from moderation.db import migrate

    try:
        revision = migrate.current_revision(engine)
    except OperationalError as exc:
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        raise CliError(f"database unreachable: {reason}") from None
    head = migrate.head_revision()
    if revision is None:
        raise CliError(f"database {masked_url(url)} is not migrated: run `moderation db upgrade`")
    if revision != head:
        raise CliError(
            f"database schema is at revision {revision}, this version needs {head}: "
            "run `moderation db upgrade`"
        )


@contextlib.contextmanager
def open_database(url: str | None = None) -> Iterator[sessionmaker[Session]]:
    """Sessions on ``url`` (default: the configured database), checked with ``require_schema``
    first; the engine is disposed of on exit. Every database command opens it this way."""
    from moderation.db.session import make_engine, make_sessionmaker

    database_url = settings_with(database_url=url).database_url
    engine = make_engine(database_url)
    try:
        require_schema(engine, database_url)
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@contextlib.contextmanager
def database_session(url: str | None = None) -> Iterator[Session]:
    """One transaction on ``open_database(url)``: committed on success."""
    from moderation.db.session import session_scope

    with open_database(url) as sessions, session_scope(sessions) as s:
        yield s


def check_scoring_files(settings: Settings, scorer: Scorer | ScorerProfile | None = None) -> None:
    """Parse the thresholds file (and resolve it for ``scorer``'s scales) now, so a bad file
    is one line naming the setting — before any job is registered or claimed."""
    from moderation.thresholds.overrides import ThresholdsFileError, load_thresholds_file
    from moderation.thresholds.resolver import thresholds_for
    from moderation.thresholds.scales import UnknownScale

    if settings.thresholds_file is None:
        return
    try:
        if scorer is None:
            load_thresholds_file(settings.thresholds_file)
        else:
            thresholds_for(None, scorer, settings.thresholds_file)
    except (ThresholdsFileError, UnknownScale, ValueError) as exc:
        raise CliError(f"invalid MODERATION_THRESHOLDS_FILE: {exc}") from None
