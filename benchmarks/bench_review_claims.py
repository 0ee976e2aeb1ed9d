"""Review-queue claiming on PostgreSQL: reviewers claiming and finishing items concurrently.

    .venv/bin/python benchmarks/bench_review_claims.py                  # 200 k done, 3 k open
    .venv/bin/python benchmarks/bench_review_claims.py --done 20000 --open 1000

Loads ``--done`` finished and ``--open`` open review items into a throwaway database
(server-side ``generate_series``), then for 1, 4 and 8 reviewer threads (one connection each)
claims ``--batch`` items at a time with ``claim_items`` and finishes each with ``record_review``
until the open items are gone, printing items/s side by side, the speed-up over one reviewer,
and how many items were handed out twice (must be 0). Finally EXPLAIN ANALYZE of the claim query
with the queue full of done rows. The database is created and dropped by this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import threading
import time
import uuid
from collections import Counter

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from moderation.db import make_engine, make_sessionmaker
from moderation.db.migrate import upgrade
from moderation.db.models import ReviewItem
from moderation.db.repositories import reviews as repo
from moderation.domain import ReviewLabel
from moderation.services import reviews as service

console = Console(width=160)
ADMIN_URL = os.environ.get(
    "MODERATION_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

LOAD = [
    "INSERT INTO images (sha256, byte_size, created_at) SELECT md5(g::text) || md5((-g)::text), "
    "1000, now() FROM generate_series(1, %(total)s) g",
    "INSERT INTO jobs (image_id, source, priority, status, attempts, submitted_at) "
    "SELECT id, 'api', 0, 'scored', 1, now() FROM images ORDER BY id",
    "INSERT INTO review_items (job_id, kind, category, score, tier, priority, "
    "inclusion_probability, status, created_at, done_at) "
    "SELECT id, 'queue', 'sexual', 0.5, 'medium', random() * 12, 1.0, "
    "CASE WHEN id <= %(done)s THEN 'done' ELSE 'open' END, "
    "now() - make_interval(secs => %(total)s - id), "
    "CASE WHEN id <= %(done)s THEN now() END FROM jobs ORDER BY id",
    "ANALYZE",
]


def _admin(sql: str) -> None:
    url = make_url(ADMIN_URL).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql)


def reopen(url: str, done: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM reviews"))
        conn.execute(text("DELETE FROM audit_log"))
        conn.execute(
            text(
                "UPDATE review_items SET status = 'open', claimed_by = NULL, "
                "claim_expires_at = NULL, done_at = NULL WHERE id > :done"
            ),
            {"done": done},
        )
    engine.dispose()


def run(url: str, reviewers: int, batch: int) -> tuple[int, float, int]:
    engine = make_engine(url, pool_size=reviewers)
    sessions = make_sessionmaker(engine)
    got: list[list[int]] = [[] for _ in range(reviewers)]
    barrier = threading.Barrier(reviewers + 1)

    def work(k: int) -> None:
        barrier.wait()
        name = f"reviewer-{k}"
        while True:
            now = dt.datetime.now(dt.UTC)
            with sessions.begin() as s:
                items = service.claim_items(s, reviewer=name, n=batch, lease_s=600, now=now)
            if not items:
                return
            with sessions.begin() as s:
                for item in items:
                    service.record_review(
                        s,
                        item_id=item.item_id,
                        reviewer=name,
                        label=ReviewLabel.NOT_VIOLATION,
                        now=now,
                    )
            got[k] += [i.item_id for i in items]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(reviewers)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    engine.dispose()
    counts = Counter(i for ids in got for i in ids)
    return len(counts), elapsed, sum(1 for c in counts.values() if c > 1)


def explain(url: str) -> str:
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC)
    query = (
        select(ReviewItem.id)
        .where(repo._claimable("x", now))
        .order_by(ReviewItem.priority.desc(), ReviewItem.created_at, ReviewItem.id)
        .limit(5)
        .with_for_update(skip_locked=True)
    )
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with engine.begin() as conn:
        plan = conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF) " + sql)).scalars().all()
    engine.dispose()
    return "\n".join(plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--done", type=int, default=200_000)
    parser.add_argument("--open", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=5)
    args = parser.parse_args()
    name = f"bench_review_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        engine = make_engine(url)
        with engine.begin() as conn:
            driver = conn.connection.driver_connection
            with driver.cursor() as cur:  # type: ignore[union-attr]
                for step in LOAD:
                    cur.execute(step, {"total": args.done + args.open, "done": args.done})
        engine.dispose()
        table = Table(title=f"claim + review, {args.done:,} done and {args.open:,} open items")
        for column in ("reviewers", "items", "seconds", "items/s", "× one reviewer", "twice"):
            table.add_column(column, justify="right")
        base = None
        for reviewers in (1, 4, 8):
            reopen(url, args.done)
            n, seconds, twice = run(url, reviewers, args.batch)
            rate = n / seconds
            base = base or rate
            table.add_row(
                str(reviewers), str(n), f"{seconds:.1f}", f"{rate:.0f}", f"{rate / base:.2f}",
                str(twice),
            )  # fmt: skip
        console.print(table)
        reopen(url, args.done)
        console.print("claim query plan (queue full of done rows):")
        console.print(explain(url))
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
