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
    "bank",
    "calibrate",
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
]

for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Console-script entry point: expected failures print one line and exit non-zero."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import OperationalError

    from moderation.db.session import DatabaseURLError
    from moderation.thresholds.scales import UnknownScale

    try:
        app()
    except ValidationError as exc:
        _fail("; ".join(_describe_setting_error(e) for e in exc.errors()))
    except (CliError, DatabaseURLError, SettingsError, UnknownScale) as exc:
        _fail(str(exc))
    except OperationalError as exc:
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
        _fail(f"database unreachable: {reason}")


def _describe_setting_error(error: dict) -> str:  # type: ignore[type-arg]
    field = ".".join(str(p) for p in error.get("loc", ()))
    env = f"MODERATION_{field.upper()}" if field else "settings"
    return f"invalid {env}: {error.get('msg', 'invalid value')}"


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)
