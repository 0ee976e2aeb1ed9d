"""Helpers shared by CLI commands: consoles, the one expected-error type, settings access."""

from __future__ import annotations

from rich.console import Console

from moderation.config import Settings, get_settings

__all__ = ["CliError", "console", "err_console", "settings_with"]

console = Console()
err_console = Console(stderr=True)


class CliError(Exception):
    """A failure the user can fix; printed as one line, exit code 2."""


def settings_with(**overrides: object) -> Settings:
    """Effective settings with CLI options (those not None) applied on top."""
    base = get_settings()
    changes = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=changes) if changes else base
