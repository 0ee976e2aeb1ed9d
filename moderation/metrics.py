"""Prometheus metrics: what the pipeline counts, and collectors read live at scrape time.

Two kinds of series:

* **Process metrics** (counters/histograms on the default registry) move where the work
  happens: ``run_batch`` records terminal outcomes, batch sizes and latencies in the scoring
  process; the API counts submissions. Each process exposes its own; Prometheus sums them.
* **Ops metrics** move in the ops worker (threads pool, one process): what the reaper
  republished, callbacks given up on, when each beat task last succeeded, and the recall the
  threshold adjuster estimated. The ops worker serves them on its own port
  (``on_worker_init`` in ``workers.lifecycle``).
* **Live collectors** (``QueueDepthCollector``, ``JobStatusCollector``, ``GpuMemoryCollector``)
  ask Redis, Postgres or torch when scraped, so their values are the same whichever process
  answers and nothing has to be kept in sync. The API serves the queue and DB collectors (one
  place, no duplicated series); each scoring worker serves its own GPU's memory.

Why one port per scoring worker instead of prometheus-client's multiprocess mode: a scoring
node is a Celery parent with exactly one pool child (``-c 1``), and the batch, the model and
CUDA all live in that child — so the child serves ``/metrics`` itself (started in
``worker_process_init``). There is no shared mmap directory to wipe on restart or to leak
files when ``worker_max_memory_per_child`` replaces the child; a replaced child starts its
counters at zero, which ``rate()``/``increase()`` treat as a counter reset. The API, which runs
several uvicorn processes behind one port, does use multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set (see ``api_registry``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "BATCHES",
    "BATCH_SECONDS",
    "BATCH_SIZE",
    "CALLBACKS",
    "CALLBACK_SECONDS",
    "IMAGE_SECONDS",
    "JOBS_FINISHED",
    "JOBS_SKIPPED",
    "JOBS_SUBMITTED",
    "REAPED",
    "RECALL_ESTIMATE",
    "RECALL_LOWER_BOUND",
    "RECALL_TARGET",
    "TASK_LAST_SUCCESS",
    "GpuMemoryCollector",
    "JobStatusCollector",
    "QueueDepthCollector",
    "age_seconds",
    "api_registry",
    "broker_queue_keys",
    "per_image_seconds",
    "recall_in_force",
    "record_batch",
    "record_callback",
    "record_reap",
    "record_recall",
    "record_task_success",
    "start_worker_server",
]

log = logging.getLogger(__name__)

# Batches take from tens of milliseconds (fake/CPU classifier) to minutes (a big GME batch on
# a busy GPU, up to the soft time limit); per image, from a millisecond to tens of seconds.
_BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_IMAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

JOBS_FINISHED = Counter(
    "moderation_jobs_finished",
    "Jobs brought to a terminal state by this process, by status.",
    ["status"],
)
JOBS_SKIPPED = Counter(
    "moderation_jobs_skipped",
    "Deliveries of jobs that were already terminal (redelivery) or unknown.",
)
BATCHES = Counter(
    "moderation_batches",
    "Scoring batches run by this process, by result (ok, or retry: delivered again).",
    ["result"],
)
BATCH_SECONDS = Histogram(
    "moderation_batch_duration_seconds",
    "Wall time of one scoring batch: claim, decode, score, decide, commit.",
    buckets=_BATCH_BUCKETS,
)
IMAGE_SECONDS = Histogram(
    "moderation_image_duration_seconds",
    "Per-image share of its batch's wall time (batch seconds / jobs), one sample per job.",
    buckets=_IMAGE_BUCKETS,
)
BATCH_SIZE = Histogram(
    "moderation_batch_size",
    "Jobs per scoring batch (how full the micro-batches run).",
    buckets=_SIZE_BUCKETS,
)
JOBS_SUBMITTED = Counter("moderation_api_jobs_submitted", "Jobs accepted by the API.")

# --- ops worker ---------------------------------------------------------------------------
REAPED = Counter(
    "moderation_reaper_jobs",
    "What the reaper and the broker watch handed back, by action: republished (no message in "
    "Redis carried the job any more), quarantined (stale claim out of attempts), callbacks "
    "(pending callbacks re-dispatched), requeued (a redelivered batch's claim back to queued).",
    ["action"],
)
RETENTION_PURGED = Counter(
    "moderation_retention_purged",
    "Images whose stored bytes retention deleted, by reason (clear, reviewed).",
    ["reason"],
)
BROKER_RESETS = Counter(
    "moderation_broker_resets",
    "Times the broker watch found that Redis had lost its state (restart without "
    "persistence, failover) and republished what was in flight.",
)
CALLBACKS = Counter(
    "moderation_callbacks",
    "Decision callback dispatches by result: sent, failed (retried later on the schedule), "
    "dead (given up: refused, or past MODERATION_CALLBACK_MAX_AGE_S — a dead letter).",
    ["result"],
)
CALLBACK_SECONDS = Histogram(
    "moderation_callback_duration_seconds",
    "Wall time of one callback dispatch (its POSTs, their backoff) by result.",
    ["result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
TASK_LAST_SUCCESS = Gauge(
    "moderation_task_last_success_timestamp_seconds",
    "Unix time a periodic task (reap, adjust, rollup; watch: the ops worker's broker watch) "
    "last finished in this process.",
    ["task"],
)
RECALL_ESTIMATE = Gauge(
    "moderation_recall_estimate",
    "The threshold adjuster's recall estimate at the threshold it leaves in force, per category "
    "(absent when the evidence was too thin to estimate).",
    ["category"],
)
RECALL_LOWER_BOUND = Gauge(
    "moderation_recall_lower_bound",
    "The one-sided lower confidence bound of that recall estimate.",
    ["category"],
)
RECALL_TARGET = Gauge(
    "moderation_recall_target",
    "The recall the recall_target adjuster holds, per category it estimated.",
    ["category"],
)

# kombu's Redis transport keeps one list per priority step: the queue name for step 0 and
# ``name + "\x06\x16" + step`` for the others (kombu.transport.redis: priority_steps, sep).
_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def broker_queue_keys(queue: str, key_prefix: str = "") -> list[str]:
    """The Redis lists that hold ``queue``'s waiting messages, one per priority step."""
    return [
        f"{key_prefix}{queue}" if step == 0 else f"{key_prefix}{queue}{_KOMBU_PRIORITY_SEP}{step}"
        for step in _KOMBU_PRIORITY_STEPS
    ]


def per_image_seconds(batch_seconds: float, jobs: int) -> float:
    """A batch's wall time shared out over its jobs (0 jobs → 0)."""
    return batch_seconds / jobs if jobs > 0 else 0.0


def record_batch(
    seconds: float,
    jobs: int,
    *,
    scored: int = 0,
    failed: int = 0,
    quarantined: int = 0,
    skipped: int = 0,
    ok: bool = True,
) -> None:
    """Count one batch's outcome (called by ``run_batch`` in whatever process runs it)."""
    BATCHES.labels(result="ok" if ok else "retry").inc()
    BATCH_SECONDS.observe(seconds)
    BATCH_SIZE.observe(jobs)
    share = per_image_seconds(seconds, jobs)
    for _ in range(jobs):
        IMAGE_SECONDS.observe(share)
    for status, n in (("scored", scored), ("failed", failed), ("quarantined", quarantined)):
        if n:
            JOBS_FINISHED.labels(status=status).inc(n)
    if skipped:
        JOBS_SKIPPED.inc(skipped)


def record_reap(*, republished: int, quarantined: int, callbacks: int) -> None:
    """Count one reaper run's hand-backs (called in the ops worker)."""
    for action, n in (
        ("republished", republished),
        ("quarantined", quarantined),
        ("callbacks", callbacks),
    ):
        REAPED.labels(action=action).inc(n)


def record_broker_watch(*, reset: bool, requeued: int, republished: int) -> None:
    """Count one broker watch (called in the ops worker)."""
    if reset:
        BROKER_RESETS.inc()
    REAPED.labels(action="requeued").inc(requeued)
    REAPED.labels(action="republished").inc(republished)


def record_callback(result: str, seconds: float | None = None) -> None:
    """One callback dispatch: ``sent``, ``failed`` (will be retried) or ``dead``."""
    CALLBACKS.labels(result=result).inc()
    if seconds is not None:
        CALLBACK_SECONDS.labels(result=result).observe(seconds)


def record_task_success(task: str, at: float | None = None) -> None:
    TASK_LAST_SUCCESS.labels(task=task).set(time.time() if at is None else at)


def recall_in_force(evidence: Mapping[str, Any]) -> tuple[float, float] | None:
    """(estimate, lower bound) at the threshold a recall_target proposal leaves in force — the
    proposed one, else the current one — or None when the proposal computed no recall (thin
    evidence, a pinned version, the seed adjuster) or the estimate is undefined."""
    point = evidence.get("at_proposed") or evidence.get("at_current")
    if not isinstance(point, Mapping):
        return None
    estimate, lower = point.get("recall_estimate"), point.get("recall_lower")
    if estimate is None or lower is None:
        return None
    return float(estimate), float(lower)


def record_recall(target: float, estimates: Mapping[str, tuple[float, float]]) -> None:
    """Replace the recall gauges with one adjuster run's estimates: a category the run could
    not estimate disappears instead of showing a stale value."""
    for gauge in (RECALL_ESTIMATE, RECALL_LOWER_BOUND, RECALL_TARGET):
        gauge.clear()
    for category, (estimate, lower) in estimates.items():
        RECALL_ESTIMATE.labels(category=category).set(estimate)
        RECALL_LOWER_BOUND.labels(category=category).set(lower)
        RECALL_TARGET.labels(category=category).set(target)


def age_seconds(oldest: dt.datetime | None, now: dt.datetime) -> float:
    """Seconds since ``oldest`` (0 when there is none, never negative)."""
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


class QueueDepthCollector(Collector):
    """``moderation_queue_depth{queue}``: messages waiting in Redis (LLEN over priority lists).

    A message carries up to ``batch_size`` job ids, so this counts messages, not jobs; the DB
    gauge ``moderation_jobs{status="queued"}`` counts jobs. A Redis error yields
    ``moderation_queue_depth_up 0`` instead of failing the whole scrape.
    """

    def __init__(self, redis_url: str, queues: Sequence[str], key_prefix: str = "") -> None:
        self.redis_url = redis_url
        self.queues = list(queues)
        self.key_prefix = key_prefix
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
        return self._client

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "moderation_queue_depth", "Messages waiting in the broker queue.", labels=["queue"]
        )
        up = GaugeMetricFamily(
            "moderation_queue_depth_up", "1 if the broker answered the queue-depth query."
        )
        try:
            pipe = self._redis().pipeline(transaction=False)
            for queue in self.queues:
                for key in broker_queue_keys(queue, self.key_prefix):
                    pipe.llen(key)
            lengths = pipe.execute()
        except Exception as exc:
            log.warning("queue depth: broker unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        steps = len(_KOMBU_PRIORITY_STEPS)
        for i, queue in enumerate(self.queues):
            depth.add_metric([queue], float(sum(lengths[i * steps : (i + 1) * steps])))
        up.add_metric([], 1)
        yield depth
        yield up


class JobStatusCollector(Collector):
    """``moderation_jobs{status}``: jobs queued and processing now, from the database, and
    ``moderation_jobs_oldest_age_seconds{status}``: how long ago the oldest of them was
    submitted (0 when there is none) — the backlog's age, which a count cannot show.

    Only the non-terminal statuses: they are few rows and ``jobs(status, submitted_at)`` is
    indexed, so the count and the minimum stay cheap however large the table grows (terminal
    totals come from the workers' counters instead of a full-table count on every scrape).
    """

    STATUSES = ("queued", "processing")

    def __init__(
        self,
        count: Callable[[Sequence[str]], dict[str, int]],
        oldest: Callable[[Sequence[str]], Mapping[str, dt.datetime]] | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.count = count
        self.oldest = oldest
        self.now = now

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "moderation_jobs", "Jobs currently in a non-terminal status.", labels=["status"]
        )
        age = GaugeMetricFamily(
            "moderation_jobs_oldest_age_seconds",
            "Seconds since the oldest job now in this status was submitted (0: none).",
            labels=["status"],
        )
        up = GaugeMetricFamily("moderation_jobs_up", "1 if the database answered the job count.")
        try:
            counts = self.count(self.STATUSES)
            oldest = self.oldest(self.STATUSES) if self.oldest is not None else None
        except Exception as exc:
            log.warning("job status gauge: database unreachable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        for status in self.STATUSES:
            gauge.add_metric([status], float(counts.get(status, 0)))
        up.add_metric([], 1)
        yield gauge
        if oldest is not None:
            now = self.now()
            for status in self.STATUSES:
                age.add_metric([status], age_seconds(oldest.get(status), now))
            yield age
        yield up


class GpuMemoryCollector(Collector):
    """``moderation_gpu_memory_{allocated,reserved}_bytes{device}`` when CUDA is in use.

    Reads torch's caching-allocator counters only if this process already imported torch and
    CUDA is available: it never imports torch itself (an Open-NSFW or ops process has none),
    and on a CPU host the series are simply absent.
    """

    def __init__(self, torch_module: Callable[[], Any] = lambda: sys.modules.get("torch")) -> None:
        self._torch = torch_module

    def collect(self) -> Iterator[Metric]:
        torch = self._torch()
        if torch is None:
            return
        try:
            if not torch.cuda.is_available():
                return
            devices = range(torch.cuda.device_count())
            allocated = [(str(d), float(torch.cuda.memory_allocated(d))) for d in devices]
            reserved = [(str(d), float(torch.cuda.memory_reserved(d))) for d in devices]
        except Exception as exc:  # a broken driver must not break the scrape
            log.warning("gpu memory: %s", exc)
            return
        yield _gauge(
            "moderation_gpu_memory_allocated_bytes", "GPU memory held by tensors.", allocated
        )
        yield _gauge(
            "moderation_gpu_memory_reserved_bytes",
            "GPU memory reserved by torch's caching allocator.",
            reserved,
        )


def _gauge(name: str, doc: str, values: Iterable[tuple[str, float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["device"])
    for device, value in values:
        family.add_metric([device], value)
    return family


class _Chain(Collector):
    """Several collectors as one (``generate_latest`` only needs ``collect``)."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def api_registry(*live: Collector) -> Collector:
    """What the API's ``/metrics`` renders: this process's (or, with
    ``PROMETHEUS_MULTIPROC_DIR``, every uvicorn process's) metrics plus the live collectors."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return _Chain(merged, *live)
    return _Chain(REGISTRY, *live)


def start_worker_server(
    port: int, host: str, *, retry_for_s: float = 10.0
) -> threading.Thread | None:
    """Serve this process's metrics plus GPU memory on ``host:port`` (0 = off), in a thread.

    Binding is retried for ``retry_for_s``: when Celery replaces a pool child the old one may
    still hold the port for a moment. A port that stays taken is logged, never fatal — a
    worker without metrics still scores.
    """
    if not port:
        return None
    from prometheus_client import start_http_server

    registry = CollectorRegistry()
    registry.register(_Chain(REGISTRY, GpuMemoryCollector()))

    def serve() -> None:
        deadline = time.monotonic() + retry_for_s
        while True:
            try:
                start_http_server(port, addr=host, registry=registry)
                log.info("metrics on http://%s:%d/metrics", host, port)
                return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    log.error("metrics port %s:%d unavailable, serving none: %s", host, port, exc)
                    return
                time.sleep(0.5)

    thread = threading.Thread(target=serve, name="metrics-bind", daemon=True)
    thread.start()
    return thread
