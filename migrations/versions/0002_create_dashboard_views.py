"""create dashboard views

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Read-only SQL views the ops dashboard (and anyone with psql) reads, documented in
docs/views.md, plus the PostgreSQL indexes that keep each windowed dashboard query fast.

Time buckets differ per dialect: PostgreSQL uses ``date_bin`` (IMMUTABLE, so it can be indexed;
``date_trunc`` on timestamptz is only STABLE), SQLite uses ``strftime`` in the exact text format
SQLAlchemy stores datetimes in, so bucket values compare with bound datetimes on both.
The bucket expressions must stay identical to the expression indexes below, or PostgreSQL
stops using them. SQLite gets no expression indexes: it is the embedded, small-volume default.
Self-contained on purpose: it does not import application code, which keeps changing.
"""

from collections.abc import Callable, Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written the way PostgreSQL prints them back, so autogenerate compares them as equal.
PG_EPOCH = "'2000-01-01 00:00:00+00'::timestamp with time zone"
PG_INTERVAL = {"minute": "00:01:00", "hour": "01:00:00"}
SQLITE_FORMAT = {"minute": "%Y-%m-%d %H:%M:00.000000", "hour": "%Y-%m-%d %H:00:00.000000"}


class Dialect:
    """The few SQL fragments that differ between PostgreSQL and SQLite."""

    def __init__(self, name: str) -> None:
        self.pg = name == "postgresql"

    def bucket(self, unit: str, column: str) -> str:
        if self.pg:
            return f"date_bin('{PG_INTERVAL[unit]}'::interval, {column}, {PG_EPOCH})"
        return f"strftime('{SQLITE_FORMAT[unit]}', {column})"

    def seconds(self, start: str, end: str) -> str:
        if self.pg:
            # date_part is double precision; EXTRACT is numeric, several times slower to average
            return f"date_part('epoch', {end} - {start})"
        return f"((julianday({end}) - julianday({start})) * 86400.0)"

    def now(self) -> str:
        return "now()" if self.pg else "strftime('%Y-%m-%d %H:%M:%f', 'now')"


VIOLATION_TIERS = "('medium', 'high', 'extreme')"


def throughput_per_minute(d: Dialect) -> str:
    minute = d.bucket("minute", "finished_at")
    return f"""
SELECT {minute} AS minute,
       count(*) AS finished,
       sum(CASE WHEN status = 'scored' THEN 1 ELSE 0 END) AS scored,
       sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
       sum(CASE WHEN status = 'quarantined' THEN 1 ELSE 0 END) AS quarantined,
       avg({d.seconds("submitted_at", "finished_at")}) AS mean_turnaround_s
FROM jobs
WHERE finished_at IS NOT NULL
GROUP BY {minute}"""


def tier_mix_hourly(d: Dialect) -> str:
    hour = d.bucket("hour", "decided_at")
    return f"""
SELECT {hour} AS hour, category, tier, count(*) AS jobs
FROM decisions
GROUP BY {hour}, category, tier"""


def backlog(d: Dialect) -> str:
    return f"""
SELECT 'jobs' AS queue, status, count(*) AS items, min(submitted_at) AS oldest_at,
       {d.seconds("min(submitted_at)", d.now())} AS oldest_age_s
FROM jobs
WHERE status IN ('queued', 'processing')
GROUP BY status
UNION ALL
SELECT 'review_' || kind AS queue, status, count(*) AS items, min(created_at) AS oldest_at,
       {d.seconds("min(created_at)", d.now())} AS oldest_age_s
FROM review_items
WHERE status IN ('open', 'claimed')
GROUP BY kind, status"""


def failures_hourly(d: Dialect) -> str:
    hour = d.bucket("hour", "finished_at")
    return f"""
SELECT {hour} AS hour, status, coalesce(error_code, 'unknown') AS error_code,
       count(*) AS jobs, max(finished_at) AS last_at
FROM jobs
WHERE status IN ('failed', 'quarantined')
GROUP BY {hour}, status, coalesce(error_code, 'unknown')"""


def review_latency_hourly(d: Dialect) -> str:
    hour = d.bucket("hour", "r.created_at")
    wait = d.seconds("ri.created_at", "r.created_at")
    # PostgreSQL: one primary-key probe per review in the window, not a hash of every item
    item = (
        "LEFT JOIN LATERAL (SELECT kind, created_at FROM review_items "
        "WHERE id = r.review_item_id LIMIT 1) ri ON true"
        if d.pg
        else "LEFT JOIN review_items ri ON ri.id = r.review_item_id"
    )
    return f"""
SELECT {hour} AS hour, coalesce(ri.kind, 'direct') AS kind, count(*) AS reviews,
       avg({wait}) AS mean_wait_s, max({wait}) AS max_wait_s
FROM reviews r
{item}
GROUP BY {hour}, coalesce(ri.kind, 'direct')"""


def reviewer_agreement_hourly(d: Dialect) -> str:
    # Pairwise: each review is compared with every other reviewer's label on the same
    # (job, category); a review nobody else made a call on counts in `reviews` only. Two
    # index probes per review in the window (a self-join would hash every review ever made).
    hour = d.bucket("hour", "r.created_at")
    others = (
        "FROM reviews o WHERE o.job_id = r.job_id AND o.category = r.category "
        "AND o.reviewer <> r.reviewer"
    )
    return f"""
SELECT hour, reviewer, category, count(*) AS reviews, sum(compared) AS compared,
       sum(agreed) AS agreed
FROM (SELECT {hour} AS hour, r.reviewer, r.category,
             (SELECT count(*) {others}) AS compared,
             (SELECT count(*) {others} AND o.label = r.label) AS agreed
      FROM reviews r) per_review
GROUP BY hour, reviewer, category"""


def _review_lookups() -> str:
    """Per review: is its (job, category) flagged, its audit π, how many reviewed it."""
    flagged = (
        f"CASE WHEN ri.category = r.category THEN ri.tier IN {VIOLATION_TIERS} "
        f"ELSE (SELECT s.tier IN {VIOLATION_TIERS} FROM scores s "
        "WHERE s.job_id = r.job_id AND s.category = r.category) END"
    )
    audit_probability = (
        "CASE WHEN coalesce(ri.kind, '') <> 'queue' THEN (SELECT a.inclusion_probability "
        "FROM audit_samples a WHERE a.job_id = r.job_id AND a.category = r.category) END"
    )
    reviewers = (
        "(SELECT count(*) FROM reviews r2 WHERE r2.job_id = r.job_id AND r2.category = r.category)"
    )
    return (
        f"{flagged} AS flagged, {audit_probability} AS audit_probability, {reviewers} AS reviewers"
    )


def review_estimates_hourly(d: Dialect) -> str:
    # Horvitz–Thompson: a reviewed (job, category) stands for 1/π items of its population,
    # π = the audit's inclusion probability, else the queue item's (1 when every flagged
    # item is queued). Several reviewers of one item share its weight. Lookups are gated so
    # a typical review costs two index probes: its queue item (tier, kind, π) and the count
    # of reviewers; scores only when the review is about another category than its item's,
    # audit_samples only for items that are not plain queue items.
    hour = d.bucket("hour", "r.created_at")
    if d.pg:
        # LATERAL … LIMIT 1 is never flattened: each lookup runs once per review (flattened
        # scalar subqueries get copied into every aggregate below) and as an index probe
        # (as joins, the planner may hash whole tables).
        source = f"""reviews r
      LEFT JOIN LATERAL (SELECT kind, category, tier, inclusion_probability FROM review_items
                         WHERE id = r.review_item_id LIMIT 1) ri ON true
      LEFT JOIN LATERAL (SELECT {_review_lookups()} LIMIT 1) x ON true"""
        columns = "x.flagged, x.audit_probability, x.reviewers"
    else:
        source = "reviews r LEFT JOIN review_items ri ON ri.id = r.review_item_id"
        columns = _review_lookups()
    weight = "1.0 / (coalesce(audit_probability, item_probability, 1.0) * reviewers)"

    def weighted(flagged: bool, violation: bool) -> str:
        f = "flagged" if flagged else "NOT coalesce(flagged, false)"
        v = "violation" if violation else "NOT violation"
        return f"sum(CASE WHEN {f} AND {v} THEN {weight} ELSE 0 END)"

    return f"""
SELECT hour, category,
       count(*) AS reviews,
       sum(CASE WHEN flagged THEN 1 ELSE 0 END) AS flagged_reviews,
       sum(CASE WHEN audit_probability IS NOT NULL THEN 1 ELSE 0 END) AS audit_reviews,
       {weighted(True, True)} AS tp,
       {weighted(True, False)} AS fp,
       {weighted(False, True)} AS fn,
       {weighted(False, False)} AS tn
FROM (SELECT {hour} AS hour, r.category, r.label = 'violation' AS violation,
             ri.inclusion_probability AS item_probability, {columns}
      FROM {source}) per_review
GROUP BY hour, category"""


def threshold_history(_d: Dialect) -> str:
    return """
SELECT id, category, policy, value,
       lag(value) OVER (PARTITION BY category ORDER BY id) AS previous_value,
       value - lag(value) OVER (PARTITION BY category ORDER BY id) AS delta,
       cutoffs, scale, strategy, reason, stats, created_by, restored_from_id, created_at,
       CASE WHEN id = max(id) OVER (PARTITION BY category) THEN 1 ELSE 0 END AS is_active
FROM threshold_versions"""


VIEWS: list[tuple[str, Callable[[Dialect], str]]] = [
    ("v_throughput_per_minute", throughput_per_minute),
    ("v_tier_mix_hourly", tier_mix_hourly),
    ("v_backlog", backlog),
    ("v_failures_hourly", failures_hourly),
    ("v_review_latency_hourly", review_latency_hourly),
    ("v_reviewer_agreement_hourly", reviewer_agreement_hourly),
    ("v_review_estimates_hourly", review_estimates_hourly),
    ("v_threshold_history", threshold_history),
]

# PostgreSQL-only expression indexes (name, table, key expressions, INCLUDE, WHERE). Keys are
# the views' bucket expressions, so a window `bucket >= :since` is an index range scan;
# INCLUDE carries the other columns a view reads, so the scan is index-only.
_PG = Dialect("postgresql")
PG_INDEXES: list[tuple[str, str, list[str], list[str], str | None]] = [
    (
        "ix_jobs_finished_minute",
        "jobs",
        [_PG.bucket("minute", "finished_at")],
        ["status", "submitted_at", "finished_at"],
        None,
    ),
    (
        "ix_jobs_failed_hour",
        "jobs",
        [_PG.bucket("hour", "finished_at"), "status", "error_code"],
        ["finished_at"],
        "status IN ('failed', 'quarantined')",
    ),
    (
        "ix_decisions_decided_hour",
        "decisions",
        [_PG.bucket("hour", "decided_at"), "category", "tier"],
        ["decided_at"],
        None,
    ),
    (
        "ix_reviews_created_hour",
        "reviews",
        [_PG.bucket("hour", "created_at")],
        ["created_at"],
        None,
    ),
]


def _create_pg_index(
    name: str, table: str, keys: list[str], include: list[str], where: str | None
) -> None:
    sql = f"CREATE INDEX {name} ON {table} ({', '.join(keys)})"
    if include:
        sql += f" INCLUDE ({', '.join(include)})"
    if where:
        sql += f" WHERE {where}"
    op.execute(sql)


def upgrade() -> None:
    dialect = Dialect(op.get_bind().dialect.name)
    if dialect.pg:
        for index in PG_INDEXES:
            _create_pg_index(*index)
    for name, build in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {build(dialect)}")


def downgrade() -> None:
    for name, _build in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    if Dialect(op.get_bind().dialect.name).pg:
        for name, *_rest in reversed(PG_INDEXES):
            op.execute(f"DROP INDEX IF EXISTS {name}")
