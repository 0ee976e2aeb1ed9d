"""``benchmarks/gpu_check.sh --tiny``: the GPU check's CPU dry run, end to end, as CI runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
def test_gpu_check_dry_run_passes_every_step(tmp_path):
    pytest.importorskip("transformers")
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_LOG": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "all steps passed" in result.stdout
    for step in ("environment", "gpu_tests", "throughput", "preprocessing"):
        assert (tmp_path / f"{step}.log").stat().st_size > 0, step
    throughput = (tmp_path / "throughput.log").read_text()
    assert "stock M-RoPE" in throughput and "official 1-D" in throughput
    preprocessing = (tmp_path / "preprocessing.log").read_text()
    assert "True" in preprocessing  # fast == reference
    assert "the device path" in preprocessing and "False" not in preprocessing  # device too
    assert "the device path" in result.stdout  # in the summary


def test_gpu_check_rejects_unknown_arguments():
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "usage" in result.stderr
