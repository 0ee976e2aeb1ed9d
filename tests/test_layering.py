"""The layering contracts of pyproject.toml (docs/architecture.md) hold: ``lint-imports`` passes."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.moderation.test_purity import PURE_MODULES

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def test_lint_imports_keeps_every_contract():
    script = Path(sys.executable).with_name("lint-imports")
    assert script.exists(), "import-linter is part of the test extra: pip install -e '.[test]'"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [str(script), "--no-cache"], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(_contracts())} kept, 0 broken" in run.stdout, run.stdout


def test_the_contracts_cover_what_docs_layers_names():
    contracts = _contracts()
    assert set(contracts) == {
        "library-without-workers",
        "db-without-use-cases",
        "pure-modules",
        "entry-points-through-services",
        "orm-rows-stay-in-db",
    }
    # one list of pure modules: the import contract and the run-time purity test agree
    assert contracts["pure-modules"]["source_modules"] == PURE_MODULES
    layers = (ROOT / "docs" / "architecture.md").read_text()
    assert all(f"`{name}`" in layers for name in contracts)
