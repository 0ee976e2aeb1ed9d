"""Hostile request bodies against a real API process: how long until the 4xx, how far the
API's RSS peak rises, and how slow ``/healthz`` gets meanwhile.

Scenarios (issue 15's audit):

- ``batch``: one submitter POSTs ``{"jobs": [{"image_base64": ""}, …]}`` with 2.5 M items
  (50 MB) to ``/v1/jobs/batch``, whose limit is 256 items.
- ``reviews``: four clients without a token POST 94 MB bodies to ``/v1/reviews`` at once.

The API runs under uvicorn in a subprocess (one worker) on a throwaway PostgreSQL database
and the local Redis; ``--code DIR`` puts another checkout's ``moderation`` first on its path,
so the same script measures before and after::

    .venv/bin/python benchmarks/bench_hostile_bodies.py                  # this checkout
    git archive main moderation migrations | tar -x -C /tmp/old
    .venv/bin/python benchmarks/bench_hostile_bodies.py --code /tmp/old  # main

Peak RSS is the API process's ``VmHWM`` (Linux); ``/healthz`` is polled every 20 ms from
another thread while the hostile request runs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get(
    "MODERATION_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("MODERATION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SUBMITTER = "bench-submitter-secret-00001"


def _admin(sql: str) -> None:
    conninfo = make_url(PG_ADMIN_URL).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(sql)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Api:
    """uvicorn serving ``create_app_from_env`` from ``code`` on a fresh database."""

    def __init__(self, code: Path) -> None:
        self.db = f"bench_hostile_{uuid.uuid4().hex[:8]}"
        _admin(f'CREATE DATABASE "{self.db}"')
        url = make_url(PG_ADMIN_URL).set(database=self.db).render_as_string(hide_password=False)
        self.port = _free_port()
        env = {
            **os.environ,
            "PYTHONPATH": f"{code}{os.pathsep}{ROOT}",
            "MODERATION_DATABASE_URL": url,
            "MODERATION_BROKER_URL": REDIS_URL,
            "MODERATION_BROKER_KEY_PREFIX": f"bench-hostile:{self.db}:",
            "MODERATION_API_TOKENS": f"bench:submitter:{SUBMITTER}",
            "MODERATION_BACKEND": "fake",
        }
        subprocess.run(
            [sys.executable, "-c", "import sys; from moderation.db.migrate import upgrade; "
             "upgrade(sys.argv[1])", url],
            env=env, check=True, cwd="/",
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "moderation.api.app:create_app_from_env",
             "--factory", "--port", str(self.port), "--log-level", "warning"],
            env=env, cwd="/",
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the API did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        _admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def _poll_health(base: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/healthz")
            out.append(time.perf_counter() - started)
            stop.wait(0.02)


def _post(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        r = httpx.post(f"{base}{path}", content=body, headers=headers, timeout=300)
        outcome = f"{r.status_code} {r.text[:60]}"
    except httpx.HTTPError as exc:  # the server may answer and close before the body is sent
        outcome = f"closed early ({type(exc).__name__})"
    return outcome, time.perf_counter() - started


def run(api: Api, scenario: str) -> dict[str, object]:
    json_ct = {"content-type": "application/json"}
    if scenario == "batch":
        body = b'{"jobs": [' + b",".join([b'{"image_base64":""}'] * 2_500_000) + b"]}"
        requests = [("/v1/jobs/batch", body, {**json_ct, "authorization": f"Bearer {SUBMITTER}"})]
    else:
        body = b'{"item_id": 1, "label": "violation", "note": "' + b"n" * 94_000_000 + b'"}'
        requests = [("/v1/reviews", body, json_ct)] * 4
    rss_before = _vm(api.proc.pid, "VmRSS")
    stop, health = threading.Event(), []
    poller = threading.Thread(target=_poll_health, args=(api.base, stop, health))
    poller.start()
    results: list[tuple[str, float]] = []
    senders = [
        threading.Thread(target=lambda r=r: results.append(_post(api.base, *r))) for r in requests
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    stop.set()
    poller.join()
    return {
        "scenario": scenario,
        "body_mb": round(len(body) / 1e6, 1),
        "requests": len(requests),
        "outcomes": sorted({o for o, _ in results}),
        "slowest_answer_s": round(max(s for _, s in results), 3),
        "api_rss_before_mib": round(rss_before),
        "api_peak_rss_mib": round(_vm(api.proc.pid, "VmHWM")),
        "healthz_max_s": round(max(health), 3) if health else None,
        "healthz_polls": len(health),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose API to run")
    parser.add_argument("--scenario", choices=["batch", "reviews", "all"], default="all")
    args = parser.parse_args()
    for scenario in ["batch", "reviews"] if args.scenario == "all" else [args.scenario]:
        api = Api(args.code.resolve())  # a fresh process each: the peaks do not mix
        try:
            print(json.dumps({"code": str(args.code), **run(api, scenario)}), flush=True)
        finally:
            api.close()


if __name__ == "__main__":
    main()
