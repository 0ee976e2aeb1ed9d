"""The repository tells the truth about itself: README commands, CI script, config table."""

from __future__ import annotations

import re
from pathlib import Path

from moderation.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", readme)


def test_ci_runs_the_readme_test_command_verbatim():
    commands = _readme_commands()
    assert len(commands) >= 2, "README must show the setup/run and the test commands"
    test_command = commands[1]
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci, "the last step of .ci/run must be the README's test command"
    assert ci[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in ci


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"MODERATION_{name.upper()}"
        for name in Settings.model_fields
        if f"`MODERATION_{name.upper()}`" not in readme
    ]
    assert missing == []


def test_readme_lists_every_cli_group():
    from moderation.cli import app

    readme = (ROOT / "README.md").read_text()
    groups = [g.name for g in app.registered_groups] + [c.name for c in app.registered_commands]
    assert groups
    assert [g for g in groups if f"`moderation {g}" not in readme] == []


def test_code_is_lint_clean_and_formatted():
    import subprocess
    import sys

    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run([*ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = subprocess.run(
        [*ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
