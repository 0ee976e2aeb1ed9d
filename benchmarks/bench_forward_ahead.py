"""The model look-ahead in one process: ``run_batch`` on a device-shaped fake model, look-ahead
off vs on, alternating (both see the same machine load), on a fresh Postgres database.

No broker, API or Celery: the worker's pipeline body alone, batch after batch with the next
batch's ids as ``upcoming`` (what the Celery batcher passes). jobs/s against the device's
ceiling (1000 / device-ms images/s) says how much device time the CPU work leaves idle.

    .venv/bin/python benchmarks/bench_forward_ahead.py --device-ms 8 --batches 10
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moderation.config import Settings  # noqa: E402
from moderation.db.migrate import upgrade  # noqa: E402
from moderation.db.session import make_engine, make_sessionmaker, session_scope  # noqa: E402
from moderation.db.types import utcnow  # noqa: E402
from moderation.pipeline.batch import run_batch  # noqa: E402
from moderation.pipeline.context import build_context  # noqa: E402
from moderation.pipeline.intake import Submission, register_submissions  # noqa: E402
from moderation.scoring.scorers import build_scorer  # noqa: E402

ADMIN = os.environ.get(
    "MODERATION_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device-ms", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    db = f"bench_ahead_{uuid.uuid4().hex[:8]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    engine = make_engine(url, pool_size=2)
    try:
        upgrade(url)
        sessions = make_sessionmaker(engine)
        cache = tempfile.mkdtemp()
        base = Image.effect_noise((64, 64), 40).convert("RGB")
        made = 0

        def payload() -> bytes:  # distinct PNGs: every image goes through the model
            nonlocal made
            made += 1
            base.paste((made % 256, made // 256 % 256, made // 65536 % 256), (0, 0, 8, 8))
            buffer = io.BytesIO()
            base.save(buffer, "PNG")
            return buffer.getvalue()

        ceiling = 1000 / args.device_ms
        print(
            f"device {args.device_ms} ms/image (ceiling {ceiling:.1f} images/s), batch "
            f"{args.batch_size}, {args.batches} batches, load {os.getloadavg()[0]:.1f}"
        )
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                settings = Settings(
                    _env_file=None,  # type: ignore[call-arg]
                    backend="fake",
                    batch_size=args.batch_size,
                    database_url=url,
                    pattern_cache_dir=cache,
                    fake_device_ms_per_image=args.device_ms,
                    forward_ahead=mode,
                )
                ctx = build_context(settings, build_scorer(settings), sessions, worker="bench")
                n = args.batch_size * args.batches
                with session_scope(sessions) as s:
                    subs = [Submission.from_bytes(payload()) for _ in range(n)]
                    ids = register_submissions(s, subs, utcnow())
                batches = [ids[i : i + args.batch_size] for i in range(0, n, args.batch_size)]
                run_batch(ctx, batches[0], upcoming=batches[1])  # warm-up, not timed
                cpu, wall = time.process_time(), time.perf_counter()
                for k in range(1, len(batches)):
                    upcoming = batches[k + 1] if k + 1 < len(batches) else []
                    run_batch(ctx, batches[k], upcoming=upcoming)
                wall = time.perf_counter() - wall
                timed = n - args.batch_size
                print(
                    f"  look-ahead {mode:3s}  {timed / wall:7.1f} jobs/s = "
                    f"{timed / wall / ceiling:6.1%} of the device ceiling; "
                    f"CPU {(time.process_time() - cpu) / timed * 1e3:.2f} ms/job "
                    f"(load {os.getloadavg()[0]:.1f})"
                )
                ctx.close()
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
