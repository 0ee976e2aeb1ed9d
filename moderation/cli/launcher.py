"""``moderation worker``: one Celery worker process per GPU (or CPU slot), supervised.

Each scoring worker is a separate ``python -m workers worker`` process with
``CUDA_VISIBLE_DEVICES`` set to its one GPU, prefork concurrency 1 and its own node name; the
launcher itself never imports torch. A child that exits unexpectedly is restarted with
exponential backoff; SIGTERM/SIGINT are passed on so every worker finishes its batch (Celery's
warm shutdown) before the launcher exits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moderation.config import Settings

__all__ = ["ProcessSpec", "Supervisor", "detect_gpus", "parse_gpus", "worker_specs"]

log = logging.getLogger(__name__)
CELERY_FLAGS = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def detect_gpus() -> list[str]:
    """GPU indices from ``nvidia-smi -L`` (no CUDA initialisation in this process)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def parse_gpus(spec: str, detect: Callable[[], list[str]] = detect_gpus) -> list[str]:
    """``all`` → every visible GPU; ``0,2`` → those indices. Raises ValueError when empty."""
    if spec.strip().lower() == "all":
        gpus = detect()
        if not gpus:
            raise ValueError("--gpus all: nvidia-smi lists no GPU on this host; use --cpu N")
        return gpus
    gpus = [part.strip() for part in spec.split(",") if part.strip()]
    if not gpus or not all(g.isdigit() for g in gpus):
        raise ValueError(f"--gpus expects 'all' or comma-separated indices like 0,1; got {spec!r}")
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus lists a GPU twice: {spec!r}")
    return gpus


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "workers", *args]


def worker_specs(
    settings: Settings,
    *,
    gpus: Sequence[str] = (),
    cpu: int = 0,
    ops: bool = True,
    beat: bool = False,
    loglevel: str = "info",
    state_dir: Path | None = None,
) -> list[ProcessSpec]:
    """The processes to supervise: scoring workers, the ops worker, optionally beat."""
    specs = []
    scoring = ["-P", "prefork", "-c", "1", "-Q", settings.queue_name, "-l", loglevel]
    for i, gpu in enumerate(gpus):
        specs.append(
            ProcessSpec(
                f"gpu{gpu}",
                _celery("worker", *scoring, "-n", f"gpu{gpu}@%h", *CELERY_FLAGS),
                {"CUDA_VISIBLE_DEVICES": gpu, **_metrics_env(settings, i)},
            )
        )
    # CPU workers share the cores with the API, Postgres and each other: one math-library
    # thread each unless the environment says otherwise — idle OpenBLAS/OpenMP threads
    # spin-wait and burn the CPU the rest of the pipeline needs.
    for i in range(cpu):
        env = {"CUDA_VISIBLE_DEVICES": "", **_metrics_env(settings, len(gpus) + i)}
        env.update({v: os.environ.get(v, "1") for v in THREAD_VARS})
        specs.append(
            ProcessSpec(
                f"cpu{i}", _celery("worker", *scoring, "-n", f"cpu{i}@%h", *CELERY_FLAGS), env
            )
        )
    if ops:
        # threads pool: no worker_process_init, so the ops worker never loads a model; its
        # one process serves the ops metrics on the port after the scoring workers'
        argv = ["-P", "threads", "-c", "8", "-Q", settings.ops_queue_name, "-l", loglevel]
        specs.append(
            ProcessSpec(
                "ops",
                _celery("worker", *argv, "-n", "ops@%h", *CELERY_FLAGS),
                _metrics_env(settings, len(gpus) + cpu) or {"MODERATION_WORKER_METRICS_PORT": "0"},
            )
        )
    if beat:
        state = (state_dir or Path(settings.pattern_cache_dir).parent) / "celerybeat-schedule"
        state.parent.mkdir(parents=True, exist_ok=True)
        specs.append(ProcessSpec("beat", _celery("beat", "-l", loglevel, "-s", str(state))))
    return specs


def _metrics_env(settings: Settings, index: int) -> dict[str, str]:
    """The ``index``-th scoring worker serves its metrics on the base port + ``index``."""
    if not settings.worker_metrics_port:
        return {}
    port = settings.worker_metrics_port + index
    if port > 65535:
        raise ValueError(f"worker metrics port {port} is out of range; lower the base port")
    return {"MODERATION_WORKER_METRICS_PORT": str(port)}


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: the child gets SIGTERM if the launcher dies, so no worker outlives it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Supervisor:
    """Keeps every spec's process alive until told to stop."""

    def __init__(
        self, specs: Sequence[ProcessSpec], *, stop_timeout_s: float, max_backoff_s: float = 30
    ) -> None:
        self.specs = list(specs)
        self.stop_timeout_s = stop_timeout_s
        self.max_backoff_s = max_backoff_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}
        self.stopping = False

    def _start(self, spec: ProcessSpec) -> None:
        env = {**os.environ, **spec.env}
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        # Own session: a terminal's Ctrl-C or a group-wide SIGTERM reaches only the launcher,
        # which passes it on to Celery's parent process — never straight to a pool child,
        # which would die mid-batch instead of finishing it.
        self.procs[spec.name] = subprocess.Popen(
            spec.argv, env=env, preexec_fn=preexec, start_new_session=True
        )
        self.started[spec.name] = time.monotonic()
        log.info("started %s (pid %d)", spec.name, self.procs[spec.name].pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for spec in self.specs:
            self._start(spec)
        while not self.stopping:
            self._check()
            time.sleep(0.5)
        return self._drain()

    def _check(self) -> None:
        now = time.monotonic()
        for spec in self.specs:
            proc = self.procs.get(spec.name)
            if proc is not None and proc.poll() is None:
                continue
            if proc is not None:
                ran = now - self.started[spec.name]
                # a child that ran a while before dying starts over with a short backoff
                delay = 1.0 if ran > 60 else min(self.backoff.get(spec.name, 0.5) * 2, 30.0)
                self.backoff[spec.name] = min(delay, self.max_backoff_s)
                self.restart_at[spec.name] = now + self.backoff[spec.name]
                log.error(
                    "%s exited with %s; restarting in %.1f s",
                    spec.name,
                    proc.returncode,
                    self.backoff[spec.name],
                )
                del self.procs[spec.name]
            if now >= self.restart_at.get(spec.name, 0):
                self._start(spec)

    def _drain(self) -> int:
        """Warm shutdown: SIGTERM everyone, wait for batches to finish, then SIGKILL stragglers."""
        live = [p for p in self.procs.values() if p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in live:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
        return 0
