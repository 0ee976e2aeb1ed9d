"""Prometheus metrics: the API's /metrics, a batch's counters, the live collectors."""

from __future__ import annotations

import base64
import datetime as dt
import socket
import types
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from moderation.cli.launcher import worker_specs
from moderation.config import Settings
from moderation.db.repositories.jobs import count_by_status, oldest_by_status
from moderation.db.session import make_sessionmaker, session_scope
from moderation.db.types import utcnow
from moderation.metrics import (
    GpuMemoryCollector,
    JobStatusCollector,
    QueueDepthCollector,
    age_seconds,
    broker_queue_keys,
    per_image_seconds,
    start_worker_server,
)
from moderation.pipeline.batch import run_batch
from moderation.pipeline.context import build_context
from moderation.pipeline.intake import Submission, register_submissions
from tests.fakes import ColourScorer, png_bytes

RED = png_bytes((255, 0, 0))
BLACK = png_bytes((0, 0, 0))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed exposition text: (sample name, sorted labels) → value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_api_metrics_count_submitted_and_queued_jobs_and_queue_depth(api):
    before = samples(api.client.get("/metrics").text)
    submitted = before.get(("moderation_api_jobs_submitted_total", ()), 0.0)
    assert before[("moderation_jobs", (("status", "queued"),))] == 0
    body = {"jobs": [{"image_base64": base64.b64encode(p).decode()} for p in (RED, BLACK)]}
    body["jobs"].append({"image_base64": base64.b64encode(RED).decode(), "priority": 9})
    r = api.client.post("/v1/jobs/batch", json=body, headers=api.headers("alice"))
    assert r.status_code in (200, 201, 202), r.text

    resp = api.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    after = samples(resp.text)
    assert after[("moderation_api_jobs_submitted_total", ())] == submitted + 3
    assert after[("moderation_jobs", (("status", "queued"),))] == 3
    assert after[("moderation_jobs", (("status", "processing"),))] == 0
    assert after[("moderation_jobs_up", ())] == 1
    assert 0 <= after[("moderation_jobs_oldest_age_seconds", (("status", "queued"),))] < 60
    assert after[("moderation_jobs_oldest_age_seconds", (("status", "processing"),))] == 0
    # two priorities → two messages, in two of kombu's priority lists: both are counted
    assert api.queued_messages() == 2
    assert after[("moderation_queue_depth", (("queue", "api-test.score"),))] == 2
    assert after[("moderation_queue_depth", (("queue", api.settings.ops_queue_name),))] == 0
    assert after[("moderation_queue_depth_up", ())] == 1


def test_api_metrics_survive_a_dead_broker(api_factory):
    api = api_factory(broker_url="redis://127.0.0.1:1/0")
    got = samples(api.client.get("/metrics").text)
    assert got[("moderation_queue_depth_up", ())] == 0
    assert got[("moderation_jobs_up", ())] == 1


@pytest.fixture
def ctx(engine: Engine) -> Iterator:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    context = build_context(settings, ColourScorer(), make_sessionmaker(engine), worker="m@host")
    yield context
    context.close()


def test_a_batch_moves_outcome_counters_and_latency_histograms(ctx):
    with session_scope(ctx.sessions) as s:
        ids = register_submissions(
            s, [Submission.from_bytes(p) for p in (RED, BLACK, b"not an image")], utcnow()
        )
    names = {
        "scored": ("moderation_jobs_finished_total", {"status": "scored"}),
        "failed": ("moderation_jobs_finished_total", {"status": "failed"}),
        "ok": ("moderation_batches_total", {"result": "ok"}),
        "batches": ("moderation_batch_duration_seconds_count", {}),
        "images": ("moderation_image_duration_seconds_count", {}),
        "size_sum": ("moderation_batch_size_sum", {}),
        "size_le2": ("moderation_batch_size_bucket", {"le": "2.0"}),
        "size_le4": ("moderation_batch_size_bucket", {"le": "4.0"}),
        "skipped": ("moderation_jobs_skipped_total", {}),
    }
    before = {k: value(n, **labels) for k, (n, labels) in names.items()}
    run_batch(ctx, ids)
    run_batch(ctx, ids[:1])  # a redelivery of a finished job: skipped, not counted twice
    delta = {k: value(n, **labels) - before[k] for k, (n, labels) in names.items()}
    assert delta == {
        "scored": 2,
        "failed": 1,
        "ok": 2,
        "batches": 2,
        "images": 4,
        "size_sum": 4,
        "size_le2": 1,
        "size_le4": 2,
        "skipped": 1,
    }
    assert value("moderation_batch_duration_seconds_sum") > 0


def test_job_status_collector_reports_the_backlog_age_from_the_database(engine):
    now = utcnow()
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        register_submissions(s, [Submission.from_bytes(RED)], now - dt.timedelta(seconds=300))
        register_submissions(s, [Submission.from_bytes(BLACK)], now - dt.timedelta(seconds=20))

    def read(query):
        def run(statuses):
            with sessions() as s:
                return query(s, statuses)

        return run

    collector = JobStatusCollector(read(count_by_status), read(oldest_by_status), now=lambda: now)
    got = {
        (s.name, tuple(s.labels.items())): s.value
        for family in collector.collect()
        for s in family.samples
    }
    assert got[("moderation_jobs", (("status", "queued"),))] == 2
    assert got[("moderation_jobs_oldest_age_seconds", (("status", "queued"),))] == 300
    assert got[("moderation_jobs_oldest_age_seconds", (("status", "processing"),))] == 0


def test_age_seconds():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert age_seconds(now - dt.timedelta(minutes=2), now) == 120
    assert age_seconds(None, now) == 0
    assert age_seconds(now + dt.timedelta(seconds=5), now) == 0  # clock skew: never negative


def test_per_image_share():
    assert per_image_seconds(2.0, 4) == 0.5
    assert per_image_seconds(2.0, 0) == 0.0


def test_queue_depth_collector_counts_every_priority_list(redis_url, redis_prefix):
    queue = f"depth-{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(redis_url)
    keys = broker_queue_keys(queue, redis_prefix)
    assert keys[0] == f"{redis_prefix}{queue}" and len(keys) == 4
    client.rpush(keys[0], "a", "b")
    client.rpush(keys[3], "c")
    client.rpush(f"{redis_prefix}other", "x")
    got = {
        (s.name, tuple(s.labels.items())): s.value
        for family in QueueDepthCollector(redis_url, [queue, "empty"], redis_prefix).collect()
        for s in family.samples
    }
    client.close()
    assert got == {
        ("moderation_queue_depth", (("queue", queue),)): 3,
        ("moderation_queue_depth", (("queue", "empty"),)): 0,
        ("moderation_queue_depth_up", ()): 1,
    }


def _fake_torch(available: bool) -> types.SimpleNamespace:
    cuda = types.SimpleNamespace(
        is_available=lambda: available,
        device_count=lambda: 2,
        memory_allocated=lambda d: 1000 * (d + 1),
        memory_reserved=lambda d: 4000 * (d + 1),
    )
    return types.SimpleNamespace(cuda=cuda)


def test_gpu_memory_is_absent_without_cuda_and_per_device_with_it():
    assert list(GpuMemoryCollector(lambda: None).collect()) == []
    assert list(GpuMemoryCollector(lambda: _fake_torch(False)).collect()) == []
    families = {f.name: f for f in GpuMemoryCollector(lambda: _fake_torch(True)).collect()}
    allocated = {
        s.labels["device"]: s.value
        for s in families["moderation_gpu_memory_allocated_bytes"].samples
    }
    reserved = {
        s.labels["device"]: s.value
        for s in families["moderation_gpu_memory_reserved_bytes"].samples
    }
    assert allocated == {"0": 1000, "1": 2000} and reserved == {"0": 4000, "1": 8000}


def test_real_torch_on_cpu_exposes_no_gpu_series():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    assert list(GpuMemoryCollector().collect()) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_worker_server_serves_the_process_metrics():
    assert start_worker_server(0, "127.0.0.1") is None
    port = _free_port()
    thread = start_worker_server(port, "127.0.0.1")
    assert thread is not None
    thread.join(timeout=15)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"moderation_jobs_finished", "moderation_batch_duration_seconds"} <= names


def test_launcher_gives_each_scoring_worker_its_own_metrics_port(tmp_path):
    settings = Settings(_env_file=None, worker_metrics_port=9200)  # type: ignore[call-arg]
    specs = worker_specs(settings, gpus=["0", "3"], cpu=2, ops=True, state_dir=tmp_path)
    ports = {s.name: s.env.get("MODERATION_WORKER_METRICS_PORT") for s in specs}
    assert ports == {"gpu0": "9200", "gpu3": "9201", "cpu0": "9202", "cpu1": "9203", "ops": "9204"}
    off = worker_specs(Settings(_env_file=None), gpus=["0"], ops=True)  # type: ignore[call-arg]
    assert "MODERATION_WORKER_METRICS_PORT" not in off[0].env
    assert off[1].env["MODERATION_WORKER_METRICS_PORT"] == "0"  # ops: no port either


def _in_process(code: str, env: dict[str, str]) -> str:
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
        text=True, check=True, timeout=120,
    ).stdout  # fmt: skip


def test_api_processes_share_counters_in_multiprocess_mode(tmp_path):
    """Several uvicorn processes behind one port: /metrics adds up every process's counts,
    and `moderation api` starts from an empty directory."""
    shared = tmp_path / "prom"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    shared.mkdir()
    (shared / "counter_999.db").write_bytes(b"stale")  # left by a previous run
    _in_process("from moderation.cli.worker import _fresh_multiprocess_dir as f; f()", env)
    assert list(shared.iterdir()) == []
    bump = "from moderation.metrics import JOBS_SUBMITTED; JOBS_SUBMITTED.inc({n})"
    _in_process(bump.format(n=2), env)
    _in_process(bump.format(n=3), env)
    render = (
        "from prometheus_client import generate_latest; from moderation.metrics import "
        "api_registry; print(generate_latest(api_registry()).decode())"
    )
    got = samples(_in_process(render, env))
    assert got[("moderation_api_jobs_submitted_total", ())] == 5
