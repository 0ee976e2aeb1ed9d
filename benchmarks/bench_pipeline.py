"""End-to-end pipeline throughput (API → Redis → worker → Postgres) vs the raw scorer.

One run, side by side, on the real Postgres and Redis of this machine (a fresh database and a
private Redis key prefix, both removed afterwards):

  raw      the scorer alone: ``score_images`` on pre-decoded images, ``batch_size`` at a time
  intake   the API alone: batch submissions, no worker running (jobs/s accepted)
  drain    the worker alone: the jobs queued by ``intake`` (jobs/s scored)
  e2e      submit-to-scored with API and worker running together (jobs/s) — the ceiling

and prints e2e / raw. CPU seconds per part (API, worker, the rest = Postgres + Redis + this
client) say what limits the ceiling.

    .venv/bin/python benchmarks/bench_pipeline.py --backend fake --jobs 4000
    .venv/bin/python benchmarks/bench_pipeline.py --backend open_nsfw --jobs 400 --size 640x480
    .venv/bin/python benchmarks/bench_pipeline.py --backend fake --device-ms 8 --jobs 2000

``--compare REV`` runs the API and the worker of ``git archive REV`` (e.g. ``63bc71e``, main
before issue 19's CPU work) and of this checkout one after the other on the same machine,
``--rounds`` times alternately, and prints CPU per job per part side by side; ``--code DIR``
(repeatable) names checkouts directly. The load average is printed with every run: CPU seconds
are what other processes' load disturbs least, wall-clock rates are not comparable across
runs on a shared machine.

    .venv/bin/python benchmarks/bench_pipeline.py --backend fake --jobs 4000 --compare 63bc71e

``--device-ms`` (backend fake) holds each forward ``8 ms × images`` without using a CPU, as a
GPU would (``MODERATION_FAKE_DEVICE_MS_PER_IMAGE``): e2e / raw then says how much of the
device's time the pipeline's CPU work (decode, hashing, database, broker) fails to hide.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis
from PIL import Image
from sqlalchemy import Engine, func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.config import Settings  # noqa: E402
from moderation.db.migrate import upgrade  # noqa: E402
from moderation.db.models import Job  # noqa: E402
from moderation.db.session import make_engine  # noqa: E402
from moderation.domain import JobStatus  # noqa: E402
from moderation.images import decode_image  # noqa: E402

PG = os.environ.get("MODERATION_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("MODERATION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = "bench-submitter-token-00000000000000001"
TICKS = os.sysconf("SC_CLK_TCK")


def images(n: int, size: tuple[int, int]) -> list[bytes]:
    """Distinct JPEGs (distinct bytes, so score reuse never shortcuts the model)."""
    base = Image.effect_noise(size, 40).convert("RGB")
    out = []
    for i in range(n):
        stamp(base, i)
        buf = io.BytesIO()
        base.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def stamp(image: Image.Image, i: int) -> None:
    """Write ``i`` as four 8×8 blocks of 16 grey levels: JPEG keeps them distinct."""
    for digit in range(4):
        level = ((i >> (4 * digit)) & 15) * 16
        image.paste((level, level, level), (8 * digit, 0, 8 * digit + 8, 8))


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICKS


def tree(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    out, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        frontier += kids
    return out


def wait_idle(pid: int, *, least_s: float = 3.0, most_s: float = 120.0) -> None:
    """Until the process tree of ``pid`` has stopped starting up: at least ``least_s``, then
    until it used under 2 % of a core over half a second (a loaded machine can take longer
    than any fixed pause to start a worker, whose start-up CPU would then count as per-job)."""
    time.sleep(least_s)
    deadline = time.monotonic() + most_s
    before = cpu_seconds(tree(pid))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(tree(pid))
        if now - before < 0.01 and len(tree(pid)) > 1:
            return
        before = now


def db_backends(database: str) -> list[int]:
    """Postgres backend processes serving ``database`` (their title names it)."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f" {database} ".encode() in cmdline.read_bytes():
                out.append(int(cmdline.parent.name))
        except OSError:
            continue
    return out


def machine_cpu() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(fields) if i not in (3, 4))  # minus idle, iowait
    return busy / TICKS


class Bench:
    def __init__(self, args: argparse.Namespace, code: Path = ROOT) -> None:
        self.args = args
        self.code = code
        self.db = f"bench_{uuid.uuid4().hex[:8]}"
        self.prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.db}"
        self.port = 18000 + os.getpid() % 1000
        self.env = {
            **os.environ,
            "MODERATION_DATABASE_URL": self.url,
            "MODERATION_BROKER_URL": REDIS,
            "MODERATION_BROKER_KEY_PREFIX": self.prefix,
            "MODERATION_BACKEND": args.backend,
            "MODERATION_BATCH_SIZE": str(args.batch_size),
            "MODERATION_MAX_WAIT_MS": "20",
            "MODERATION_MAX_BATCH_JOBS": str(args.chunk),
            "MODERATION_API_TOKENS": f"bench:submitter:{TOKEN}",
            "MODERATION_API_PORT": str(self.port),
            "MODERATION_FAKE_DEVICE_MS_PER_IMAGE": str(args.device_ms),
            # the API and worker import ``code``'s moderation and workers packages
            "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self._poll_engine: Engine | None = None

    def start(self, *argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moderation", *argv],
            # ``-m`` puts the working directory first on sys.path, before PYTHONPATH
            cwd=self.code,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def fresh_db(self) -> None:
        if self._poll_engine is not None:  # its pooled connection would block DROP DATABASE
            self._poll_engine.dispose()
            self._poll_engine = None
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db}"')
        upgrade(self.url)

    def cleanup(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        if self._poll_engine is not None:
            self._poll_engine.dispose()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        r = redis.Redis.from_url(REDIS)
        keys = list(r.scan_iter(f"{self.prefix}*"))
        if keys:
            r.delete(*keys)

    def submit_all(self, payloads: list[bytes]) -> None:
        """POST ``payloads`` to the batch endpoint, ``--chunk`` images per request, as multipart
        files (raw bytes, what an upload pipeline sends) or JSON with base64 (``--upload``)."""
        chunk = self.args.chunk
        chunks = [payloads[i : i + chunk] for i in range(0, len(payloads), chunk)]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120) as client:

            def post(images: list[bytes]) -> None:
                if self.args.upload == "json":
                    body = {
                        "jobs": [{"image_base64": base64.b64encode(p).decode()} for p in images]
                    }
                    r = client.post("/v1/jobs/batch", json=body, headers=headers)
                else:
                    files = [("files", (f"{i}.jpg", p, "image/jpeg")) for i, p in enumerate(images)]
                    r = client.post("/v1/jobs/batch", files=files, headers=headers)
                r.raise_for_status()

            with cf.ThreadPoolExecutor(self.args.clients) as pool:
                list(pool.map(post, chunks))

    def finished(self) -> int:
        # one engine per database for the whole poll (a new engine per poll cost this client
        # more CPU than the API spent per job — on the cores the pipeline needs)
        if self._poll_engine is None or self._poll_engine.url.database != self.db:
            if self._poll_engine is not None:
                self._poll_engine.dispose()
            self._poll_engine = make_engine(self.url, pool_size=1)
        with self._poll_engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.status.in_((JobStatus.SCORED, JobStatus.FAILED)))
                )
                or 0
            )

    def wait_finished(self, n: int) -> None:
        while self.finished() < n:
            time.sleep(0.1)

    def api(self) -> subprocess.Popen[bytes]:
        proc = self.start("api", "--workers", str(self.args.api_workers))
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                    return proc
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("API did not start")

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        saved = self.env
        self.env = {**self.env, **env}
        try:
            return self.start("worker", "--cpu", str(self.args.workers), "--no-ops")
        finally:
            self.env = saved

    def drain(self, payloads: list[bytes], **env: str) -> float:
        """jobs/s of a worker alone on ``payloads`` queued beforehand (startup excluded)."""
        worker = self.worker(**env)
        while self.finished() == 0:
            time.sleep(0.02)
        before = self.finished()
        t0 = time.perf_counter()
        self.wait_finished(len(payloads))
        rate = (len(payloads) - before) / (time.perf_counter() - t0)
        self.stop(worker)
        return rate


def raw_scorer(args: argparse.Namespace, payloads: list[bytes]) -> tuple[float, float]:
    """(images/s wall, CPU seconds per image) of the scorer alone."""
    from moderation.pipeline.context import limit_blas_threads
    from moderation.scoring.scorers import build_scorer

    limit_blas_threads()  # as in a worker: idle OpenBLAS threads would spin on CPU time
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        backend=args.backend,
        batch_size=args.batch_size,
        fake_device_ms_per_image=args.device_ms,
    )
    scorer = build_scorer(settings)
    decoded = [decode_image(p).image for p in payloads]
    scorer.score_images(decoded[: args.batch_size])  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(decoded), args.batch_size):
        scorer.score_images(decoded[i : i + args.batch_size])
    return len(decoded) / (time.perf_counter() - start), (time.process_time() - cpu) / len(decoded)


def measure(args: argparse.Namespace, payloads: list[bytes], code: Path) -> dict[str, float]:
    """intake alone, drain alone, then e2e with CPU per part, for the API and worker of
    ``code``."""
    bench = Bench(args, code)
    out: dict[str, float] = {}
    try:
        # intake alone, then drain alone
        bench.fresh_db()
        api = bench.api()
        t0 = time.perf_counter()
        bench.submit_all(payloads)
        out["intake"] = args.jobs / (time.perf_counter() - t0)
        out["drain"] = bench.drain(payloads)
        if args.compare_ahead:  # the same drain without the model's look-ahead
            bench.fresh_db()
            bench.submit_all(payloads)
            out["drain_off"] = bench.drain(payloads, MODERATION_FORWARD_AHEAD="off")
        # together: submit-to-scored
        bench.fresh_db()
        worker = bench.worker()
        wait_idle(worker.pid)  # its start-up CPU (imports, scorer, pool) is not per-job CPU
        m0, a0, w0 = machine_cpu(), cpu_seconds(tree(api.pid)), cpu_seconds(tree(worker.pid))
        c0 = time.process_time()
        t0 = time.perf_counter()
        bench.submit_all(payloads)
        bench.wait_finished(args.jobs)
        out["wall"] = time.perf_counter() - t0
        out["e2e"] = args.jobs / out["wall"]
        out["API"] = (cpu_seconds(tree(api.pid)) - a0) / args.jobs
        out["worker"] = (cpu_seconds(tree(worker.pid)) - w0) / args.jobs
        # backends of the fresh database: their whole life is this phase (pools keep them open)
        out["Postgres"] = cpu_seconds(db_backends(bench.db)) / args.jobs
        out["client"] = (time.process_time() - c0) / args.jobs
        out["machine"] = machine_cpu() - m0
        out["load"] = os.getloadavg()[0]
    finally:
        bench.cleanup()
    return out


def archive(rev: str, into: Path) -> Path:
    """``git archive rev`` of this repository, unpacked under ``into``."""
    target = into / rev.replace("/", "_")
    target.mkdir(parents=True)
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=tar, check=True)
    return target


PARTS = ("API", "worker", "Postgres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="fake")
    parser.add_argument("--jobs", type=int, default=4000)
    parser.add_argument("--size", default="64x64", help="image size WxH")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=256, help="images per batch request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent submitting clients")
    parser.add_argument(
        "--upload",
        choices=("multipart", "json"),
        default="multipart",
        help="batch requests as multipart files or JSON with base64 bytes",
    )
    parser.add_argument(
        "--device-ms",
        type=float,
        default=0.0,
        help="backend fake: device time per image in ms (sleeps, no CPU), e.g. 8 ≈ GME-2B "
        "at 448² on an H100",
    )
    parser.add_argument(
        "--compare-ahead",
        action="store_true",
        help="also drain with MODERATION_FORWARD_AHEAD=off (before/after in one run)",
    )
    parser.add_argument(
        "--code",
        type=Path,
        action="append",
        help="a checkout whose API and worker to run (repeatable: side by side; default: this one)",
    )
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="run git archive REV (before) and this checkout (after) side by side",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate the checkouts this many times"
    )
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="CPU worker processes")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    payloads = images(args.jobs, (w, h))
    raw, raw_cpu = raw_scorer(args, payloads[: min(len(payloads), 2000)])
    with tempfile.TemporaryDirectory(prefix="bench-code-") as tmp:
        codes = [c.resolve() for c in args.code or []]
        if args.compare:
            codes = [archive(args.compare, Path(tmp)), *(codes or [ROOT])]
        codes = codes or [ROOT]
        names = [args.compare if args.compare and i == 0 else str(c) for i, c in enumerate(codes)]
        runs: list[tuple[int, dict[str, float]]] = []
        for _ in range(args.rounds):
            for i, code in enumerate(codes):
                runs.append((i, measure(args, payloads, code)))
                if len(codes) > 1 or args.rounds > 1:
                    print(f"  run {len(runs)}: {names[i]}: {cpu_line(runs[-1][1])}", flush=True)
    raw_after, _ = raw_scorer(args, payloads[: min(len(payloads), 2000)])
    print(
        f"backend={args.backend} jobs={args.jobs} size={args.size} batch_size={args.batch_size}"
        f" chunk={args.chunk} clients={args.clients} upload={args.upload} cores={os.cpu_count()}"
        f" device_ms={args.device_ms}"
    )
    cores = os.cpu_count() or 1
    print(
        f"raw scorer           {raw:10.1f} images/s (pre-decoded, batch {args.batch_size}); "
        f"{raw_cpu * 1e3:.2f} ms CPU per image"
    )
    raw_mean = (raw + raw_after) / 2
    print(f"raw scorer again     {raw_after:10.1f} images/s (after the e2e runs; load drifts)")
    for i, name in enumerate(names):
        mine = [r for j, r in runs if j == i]
        if len(codes) > 1:
            print(f"--- {name}")
        report(args, mine[-1], raw, raw_cpu, raw_mean, cores)
    if len(codes) > 1 or args.rounds > 1:
        print("CPU per job (ms), median over rounds, side by side:")
        width = max(len(n) for n in names)
        print(f"  {'code':{width}s} " + " ".join(f"{p:>9s}" for p in (*PARTS, "sum", "no-scorer")))
        for i, name in enumerate(names):
            mine = [r for j, r in runs if j == i]
            parts = [statistics.median(r[p] for r in mine) * 1e3 for p in PARTS]
            total = sum(parts)
            print(
                f"  {name:{width}s} "
                + " ".join(f"{v:9.3f}" for v in (*parts, total, total - raw_cpu * 1e3))
                + f"   ceiling {cores / total * 1e3:6.0f} jobs/s; without the scorer's CPU "
                f"{cores / (total - raw_cpu * 1e3) * 1e3:6.0f} jobs/s"
                + f" (loads {', '.join(format(r['load'], '.1f') for r in mine)})"
            )


def cpu_line(r: dict[str, float]) -> str:
    parts = ", ".join(f"{p} {r[p] * 1e3:.3f}" for p in PARTS)
    return f"{parts} ms CPU per job; e2e {r['e2e']:.0f} jobs/s; load average {r['load']:.1f}"


def report(
    args: argparse.Namespace,
    r: dict[str, float],
    raw: float,
    raw_cpu: float,
    raw_mean: float,
    cores: int,
) -> None:
    per_job = {p: r[p] for p in PARTS}
    print(f"API intake alone     {r['intake']:10.1f} jobs/s")
    print(f"worker drain alone   {r['drain']:10.1f} jobs/s  (drain / raw {r['drain'] / raw:.1%})")
    if "drain_off" in r:
        print(
            f"  look-ahead off     {r['drain_off']:10.1f} jobs/s  (drain / raw "
            f"{r['drain_off'] / raw:.1%}; MODERATION_FORWARD_AHEAD=off, the pipeline before it)"
        )
    print(f"end to end           {r['e2e']:10.1f} jobs/s  (submit-to-scored, {r['wall']:.1f} s)")
    print(f"e2e / raw scorer     {r['e2e'] / raw_mean:10.1%}  (raw = mean of before and after)")
    print(
        f"scorer CPU / pipeline CPU per job {raw_cpu / sum(per_job.values()):10.1%}  "
        "(what e2e / raw tends to when scorer and pipeline share the same idle cores)"
    )
    print(
        "CPU per job during e2e: "
        + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in per_job.items())
        + f" (the scorer's share of the worker: {raw_cpu * 1e3:.2f} ms); "
        f"client {r['client'] * 1e3:.2f} ms"
    )
    print(
        f"implied ceiling on {cores} idle cores (API + worker + Postgres): "
        f"{cores / sum(per_job.values()):.0f} jobs/s; without the scorer's CPU: "
        f"{cores / (sum(per_job.values()) - raw_cpu):.0f} jobs/s"
    )
    print(
        f"machine busy {r['machine']:.1f} CPU s of {r['wall'] * cores:.1f} s; load average "
        f"{r['load']:.1f} on {cores} cores (other processes share them)"
    )


if __name__ == "__main__":
    main()
