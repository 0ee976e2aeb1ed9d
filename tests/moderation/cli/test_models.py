"""``moderation models pull``: one clean line without the hub, a checked snapshot with it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moderation.cli import app
from moderation.cli._common import CliError
from moderation.cli.models import MODELS, missing_files

SNAPSHOT_FILES = [
    "config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "model.safetensors",
]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "moderation", *args],
        capture_output=True, text=True, env=full_env, timeout=120,
    )  # fmt: skip


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"HF_ENDPOINT": "http://127.0.0.1:{port}"}, id="hub-unreachable"),
        pytest.param({"HF_HUB_OFFLINE": "1"}, id="offline-mode"),
    ],
)
def test_pull_without_the_hub_fails_with_one_line(tmp_path, env):
    env = {k: v.format(port=_closed_port()) for k, v in env.items()}
    target = tmp_path / "gme"
    result = run_cli("models", "pull", "gme", "--to", str(target), "--timeout", "2", env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not fetch"), result.stderr
    assert MODELS["gme"][0] in lines[0] and "Traceback" not in result.stderr
    assert not target.exists() or missing_files(target)


def test_unknown_model_is_refused(tmp_path):
    result = run_cli("models", "pull", "clip", "--to", str(tmp_path), env={})
    assert result.returncode == 2 and "unknown model 'clip'" in result.stderr


def _fake_snapshot(files: list[str], calls: list[dict]):
    def snapshot_download(repo_id: str, **kwargs: object) -> str:
        calls.append({"repo_id": repo_id, **kwargs})
        local_dir = Path(str(kwargs["local_dir"]))
        local_dir.mkdir(parents=True, exist_ok=True)
        for name in files:
            (local_dir / name).write_text("{}")
        return str(local_dir)

    return snapshot_download


def test_pull_writes_a_complete_snapshot_and_names_the_setting(tmp_path, monkeypatch):
    import huggingface_hub

    calls: list[dict] = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_snapshot(SNAPSHOT_FILES, calls))
    target = tmp_path / "weights"
    result = CliRunner().invoke(app, ["models", "pull", "gme", "--to", str(target)])
    assert result.exit_code == 0, result.output
    assert f"MODERATION_GME_PATH={target}" in result.output.replace("\n", "")
    (call,) = calls
    assert call["repo_id"] == "Alibaba-NLP/gme-Qwen2-VL-2B-Instruct"
    assert call["local_dir"] == target and "*.safetensors" in call["allow_patterns"]


def test_pull_that_returns_an_incomplete_directory_fails(tmp_path, monkeypatch):
    """huggingface_hub returns an existing --to directory as-is when the hub is unreachable."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_snapshot(["config.json"], []))
    result = CliRunner().invoke(app, ["models", "pull", "gme", "--to", str(tmp_path)])
    assert isinstance(result.exception, CliError)
    assert "lacks preprocessor_config.json" in str(result.exception)


def test_missing_files_checks_every_shard(tmp_path):
    for name in SNAPSHOT_FILES[:-1]:
        (tmp_path / name).write_text("{}")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "model-00001-of-00002.safetensors").write_text("")
    assert missing_files(tmp_path) == ["model-00002-of-00002.safetensors"]
    (tmp_path / "model-00002-of-00002.safetensors").write_text("")
    assert missing_files(tmp_path) == []
