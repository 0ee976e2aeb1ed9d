"""Dashboard queries at scale: load N synthetic jobs into a throwaway PostgreSQL database, then
time every dashboard query (median of several runs) as the dashboard runs it (closed hours from
the rollups of migration 0004), all live from the views, and live without the bucket indexes of
migration 0002, and show the plans (EXPLAIN ANALYZE) with the indexes they use.

    .venv/bin/python benchmarks/bench_dashboard.py                 # 1 M jobs (a few minutes)
    .venv/bin/python benchmarks/bench_dashboard.py --jobs 100000   # quick look

The data is generated server-side with ``generate_series`` (no rows cross the wire) in the
proportions of a recall-first deployment (see ``load``): jobs spread evenly over ``--days``
(10 → ~100 k jobs a day), 0.8 % failed and 0.1 % quarantined, a queued backlog of 1,500;
~90 % distinct images; four categories scored per job, 97 % of scores clear; one decision per
scored job; every violation queued for review (π = 1); below-threshold audits at π = 0.015
(clear) and 0.2 (warning); one review per finished item, a second on 10 %; 30 threshold
versions per category. The database is created and dropped by this script.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic.script import ScriptDirectory
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, event, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from moderation.db import make_engine
from moderation.db import views as v
from moderation.db.migrate import alembic_config, downgrade, upgrade
from moderation.db.models import RollupState
from moderation.db.rollups import refresh_rollups

console = Console(width=180)
ADMIN_URL = os.environ.get(
    "MODERATION_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
CATEGORIES = ["sexual", "violence", "weapons", "drugs"]
BUCKET_INDEXES = [
    "ix_jobs_finished_minute",
    "ix_jobs_failed_hour",
    "ix_decisions_decided_hour",
    "ix_reviews_created_hour",
]

# Each step is one server-side statement; %(name)s parameters come from `load`.
T0 = "(%(now)s::timestamptz - make_interval(days => %(days)s))"
SPAN = "(%(days)s * 86400.0 - 60)"  # the newest job is a minute old
TIER_RANK = (
    "CASE {0} WHEN 'extreme' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 "
    "WHEN 'warning' THEN 1 ELSE 0 END"
)
LOAD_STEPS: list[tuple[str, str]] = [
    (
        "threshold versions",
        f"""
INSERT INTO threshold_versions (category, policy, value, cutoffs, scale, strategy, reason,
                                stats, created_by, created_at)
SELECT c, 'content_safety', 0.18 + v * 0.001,
       jsonb_build_object('warning', 0.12, 'medium', 0.18 + v * 0.001, 'high', 0.22 + v * 0.001,
                          'extreme', 0.30),
       'gme_cosine', CASE WHEN v %% 5 = 0 THEN 'youden' ELSE 'recall_target' END,
       'synthetic', jsonb_build_object('window', 100, 'fn_rate', random() / 10,
                                       'fp_rate', random() / 5),
       CASE WHEN v %% 5 = 0 THEN 'ops' ELSE 'adjuster' END,
       {T0} + make_interval(hours => v * 8)
FROM unnest(%(categories)s::text[]) c, generate_series(0, 29) v""",
    ),
    (
        "images",
        f"""
INSERT INTO images (id, sha256, byte_size, width, height, format, created_at)
SELECT g, md5(g::text) || md5((-g)::text), 20000 + (g * 37) %% 900000, 1024, 768, 'jpeg',
       {T0} + make_interval(secs => g / %(n_images)s::float8 * {SPAN})
FROM generate_series(1, %(n_images)s) g""",
    ),
    (
        "jobs",
        f"""
INSERT INTO jobs (id, image_id, external_id, source, submitted_by, priority, status, attempts,
                  error_code, error, worker, scorer, catalog_version, submitted_at, started_at,
                  finished_at)
SELECT g, 1 + (g::bigint * 7919) %% %(n_images)s, 'up-' || g, 'api', 'pipeline-' || g %% 3, 0,
       status,
       CASE status WHEN 'queued' THEN 0 WHEN 'quarantined' THEN 3 ELSE 1 END,
       error_code, 'synthetic ' || error_code,
       CASE WHEN status <> 'queued' THEN 'worker-' || g %% 8 END, 'gme-2b', 'catalog-v1',
       submitted, CASE WHEN status <> 'queued' THEN submitted + wait END,
       CASE WHEN status NOT IN ('queued', 'processing') THEN submitted + wait + work END
FROM (
  SELECT g, submitted, wait, work,
         CASE WHEN g > %(n)s - 1500 THEN 'queued' WHEN g > %(n)s - 1516 THEN 'processing'
              WHEN r < 0.008 THEN 'failed' WHEN r < 0.009 THEN 'quarantined'
              ELSE 'scored' END AS status,
         CASE WHEN g > %(n)s - 1516 THEN NULL
              WHEN r < 0.008 THEN (ARRAY['undecodable', 'too_large', 'unsupported_format',
                                         'truncated'])[1 + g %% 4]
              WHEN r < 0.009 THEN (ARRAY['worker_crash', 'timeout'])[1 + g %% 2] END
           AS error_code
  FROM (SELECT g, random() AS r,
               {T0} + make_interval(secs => g / %(n)s::float8 * {SPAN}) AS submitted,
               make_interval(secs => 0.2 + random() * 3) AS wait,
               make_interval(secs => 0.05 + random()) AS work
        FROM generate_series(1, %(n)s) g) raw
) job""",
    ),
    (
        "scores",
        """
INSERT INTO scores (job_id, category, score, source, phrasing, tier, threshold_version_id)
SELECT id, category,
       CASE tier WHEN 'clear' THEN r2 * 0.12 WHEN 'warning' THEN 0.12 + r2 * 0.06
                 WHEN 'medium' THEN 0.18 + r2 * 0.04 WHEN 'high' THEN 0.22 + r2 * 0.08
                 ELSE 0.30 + r2 * 0.2 END,
       'embedding', 'a photo of ' || category, tier, version_id
FROM (SELECT id, category, version_id, random() AS r2,
             CASE WHEN r < 0.0015 THEN 'extreme' WHEN r < 0.005 THEN 'high'
                  WHEN r < 0.012 THEN 'medium' WHEN r < 0.03 THEN 'warning'
                  ELSE 'clear' END AS tier
      FROM (SELECT j.id, c.category, c.version_id, random() AS r
            FROM jobs j
            CROSS JOIN (SELECT category, max(id) AS version_id FROM threshold_versions
                        GROUP BY category) c
            WHERE j.status = 'scored') pair) s""",
    ),
    (
        "decisions",
        f"""
INSERT INTO decisions (job_id, tier, action, category, priority, policy, threshold_versions,
                       decided_at)
SELECT DISTINCT ON (s.job_id) s.job_id, s.tier,
       CASE s.tier WHEN 'extreme' THEN 'block' WHEN 'high' THEN 'review_now'
                   WHEN 'medium' THEN 'review' WHEN 'warning' THEN 'watch' ELSE 'allow' END,
       CASE WHEN s.tier <> 'clear' THEN s.category END,
       {TIER_RANK.format("s.tier")} * 10 + s.score, 'content_safety', '{{}}'::jsonb, j.finished_at
FROM scores s JOIN jobs j ON j.id = s.job_id
ORDER BY s.job_id, {TIER_RANK.format("s.tier")} DESC, s.score DESC""",
    ),
    (
        "audit samples",
        """
INSERT INTO audit_samples (job_id, category, stratum, score, inclusion_probability, sampled_at)
SELECT p.job_id, p.category, p.tier, s.score, p.probability, p.decided_at
FROM (SELECT d.job_id, d.decided_at, d.tier, d.probability,
             coalesce(d.category, (%(categories)s::text[])[1 + d.job_id %% 4]) AS category
      FROM (SELECT *, CASE tier WHEN 'warning' THEN 0.2 ELSE 0.015 END AS probability
            FROM decisions WHERE tier IN ('clear', 'warning')) d
      WHERE random() < d.probability) p
JOIN scores s ON s.job_id = p.job_id AND s.category = p.category""",
    ),
    (
        "review items",
        """
INSERT INTO review_items (job_id, kind, category, score, tier, priority, inclusion_probability,
                          status, claimed_by, claim_expires_at, created_at, done_at)
SELECT job_id, kind, category, score, tier, priority, probability, status,
       CASE WHEN status = 'claimed' THEN 'reviewer-' || job_id %% 12 END,
       CASE WHEN status = 'claimed' THEN %(now)s::timestamptz + interval '10 minutes' END,
       created_at,
       CASE WHEN status = 'done'
            THEN created_at + make_interval(secs => 30 - ln(1 - random()) * 1800) END
FROM (SELECT *, CASE WHEN created_at < %(now)s::timestamptz - interval '3 hours' THEN 'done'
                     WHEN random() < 0.05 THEN 'claimed' ELSE 'open' END AS status
      FROM (SELECT d.job_id, 'queue' AS kind, d.category, s.score, d.tier, d.priority,
                   1.0 AS probability, d.decided_at AS created_at
            FROM decisions d JOIN scores s ON s.job_id = d.job_id AND s.category = d.category
            WHERE d.tier IN ('medium', 'high', 'extreme')
            UNION ALL
            SELECT a.job_id, 'audit', a.category, a.score, s.tier, 0.0, a.inclusion_probability,
                   a.sampled_at
            FROM audit_samples a
            JOIN scores s ON s.job_id = a.job_id AND s.category = a.category) item) item""",
    ),
    (
        "reviews",
        """
INSERT INTO reviews (job_id, review_item_id, reviewer, category, label, created_at)
SELECT job_id, id, 'reviewer-' || id %% 12, category,
       CASE WHEN random() < CASE tier WHEN 'extreme' THEN 0.9 WHEN 'high' THEN 0.75
                                      WHEN 'medium' THEN 0.55 WHEN 'warning' THEN 0.1
                                      ELSE 0.02 END
            THEN 'violation' ELSE 'not_violation' END,
       done_at
FROM review_items WHERE status = 'done'""",
    ),
    (
        "second reviews",
        """
INSERT INTO reviews (job_id, review_item_id, reviewer, category, label, created_at)
SELECT job_id, review_item_id, 'reviewer-' || (review_item_id %% 12 + 1 + review_item_id %% 11)
       %% 12, category,
       CASE WHEN random() < 0.85 THEN label
            WHEN label = 'violation' THEN 'not_violation' ELSE 'violation' END,
       created_at + make_interval(secs => 60 + random() * 3600)
FROM reviews WHERE random() < 0.1""",
    ),
]


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    with psycopg.connect(_conninfo(ADMIN_URL), autocommit=True) as conn:
        conn.execute(sql)


def load(url: str, n_jobs: int, days: int, now: dt.datetime) -> None:
    """Fill the database with ``n_jobs`` jobs and everything that follows from them."""
    params = {
        "n": n_jobs, "n_images": max(1, n_jobs * 9 // 10), "days": days, "now": now,
        "categories": CATEGORIES,
    }  # fmt: skip
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(0.42)")
        for name, sql in LOAD_STEPS:
            started = time.perf_counter()
            rows = conn.execute(sql, params).rowcount
            console.print(f"  {name:<20} {rows:>10,} rows  {time.perf_counter() - started:6.1f} s")
        for table in ("images", "jobs", "threshold_versions", "review_items", "reviews"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
        started = time.perf_counter()
        vacuum(conn)
        console.print(
            f"  {'vacuum analyze':<20} {'':>10}       {time.perf_counter() - started:6.1f} s"
        )


def vacuum(conn: psycopg.Connection[Any]) -> None:
    """VACUUM ANALYZE, as autovacuum would have by now, until every page is all-visible
    (index-only scans need that; another session's open transaction can hold it back)."""
    query = (
        "SELECT coalesce(sum(relallvisible)::float8 / nullif(sum(relpages), 0), 1) "
        "FROM pg_class WHERE relname IN ('jobs', 'decisions', 'reviews')"
    )
    for _ in range(5):
        conn.execute("VACUUM (ANALYZE)")
        row = conn.execute(query).fetchone()
        visible = float(row[0]) if row else 1.0
        if visible >= 0.999:
            return
        console.print(f"  only {visible:.1%} of pages all-visible; vacuuming again")
        time.sleep(5)


def dashboard_queries(now: dt.datetime) -> Iterator[tuple[str, str, Callable[[Connection], Any]]]:
    """(query, window, call) for every query the dashboard pages run."""
    yield "backlog", "now", lambda c: v.backlog(c, now)
    yield "threshold_history", "all", lambda c: v.threshold_history(c)
    windowed = [
        v.throughput_per_minute, v.tier_mix_hourly, v.failures_by_reason, v.review_latency,
        v.reviewer_agreement, v.review_estimates,
    ]  # fmt: skip
    for hours, label in ((1, "1 h"), (24, "24 h"), (168, "7 d")):
        window = v.TimeWindow.last(hours, now)
        for fn in windowed:
            yield fn.__name__, label, lambda c, fn=fn, window=window: fn(c, window)


@dataclass(frozen=True)
class Timing:
    wall_ms: float  # median wall time as the dashboard sees it (driver + ORM included)
    cpu_ms: float | None  # median CPU time of the PostgreSQL backend (None: server not local)
    waited: float  # share of the wall time the backend sat runnable but without a CPU


def _backend_schedstat(pid: int) -> tuple[int, int] | None:
    """(ns on CPU, ns waiting for a CPU) of a local process, from /proc/<pid>/schedstat."""
    try:
        run_ns, wait_ns, _slices = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return None
    return int(run_ns), int(wait_ns)


def timed(conn: Connection, call: Callable[[Connection], Any], runs: int) -> Timing:
    """Median wall and backend-CPU time of ``runs`` calls after one warm-up call.

    On a shared machine the backend's own CPU time barely moves with other load while wall
    time does, so both are reported (with how long the backend waited for a CPU).
    """
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    call(conn)  # warm-up: plan cache, buffers
    walls, cpus, waits = [], [], []
    for _ in range(runs):
        before = _backend_schedstat(pid)
        started = time.perf_counter()
        call(conn)
        walls.append((time.perf_counter() - started) * 1000)
        after = _backend_schedstat(pid)
        if before and after:
            cpus.append((after[0] - before[0]) / 1e6)
            waits.append((after[1] - before[1]) / 1e6)
    cpu = statistics.median(cpus) if cpus else None
    waited = min(1.0, sum(waits) / sum(walls)) if waits else 0.0
    return Timing(statistics.median(walls), cpu, waited)


def explain(conn: Connection, call: Callable[[Connection], Any]) -> tuple[list[str], str]:
    """Run ``call`` once capturing its SQL, then EXPLAIN ANALYZE that SQL: (indexes, plan)."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(conn, "before_cursor_execute", capture)
    try:
        call(conn)
    finally:
        event.remove(conn, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    raw = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters)
    plan = raw.scalar_one()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    text = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF) {statement}", parameters)
    return sorted(set(_index_names(plan))), "\n".join(row[0] for row in text)


def _index_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if "Index Name" in node:
            yield node["Index Name"]
        for value in node.values():
            yield from _index_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _index_names(item)


def measure(url: str, now: dt.datetime, runs: int, show_plans: bool) -> None:
    """Time each query as the dashboard runs it (closed hours from the rollups, refreshed
    first), then right after, side by side: all live from the views (rollups ignored), and
    live with the bucket indexes dropped. The variants run in transactions rolled back at
    once (PostgreSQL DDL is transactional), so all columns see the same machine load."""
    console.print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    engine = make_engine(url)
    table = Table(title=f"dashboard queries (median of {runs} runs)")
    for name in COLUMNS:
        justify = "left" if name in ("query", "window", "indexes used") else "right"
        table.add_column(name, justify=justify)
    over = []
    try:
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            refreshed = refresh_rollups(session, now, rebuild=True)
        console.print(
            f"rollup rebuild: {time.perf_counter() - started:.1f} s for "
            f"{sum(r.rows for r in refreshed):,} rows, up to {refreshed[0].end:%Y-%m-%d %H:%M}"
        )
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            refresh_rollups(session, now)
        console.print(f"rollup refresh (48 h settle): {time.perf_counter() - started:.1f} s")
        with engine.connect() as conn:
            for name, window, call in dashboard_queries(now):
                with conn.begin():
                    v.begin_read_only(conn)  # as the dashboard's sessions do
                    fast = timed(conn, call, runs)
                    indexes, plan = explain(conn, call)
                    rows = len(call(conn))
                live = timed_variant(conn, call, runs, live=True)
                slow = timed_variant(conn, call, runs, live=True, drop_indexes=True)
                cpu = "n/a" if fast.cpu_ms is None else f"{fast.cpu_ms:.1f}"
                table.add_row(
                    name, window, str(rows), f"{fast.wall_ms:.1f}", cpu, f"{fast.waited:.0%}",
                    f"{live.wall_ms:.1f}", f"{live.wall_ms / fast.wall_ms:.1f}×",
                    f"{slow.wall_ms:.1f}", ", ".join(indexes) or "—",
                )  # fmt: skip
                over += [f"{name} ({window})"] if fast.wall_ms >= 100 else []
                if show_plans and window in ("now", "all", "24 h"):
                    console.rule(f"{name} ({window})")
                    console.print(plan, highlight=False)
    finally:
        engine.dispose()
    console.print(table)
    console.print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    console.print(f"queries at or over 100 ms wall: {', '.join(over) if over else 'none'}")


COLUMNS = (
    "query", "window", "rows", "wall ms", "backend cpu ms", "cpu wait", "wall ms live",
    "live / rolled", "live w/o bucket idx", "indexes used",
)  # fmt: skip


def timed_variant(
    conn: Connection,
    call: Callable[[Connection], Any],
    runs: int,
    *,
    live: bool = False,
    drop_indexes: bool = False,
) -> Timing:
    """``timed`` with the rollups ignored (``live``) and/or the bucket indexes dropped."""
    transaction = conn.begin()
    try:
        conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        if live:
            conn.execute(update(RollupState).values(rolled_until=v.ROLLUP_EPOCH))
        for index in BUCKET_INDEXES if drop_indexes else ():
            conn.exec_driver_sql(f"DROP INDEX {index}")
        return timed(conn, call, runs)
    finally:
        transaction.rollback()


def remeasure(url: str, runs: int, show_plans: bool) -> None:
    """Measure a database an earlier ``--keep`` run loaded, after re-applying the views
    migration (so edits to views and indexes take effect) and re-analyzing."""
    script = ScriptDirectory.from_config(alembic_config(url))
    views_rev = next(r for r in script.walk_revisions() if "dashboard views" in (r.doc or ""))
    downgrade(url, str(views_rev.down_revision))
    upgrade(url)
    with psycopg.connect(_conninfo(url), autocommit=True) as conn:
        vacuum(conn)
        newest = conn.execute("SELECT max(submitted_at) FROM jobs").fetchone()
    assert newest is not None and newest[0] is not None, "the database holds no jobs"
    measure(url, newest[0] + dt.timedelta(minutes=1), runs, show_plans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10, help="time span of the jobs")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query")
    parser.add_argument("--plans", action="store_true", help="print EXPLAIN ANALYZE plans")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--database", help="re-measure a database kept by --keep (no load)")
    args = parser.parse_args()
    if args.database:
        url = make_url(ADMIN_URL).set(database=args.database)
        remeasure(url.render_as_string(hide_password=False), args.runs, args.plans)
        return
    name = f"modbench_dashboard_{uuid.uuid4().hex[:8]}"
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _admin(f'CREATE DATABASE "{name}"')
    try:
        upgrade(url)
        console.print(f"loading {args.jobs:,} jobs over {args.days} days into {name}")
        started = time.perf_counter()
        load(url, args.jobs, args.days, now)
        console.print(f"loaded in {time.perf_counter() - started:.0f} s")
        measure(url, now, args.runs, args.plans)
    finally:
        if args.keep:
            console.print(f"kept database {name}")
        else:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
