"""The ``moderation`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import importlib
import sys

import typer

from ._common import CliError, err_console

__all__ = ["app", "main"]

app = typer.Typer(
    name="moderation",
    help="Content-moderation queue worker: score images, tier them, review, adapt thresholds.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

# (module under moderation.cli, attribute): a Typer sub-app (a group) or a register(app) hook.
# Heavy libraries (torch, onnxruntime) are imported inside commands, so `--help` stays fast.
_COMMAND_MODULES: list[str] = [
    "actions",
    "bank",
    "calibrate",
    "callbacks",
    "config",
    "dashboard",
    "db",
    "models",
    "score",
    "thresholds",
    "scan",
    "worker",
    "jobs",
    "submit",
    "tokens",
    "retention",
]

for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Console-script entry point: expected failures print one line and exit 2."""
    try:
        app()
    except Exception as exc:
        message = expected_error(exc)
        if message is None:
            raise
        _fail(message)


def expected_error(exc: BaseException) -> str | None:
    """The one-line message of a failure the user can fix (configuration, database), or None
    for a bug (which keeps its traceback)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from moderation.db.session import DatabaseURLError
    from moderation.embedders.registry import BackendUnavailable
    from moderation.scoring.catalog import CatalogError
    from moderation.scoring.scorers import ScorerConfigError
    from moderation.thresholds.overrides import ThresholdsFileError
    from moderation.thresholds.scales import UnknownScale

    if isinstance(exc, ValidationError):
        return "; ".join(_describe_setting_error(e) for e in exc.errors())
    if isinstance(exc, CatalogError):
        return f"invalid MODERATION_CATALOG_FILE: {exc}"
    if isinstance(exc, ThresholdsFileError):
        return f"invalid MODERATION_THRESHOLDS_FILE: {exc}"
    if isinstance(exc, BackendUnavailable | ScorerConfigError):
        return f"MODERATION_BACKEND: {exc}"
    if isinstance(exc, CliError | DatabaseURLError | SettingsError | UnknownScale):
        return str(exc)
    if isinstance(exc, OperationalError | ProgrammingError):
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
            return f"database is not migrated ({reason}): run `moderation db upgrade`"
        if isinstance(exc, OperationalError):
            return f"database unreachable: {reason}"
    return None


def _describe_setting_error(error: dict) -> str:  # type: ignore[type-arg]
    field = ".".join(str(p) for p in error.get("loc", ()))
    env = f"MODERATION_{field.upper()}" if field else "settings"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"invalid {env}: {message}"


def one_line(message: str) -> str:
    """Multi-line messages (YAML parser errors) folded into one line; caret lines dropped."""
    lines = [line.strip() for line in message.splitlines()]
    return "; ".join(line for line in lines if line.strip("^ ")).rstrip(":")


def _fail(message: str) -> None:
    from rich.markup import escape

    line = escape(one_line(message))
    err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    sys.exit(2)
