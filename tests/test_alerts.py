"""deploy/alerts.yml through promtool: the rules parse, and every alert fires on a synthetic
series and stays quiet on a healthy one (deploy/alerts_test.yml).

promtool comes with Debian's ``prometheus`` package (.ci/run installs it); without it these
tests fail in CI and skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "alerts_test.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool is not installed (apt-get install -y prometheus)"
    if os.environ.get("CI"):
        pytest.fail(f"the alert rule tests need promtool in CI: {message}")
    pytest.skip(message)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _alerts() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_promtool_checks_the_rules():
    result = _run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = _run("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    """Each alert has a check that expects it and one that expects silence."""
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [c for t in tests for c in t.get("alert_rule_test", [])]
    fired = {c["alertname"] for c in checks if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in checks if not c.get("exp_alerts")}
    assert fired == set(_alerts()), sorted(set(_alerts()) ^ fired)
    assert quiet == set(_alerts()), sorted(set(_alerts()) ^ quiet)


def test_every_alert_has_a_severity_summary_and_runbook_hint():
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"], name
        assert "Runbook:" in rule["annotations"]["description"], name


def test_prometheus_loads_the_rules_compose_mounts(tmp_path):
    """deploy/prometheus.yml names the path compose mounts alerts.yml at, and promtool accepts
    the whole config with that file in place."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {
        m.split(":")[1]: m.split(":")[0] for m in compose["services"]["prometheus"]["volumes"]
    }
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert (ROOT / mounts["/etc/prometheus/alerts.yml"]).resolve() == RULES
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus.yml"
    shutil.copy(RULES, tmp_path / "alerts.yml")
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump({**config, "rule_files": ["alerts.yml"]}))
    result = _run("check", "config", str(local))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_are_documented():
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for name in _alerts():
        assert f"`{name}`" in docs, f"{name} is not in docs/deploy.md (Alerts)"
