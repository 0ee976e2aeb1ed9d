"""A real `moderation worker` serves Prometheus metrics from its pool child."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import noise_jpeg, png_bytes

from .servers import wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_worker_metrics_count_what_the_worker_finished(stack_factory, pg_url):
    port = _free_port()
    stack = stack_factory(pg_url, worker_metrics_port=port)
    stack.start_worker()
    stack.submit([png_bytes((i, 9, 9)) for i in range(10)], batch=True)
    stack.submit([noise_jpeg()[:-600]])  # truncated: fails with a reason
    stack.wait_all_terminal(timeout=120)

    def counted() -> bool:
        got = _scrape(port)
        return (
            bool(got)
            and got.get(("moderation_jobs_finished_total", (("status", "scored"),)), 0) == 10
        )

    wait_for(counted, 30, "the worker's metrics to show 10 scored jobs", poll=0.5)
    got = _scrape(port)
    assert got is not None
    assert got[("moderation_jobs_finished_total", (("status", "failed"),))] == 1
    assert got[("moderation_batch_size_sum", ())] == 11
    assert got[("moderation_image_duration_seconds_count", ())] == 11
    assert got[("moderation_batches_total", (("result", "ok"),))] >= 2
    # a CPU worker (no CUDA): no GPU series
    assert not any(name.startswith("moderation_gpu_memory") for name, _ in got)


def test_the_ops_worker_serves_the_reaper_metrics(stack_factory, pg_url):
    """compose's worker-ops command: the threads-pool ops worker serves its own metrics, and a
    reaper run shows there."""
    from workers.celery_app import REAP_TASK, make_celery

    port = _free_port()
    stack = stack_factory(pg_url, worker_metrics_port=port)
    stack.start_worker("--cpu", "0", "--ops")
    make_celery(stack.settings).send_task(REAP_TASK)

    def reaped() -> bool:
        got = _scrape(port)
        return bool(got) and (
            ("moderation_task_last_success_timestamp_seconds", (("task", "reap"),)) in got
        )

    wait_for(reaped, 60, "the ops worker's metrics to show a reaper run", poll=0.5)
    got = _scrape(port)
    assert got is not None
    assert got[("moderation_reaper_jobs_total", (("action", "republished"),))] == 0
    assert got.get(("moderation_batch_size_count", ()), 0) == 0  # it scores nothing
