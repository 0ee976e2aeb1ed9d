"""GPU parsing, process specs, and the supervisor's restart and drain behaviour."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from moderation.cli.launcher import ProcessSpec, Supervisor, parse_gpus, worker_specs
from moderation.config import Settings


def test_parse_gpus():
    assert parse_gpus("0,1") == ["0", "1"]
    assert parse_gpus("all", detect=lambda: ["0", "1", "2"]) == ["0", "1", "2"]
    for bad in ("", "a,b", "0,0"):
        with pytest.raises(ValueError):
            parse_gpus(bad)
    with pytest.raises(ValueError, match="no GPU"):
        parse_gpus("all", detect=lambda: [])


def test_one_pinned_single_process_worker_per_gpu(tmp_path: Path):
    settings = Settings(_env_file=None, queue_name="q.score", ops_queue_name="q.ops")  # type: ignore[call-arg]
    specs = worker_specs(settings, gpus=["0", "3"], cpu=1, ops=True, beat=True, state_dir=tmp_path)
    by_name = {s.name: s for s in specs}
    assert list(by_name) == ["gpu0", "gpu3", "cpu0", "ops", "beat"]
    gpu3 = by_name["gpu3"]
    assert gpu3.env == {"CUDA_VISIBLE_DEVICES": "3"}
    argv = " ".join(gpu3.argv)
    assert "-P prefork -c 1 -Q q.score" in argv and "-n gpu3@%h" in argv
    assert by_name["cpu0"].env["CUDA_VISIBLE_DEVICES"] == ""
    assert int(by_name["cpu0"].env["OMP_NUM_THREADS"]) >= 1
    assert "-P threads" in " ".join(by_name["ops"].argv) and "q.ops" in by_name["ops"].argv
    assert by_name["beat"].argv[3] == "beat"


def test_supervisor_restarts_a_crashed_child_and_drains_on_stop(tmp_path: Path):
    marker = tmp_path / "starts"
    crash = ProcessSpec(
        "crashy",
        [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"],
    )
    stopped = tmp_path / "stopped"
    graceful = ProcessSpec(
        "graceful",
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            f"stop = lambda *a: (open({str(stopped)!r}, 'w'), sys.exit(0))\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "time.sleep(60)",
        ],
    )
    supervisor = Supervisor([crash, graceful], stop_timeout_s=10, max_backoff_s=0.2)
    # run() installs signal handlers and loops; drive the same steps directly here
    supervisor._start(crash)
    supervisor._start(graceful)
    deadline = time.monotonic() + 20
    while (not marker.exists() or len(marker.read_text()) < 3) and time.monotonic() < deadline:
        supervisor._check()
        time.sleep(0.05)
    assert len(marker.read_text()) >= 3  # restarted after each crash
    assert supervisor._drain() == 0
    assert stopped.exists()  # SIGTERM was passed on and the child shut down cleanly
