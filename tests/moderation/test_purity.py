"""Pure modules (math, vocabulary) import no I/O stack: no torch, sqlalchemy, PIL, network."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE_MODULES = [
    "moderation.domain",
    "moderation.actions.rules",
    "moderation.scoring.base",
    "moderation.scoring.catalog",
    "moderation.scoring.profiles",
    "moderation.hashbank.index",
    "moderation.thresholds.scales",
    "moderation.thresholds.tiers",
    "moderation.thresholds.context",
    "moderation.thresholds.presets",
    "moderation.thresholds.scenarios",
    "moderation.thresholds.strategies",
    "moderation.thresholds.audit",
    "moderation.thresholds.evidence",
    "moderation.thresholds.adjusters",
    "moderation.web.charts",
    "moderation.web.formatting",
]
FORBIDDEN = ["torch", "sqlalchemy", "PIL", "onnxruntime", "transformers", "redis", "httpx"]


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io_stack(module):
    code = f"import sys, {module}; print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulled in {out.stdout.strip()}"
