"""docker-compose.yml and deploy/prometheus.yml, checked statically (no Docker engine here).

The compose file is parsed with PyYAML (anchors and ``<<`` merges resolved like Compose does)
and every service is checked against the code: commands are real CLI commands with real
options, MODERATION_* variables are Settings fields whose values validate, dependencies exist
with sensible conditions, each GPU worker reserves its own device, and Prometheus scrapes what
the services expose.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from moderation.cli import app as cli_app
from moderation.config import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = {
    n: s for n, s in SERVICES.items() if str(s.get("image", "")).startswith("moderation:")
}
GPU_WORKERS = {n: s for n, s in SERVICES.items() if re.fullmatch(r"worker-gpu\d+", n)}
# Variables app containers may carry that are not Settings fields, and why.
NON_SETTINGS_ENV = {
    "CUDA_VISIBLE_DEVICES",  # read by CUDA (the launcher sets it per worker as well)
    "PROMETHEUS_MULTIPROC_DIR",  # prometheus-client's multiprocess mode (API)
}
_SUBST = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# What a deployer sets for each required (``${VAR:?message}``) variable in these checks.
_REQUIRED_VALUE = "s" * 40


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment; a required
    ``${VAR:?message}`` gets the value a deployer would have to set."""

    def substitute(m: re.Match[str]) -> str:
        return _REQUIRED_VALUE if m.group(2) == "?" else (m.group(3) or "")

    return _SUBST.sub(substitute, value)


def _compose_text_values() -> list[str]:
    """Every environment value and published port in the compose file, as written."""
    values = []
    for service in SERVICES.values():
        values += env_of(service).values()
        values += [str(p) for p in service.get("ports") or []]
    return values


def test_no_secret_has_a_default():
    """Passwords and signing keys are required (``${VAR:?…}``): compose refuses to start
    without them instead of shipping a guessable default or an empty key."""
    secret_refs = [
        m
        for value in _compose_text_values()
        for m in _SUBST.finditer(value)
        if re.search(r"PASSWORD|SECRET", m.group(1))
    ]
    required = {"POSTGRES_PASSWORD", "MODERATION_CALLBACK_SECRET", "MODERATION_SESSION_SECRET"}
    assert {m.group(1) for m in secret_refs} >= required
    for m in secret_refs:
        assert m.group(2) == "?", f"{m.group(0)}: a secret must be required, not defaulted"


def test_published_ports_bind_loopback_by_default():
    for name, service in SERVICES.items():
        for port in service.get("ports") or []:
            published = interpolate(str(port))
            assert published.startswith("127.0.0.1:"), f"{name} publishes {published}"


def test_every_service_has_an_image_or_build_and_a_command():
    assert {"postgres", "redis", "migrate", "api", "beat", "dashboard", "flower"} <= set(SERVICES)
    assert "prometheus" in SERVICES and len(GPU_WORKERS) >= 1
    for name, service in SERVICES.items():
        assert service.get("image") or service.get("build"), name
        assert service.get("command"), f"{name} has no command"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_commands_are_real_cli_commands(name):
    command = [str(part) for part in APP_SERVICES[name]["command"]]
    result = CliRunner().invoke(cli_app, [*command, "--help"])
    assert result.exit_code == 0, f"{name}: moderation {' '.join(command)}: {result.output}"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_app_environment_names_settings_fields_with_valid_values(name, monkeypatch):
    env = env_of(APP_SERVICES[name])
    fields = {f"MODERATION_{f.upper()}" for f in Settings.model_fields}
    unknown = {k for k in env if k not in fields and k not in NON_SETTINGS_ENV}
    assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"
    for key in list(__import__("os").environ):
        if key.startswith("MODERATION_"):
            monkeypatch.delenv(key)
    for key, raw in env.items():
        monkeypatch.setenv(key, interpolate(raw))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in settings.database_url
    assert settings.broker_url.startswith("redis://redis:6379/")


def test_dependencies_exist_with_sensible_conditions():
    for name, service in SERVICES.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use the long depends_on form with conditions"
        for target, spec in deps.items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if target == "migrate":
                assert condition == "service_completed_successfully", name
            else:
                assert condition == "service_healthy", f"{name} → {target}"
                assert "healthcheck" in SERVICES[target], f"{target} has no healthcheck"
    assert SERVICES["migrate"]["command"] == ["db", "upgrade"]
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # everything else that opens the database waits for the schema
    for name in set(APP_SERVICES) - {"migrate"}:
        assert "migrate" in SERVICES[name]["depends_on"], name


def test_dependency_graph_has_no_cycle():
    seen: dict[str, str] = {}

    def visit(node: str) -> None:
        if seen.get(node) == "done":
            return
        assert seen.get(node) != "open", f"dependency cycle through {node}"
        seen[node] = "open"
        for target in SERVICES[node].get("depends_on") or {}:
            visit(target)
        seen[node] = "done"

    for name in SERVICES:
        visit(name)


def test_one_worker_per_gpu_each_reserving_its_own_device():
    device_ids = []
    for name, service in GPU_WORKERS.items():
        index = name.removeprefix("worker-gpu")
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
        assert device["device_ids"] == [index], name
        device_ids.append(index)
        # the reserved GPU is index 0 inside the container
        assert env_of(service)["CUDA_VISIBLE_DEVICES"] == "0"
        command = service["command"]
        assert command[:3] == ["worker", "--gpus", "0"] and "--no-ops" in command
        # longer than the launcher's drain (hard batch limit + 30 s, see `moderation worker`)
        drain_s = Settings(_env_file=None).batch_time_limit_s + 30  # type: ignore[call-arg]
        assert int(service["stop_grace_period"].rstrip("m")) * 60 > drain_s, name
    assert len(set(device_ids)) == len(device_ids)
    assert "worker-ops" in SERVICES and "--ops" in SERVICES["worker-ops"]["command"]


def test_beat_runs_exactly_once():
    beats = [
        n for n, s in APP_SERVICES.items() if "beat" in s["command"] or "--beat" in s["command"]
    ]
    assert beats == ["beat"]
    assert "replicas" not in (SERVICES["beat"].get("deploy") or {})


def test_named_volumes_are_declared_and_postgres_keeps_its_data():
    declared = set(COMPOSE["volumes"])
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    for name, service in SERVICES.items():
        for mount in service.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            elif source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def _port_of(service: dict[str, Any], flag: str = "--port") -> int:
    command = [str(c) for c in service["command"]]
    return int(command[command.index(flag) + 1])


def test_prometheus_scrapes_the_api_and_every_worker_on_their_ports():
    prom = SERVICES["prometheus"]
    assert prom["profiles"] == ["monitoring"]
    config_mount = next(m for m in prom["volumes"] if "prometheus.yml" in m)
    config = yaml.safe_load((ROOT / config_mount.split(":")[0]).read_text())
    targets = {
        job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        + [f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
        for job in config["scrape_configs"]
    }
    all_targets = [t for ts in targets.values() for t in ts]
    for target in all_targets:
        host, port = target.rsplit(":", 1)
        assert host in SERVICES, f"scrape target {target} is not a service"
        service = SERVICES[host]
        if host == "api":
            assert int(port) == _port_of(service)
        else:
            env = env_of(service)
            assert env["MODERATION_WORKER_METRICS_PORT"] == port, target
            assert env["MODERATION_WORKER_METRICS_HOST"] == "0.0.0.0", target
    scraped_hosts = {t.rsplit(":", 1)[0] for t in all_targets}
    assert {"api", "worker-ops", *GPU_WORKERS} <= scraped_hosts
    # several uvicorn processes behind one port → multiprocess mode on the API
    api = SERVICES["api"]
    if _port_of(api, "--workers") > 1:
        assert "PROMETHEUS_MULTIPROC_DIR" in env_of(api)
