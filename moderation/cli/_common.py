"""Helpers shared by CLI commands: consoles, the one expected-error type, settings access."""

from __future__ import annotations

from rich.console import Console

from moderation.config import Settings, get_settings

__all__ = ["CliError", "check_backend", "console", "err_console", "settings_with"]

console = Console()
err_console = Console(stderr=True)


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
