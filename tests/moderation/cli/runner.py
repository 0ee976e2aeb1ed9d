"""In-process CLI runs (Typer's runner) and a session on the database a command used."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from click.testing import Result
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from moderation.cli import app
from moderation.cli._common import CliError
from moderation.db import make_engine, make_sessionmaker


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def fails(*args: str, match: str) -> None:
    result = invoke(*args)
    assert isinstance(result.exception, CliError), (result.output, result.exception)
    assert match in str(result.exception)


@contextlib.contextmanager
def db_session(url: str) -> Iterator[Session]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()
