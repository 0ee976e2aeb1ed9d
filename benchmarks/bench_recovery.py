"""Recovery after faults, with the DEFAULT recovery settings (visibility timeout, stale claim,
broker check interval, time limits, DB timeout): seconds from the end of the fault until
every job is scored, and how long the API takes to answer 503 while Postgres is down.

Each run starts its own throwaway Postgres (initdb) and Redis (no persistence) and a real
``moderation worker --cpu 1`` (scoring worker + ops worker; no beat, no reaper from here):

  kill9-main     SIGKILL the scoring worker's Celery main process mid-run; its held messages
                 come back through kombu's restore (the worker stopped refreshing them)
  redis-restart  kill Redis mid-run, start it again empty 1 s later; the ops worker's broker
                 watch republishes what was in flight
  db-outage      stop Postgres; time of each API request until its 503 + Retry-After

Lost jobs (not scored) and duplicate score rows are counted too (both must be 0).

    .venv/bin/python benchmarks/bench_recovery.py
    .venv/bin/python benchmarks/bench_recovery.py --jobs 800 --only kill9-main
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYTHONPATH", str(ROOT))

from moderation.api.app import create_app  # noqa: E402
from moderation.config import Settings  # noqa: E402
from moderation.db.migrate import upgrade  # noqa: E402
from moderation.db.models import Decision, Job, Score  # noqa: E402
from moderation.db.session import make_engine, make_sessionmaker, session_scope  # noqa: E402
from tests.fakes import png_bytes  # noqa: E402
from tests.integration.servers import (  # noqa: E402
    PrivatePostgres,
    PrivateRedis,
    WorkerProcess,
    wait_for,
)

TOKEN = "bench-recovery-token-00001"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
VERBOSE = bool(os.environ.get("BENCH_VERBOSE"))


def settings_for(pg: PrivatePostgres, broker_url: str, workdir: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=pg.url,
        broker_url=broker_url,
        queue_name=f"bench-{uuid.uuid4().hex[:6]}.score",
        ops_queue_name=f"bench-{uuid.uuid4().hex[:6]}.ops",
        backend="fake",
        batch_size=8,
        max_wait_ms=20,
        pattern_cache_dir=workdir / "patterns",
        api_tokens=[f"bench:submitter:{TOKEN}"],
    )


def worker_env(settings: Settings) -> dict[str, str]:
    env = {
        f"MODERATION_{k.upper()}": ",".join(v) if isinstance(v, list) else str(v)
        for k, v in settings.model_dump(mode="json").items()
        if v is not None and k != "api_tokens" and not isinstance(v, dict)
    }
    env["MODERATION_API_TOKENS"] = f"bench:submitter:{TOKEN}"
    env["PYTHONPATH"] = str(ROOT)
    return env


def submit(client: TestClient, n: int, salt: int) -> list[int]:
    ids: list[int] = []
    for start in range(0, n, 200):
        body = {
            "jobs": [
                {"image_base64": base64.b64encode(png_bytes((salt, i % 256, i // 256))).decode()}
                for i in range(start, min(n, start + 200))
            ]
        }
        r = client.post("/v1/jobs/batch", json=body, headers=HEADERS)
        r.raise_for_status()
        ids += [j["id"] for j in r.json()]
    return ids


def counts(settings: Settings) -> dict[str, int]:
    engine = make_engine(settings.database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            out = {
                str(k): int(v)
                for k, v in s.execute(select(Job.status, func.count()).group_by(Job.status))
            }
            out["score_rows"] = int(s.scalar(select(func.count()).select_from(Score)) or 0)
            out["decision_rows"] = int(s.scalar(select(func.count()).select_from(Decision)) or 0)
            out["jobs"] = sum(v for k, v in out.items() if k not in ("score_rows", "decision_rows"))
            return out
    finally:
        engine.dispose()


def settled(settings: Settings, verbose: bool = False) -> bool:
    c = counts(settings)
    if verbose:
        print(f"  {time.strftime('%H:%M:%S')} {c}", flush=True)
    return c["jobs"] > 0 and c.get("queued", 0) + c.get("processing", 0) == 0


def report(name: str, seconds: float, settings: Settings, jobs: int, categories: int) -> None:
    c = counts(settings)
    lost = jobs - c.get("scored", 0)
    duplicates = (c["score_rows"] - c.get("scored", 0) * categories) + (
        c["decision_rows"] - c.get("scored", 0)
    )
    print(
        f"{name:<14} recovered in {seconds:6.1f} s after the fault ended   "
        f"jobs {jobs}  lost {lost}  duplicate rows {duplicates}",
        flush=True,
    )


def run_fault(kind: str, jobs: int, categories: int, deadline: float, settle_s: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    pg = PrivatePostgres()
    pg.init()
    server = PrivateRedis(workdir)
    server.start()
    worker = None
    try:
        upgrade(pg.url)
        settings = settings_for(pg, server.url, workdir)
        worker = WorkerProcess(worker_env(settings), workdir / "worker.log", "--cpu", "1")
        worker.start()
        with TestClient(create_app(settings)) as client:
            first = submit(client, jobs, 1)
            wait_for(lambda: counts(settings).get("scored", 0) > 0, 120, "first results")
            time.sleep(settle_s)  # mid-run, not in the worker's first second
            if kind == "kill9-main":
                os.kill(worker.celery_main("cpu0"), signal.SIGKILL)
                ended = time.monotonic()
                total = len(first)
            else:
                server.kill()
                time.sleep(1)
                server.start()
                ended = time.monotonic()
                total = len(first) + len(submit(client, 40, 2))
            at_fault = counts(settings).get("scored", 0)
            wait_for(lambda: settled(settings, VERBOSE), deadline, "every job to finish", poll=0.25)
            seconds = time.monotonic() - ended
        report(kind, seconds, settings, total, categories)
        print(f"{'':<14} ({at_fault} of {len(first)} were scored when the fault ended)")
    finally:
        if worker is not None:
            worker.kill_all()
        server.kill()
        pg.destroy()


def run_db_outage(requests: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    pg = PrivatePostgres()
    pg.init()
    try:
        upgrade(pg.url)
        settings = settings_for(pg, "redis://127.0.0.1:1/0", workdir)
        body = {"image_base64": base64.b64encode(png_bytes()).decode()}
        with TestClient(create_app(settings)) as client:
            client.post("/v1/jobs", json=body, headers=HEADERS)  # warm the pool
            pg.stop("immediate")
            times: list[float] = []
            statuses: set[tuple[int, str | None]] = set()
            for i in range(requests):
                started = time.perf_counter()
                if i % 2:
                    r = client.get("/v1/jobs/1", headers=HEADERS)
                else:
                    r = client.post("/v1/jobs", json=body, headers=HEADERS)
                times.append(time.perf_counter() - started)
                statuses.add((r.status_code, r.headers.get("retry-after")))
        print(
            f"{'db-outage':<14} {requests} requests while Postgres is down: "
            f"max {max(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s "
            f"(MODERATION_DB_TIMEOUT_S={settings.db_timeout_s:g}); "
            f"answers (status, Retry-After): {sorted(statuses)}",
            flush=True,
        )
    finally:
        pg.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument(
        "--fault-after", type=float, default=2.0, help="seconds after the first result"
    )
    parser.add_argument("--deadline", type=float, default=300, help="give up after (s)")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument(
        "--only", choices=["kill9-main", "redis-restart", "db-outage"], action="append"
    )
    args = parser.parse_args()
    from moderation.scoring.scorers import build_scorer

    categories = len(build_scorer(Settings(_env_file=None, backend="fake")).categories)  # type: ignore[call-arg]
    chosen = args.only or ["kill9-main", "redis-restart", "db-outage"]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    print(
        f"defaults: job_visibility_timeout_s={defaults.job_visibility_timeout_s} "
        f"stale_claim_s={defaults.stale_claim_s} "
        f"broker_check_interval_s={defaults.broker_check_interval_s:g} "
        f"batch_time_limit_s={defaults.batch_time_limit_s} db_timeout_s={defaults.db_timeout_s:g}"
    )
    for kind in chosen:
        if kind == "db-outage":
            run_db_outage(args.requests)
        else:
            run_fault(kind, args.jobs, categories, args.deadline, args.fault_after)


if __name__ == "__main__":
    main()
