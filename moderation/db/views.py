"""Read-only dashboard queries over the SQL views of migration 0002 (see docs/views.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    String,
    Subquery,
    TableClause,
    column,
    distinct,
    func,
    literal_column,
    select,
    table,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from moderation.db.models import (
    ROLLUP_TABLES,
    Decision,
    Job,
    ReviewItem,
    RollupState,
    pg_time_bucket,
)
from moderation.db.types import JSONDoc, UTCDateTime
from moderation.domain import JobStatus, ReviewItemKind, RiskTier

__all__ = [
    "ADJUSTER_ACTOR",
    "ActionPoint",
    "ADJUSTER_STRATEGIES",
    "BacklogEntry",
    "CategoryEstimate",
    "actions_hourly",
    "FailureReason",
    "ReviewLatencyPoint",
    "ROLLUP_EPOCH",
    "ReviewerAgreement",
    "ThresholdHistoryEntry",
    "ThroughputPoint",
    "TierMixPoint",
    "TimeWindow",
    "backlog",
    "begin_read_only",
    "failures_by_reason",
    "review_estimates",
    "review_latency",
    "reviewer_agreement",
    "rolled_until",
    "threshold_history",
    "throughput_per_minute",
    "tier_mix_hourly",
    "view_clause",
]

# Threshold versions written by the feedback-driven adjuster: by this actor, or with one of the
# strategies of moderation.thresholds.adjusters (`Proposal.strategy`).
ADJUSTER_ACTOR = "adjuster"
ADJUSTER_STRATEGIES = frozenset({"seed", "recall_target"})

# rolled_until of a rollup never refreshed: the views' bucket epoch, before any data
ROLLUP_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

Executor = Session | Connection


def begin_read_only(conn: Executor) -> None:
    """Open the dashboard's transaction: read-only and, on PostgreSQL, without JIT or parallel
    workers. These queries are short index scans: JIT compiles for tens of ms, and workers
    cost more to start than they save while competing with the scorers for CPU."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


@dataclass(frozen=True)
class TimeWindow:
    """Half-open ``[start, end)`` in UTC. A query reads the view's buckets that overlap it: the
    start is floored to the bucket (minute or hour), so the first bucket is read whole."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeWindow needs timezone-aware datetimes")
        if self.end <= self.start:
            raise ValueError("TimeWindow end must be after its start")

    @classmethod
    def last(cls, hours: float, now: dt.datetime) -> TimeWindow:
        """The ``hours`` before ``now``."""
        return cls(now - dt.timedelta(hours=hours), now)


def _floor(moment: dt.datetime, unit: str) -> dt.datetime:
    moment = moment.astimezone(dt.UTC).replace(second=0, microsecond=0)
    return moment.replace(minute=0) if unit == "hour" else moment


def _view(name: str, **columns: Any) -> TableClause:
    return table(name, *(column(key, type_) for key, type_ in columns.items()))


TS, INT, FLOAT, TEXT = UTCDateTime(), Integer(), Float(), String()
THROUGHPUT = _view(
    "v_throughput_per_minute", minute=TS, finished=INT, scored=INT, failed=INT,
    quarantined=INT, mean_turnaround_s=FLOAT,
)  # fmt: skip
TIER_MIX = _view("v_tier_mix_hourly", hour=TS, category=TEXT, tier=TEXT, jobs=INT)
BACKLOG = _view("v_backlog", queue=TEXT, status=TEXT, items=INT, oldest_at=TS)
FAILURES = _view("v_failures_hourly", hour=TS, status=TEXT, error_code=TEXT, jobs=INT, last_at=TS)
LATENCY = _view(
    "v_review_latency_hourly", hour=TS, kind=TEXT, reviews=INT, mean_wait_s=FLOAT,
    max_wait_s=FLOAT,
)  # fmt: skip
AGREEMENT = _view(
    "v_reviewer_agreement_hourly", hour=TS, reviewer=TEXT, category=TEXT, reviews=INT,
    compared=INT, agreed=INT,
)  # fmt: skip
ESTIMATES = _view(
    "v_review_estimates_hourly", hour=TS, category=TEXT, reviews=INT, flagged_reviews=INT,
    audit_reviews=INT, tp=FLOAT, fp=FLOAT, fn=FLOAT, tn=FLOAT,
)  # fmt: skip
THRESHOLDS = _view(
    "v_threshold_history", id=INT, category=TEXT, policy=TEXT, value=FLOAT,
    previous_value=FLOAT, delta=FLOAT, cutoffs=JSONDoc, scale=TEXT, strategy=TEXT,
    reason=TEXT, stats=JSONDoc, created_by=TEXT, restored_from_id=INT, created_at=TS,
    is_active=INT,
)  # fmt: skip


_VIEWS = {
    t.name: t
    for t in (THROUGHPUT, TIER_MIX, BACKLOG, FAILURES, LATENCY, AGREEMENT, ESTIMATES, THRESHOLDS)
}


def view_clause(name: str) -> TableClause:
    """The typed column list of view ``name`` (for selects and the rollup refresh)."""
    return _VIEWS[name]


def _in_window(bucket: Any, window: TimeWindow, unit: str) -> list[Any]:
    # Comparing the bucket column itself keeps the predicate on the indexed expression.
    return [bucket >= _floor(window.start, unit), bucket < window.end]


def _windowed(conn: Executor, view: TableClause, window: TimeWindow, unit: str) -> Subquery:
    """The rows of ``view`` in the window: closed buckets from its rollup table (when the
    refresh has filled it that far), the rest live from the view — the same SQL either way."""
    rollup = ROLLUP_TABLES[view.name]
    bucket = rollup.info["bucket"]  # "minute" or "hour", the view's bucket column
    start, end = _floor(window.start, unit), window.end
    split = min(max(rolled_until(conn, view.name), start), end)
    names = [c.name for c in view.c]
    parts = []
    if split > start:
        cols = [rollup.c[n] for n in names]
        parts.append(select(*cols).where(rollup.c[bucket] >= start, rollup.c[bucket] < split))
    if end > split:
        parts.append(select(view).where(view.c[bucket] >= split, view.c[bucket] < end))
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery(view.name)


def rolled_until(conn: Executor, view: str) -> dt.datetime:
    """Buckets of ``view`` before this are in its rollup table (ROLLUP_EPOCH: none yet)."""
    value = conn.scalar(select(RollupState.rolled_until).where(RollupState.view == view))
    return value or ROLLUP_EPOCH


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class ThroughputPoint:
    minute: dt.datetime
    finished: int
    scored: int
    failed: int
    quarantined: int
    mean_turnaround_s: float | None  # submitted → finished


def throughput_per_minute(conn: Executor, window: TimeWindow) -> list[ThroughputPoint]:
    """Finished jobs per minute by outcome, oldest first (minutes with none are absent)."""
    rows = _windowed(conn, THROUGHPUT, window, "minute")
    query = select(rows).order_by(rows.c.minute)
    # a 7-day window is ~10 k rows: fetch them at once and unpack tuples (Row attribute
    # access and row-at-a-time fetching cost more than the query itself)
    return [
        ThroughputPoint(minute, finished, scored, failed, quarantined, _float(mean))
        for minute, finished, scored, failed, quarantined, mean in conn.execute(query).all()
    ]


@dataclass(frozen=True)
class TierMixPoint:
    hour: dt.datetime
    category: str | None  # the category that set the job's tier; None for clear jobs
    tier: RiskTier
    jobs: int


def tier_mix_hourly(conn: Executor, window: TimeWindow) -> list[TierMixPoint]:
    """Decided jobs per hour by tier and deciding category, oldest first."""
    rows = _windowed(conn, TIER_MIX, window, "hour")
    v = rows.c
    query = select(rows).order_by(v.hour, v.category, v.tier)
    return [
        TierMixPoint(hour, category, RiskTier(tier), jobs)
        for hour, category, tier, jobs in conn.execute(query).all()
    ]


@dataclass(frozen=True)
class BacklogEntry:
    queue: str  # jobs, review_queue, review_audit
    status: str
    items: int
    oldest_at: dt.datetime
    oldest_age_s: float


def backlog(conn: Executor, now: dt.datetime) -> list[BacklogEntry]:
    """Work waiting now: queued/processing jobs and open/claimed review items, with age."""
    query = select(BACKLOG).order_by(BACKLOG.c.queue, BACKLOG.c.status)
    return [
        BacklogEntry(r.queue, r.status, r.items, r.oldest_at, (now - r.oldest_at).total_seconds())
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class FailureReason:
    status: str  # failed or quarantined
    error_code: str
    jobs: int
    last_at: dt.datetime


def failures_by_reason(conn: Executor, window: TimeWindow) -> list[FailureReason]:
    """Failed and quarantined jobs in the window per reason, most frequent first."""
    v = FAILURES.c
    jobs = func.sum(v.jobs).label("jobs")
    query = (
        select(v.status, v.error_code, jobs, func.max(v.last_at).label("last_at"))
        .where(*_in_window(v.hour, window, "hour"))
        .group_by(v.status, v.error_code)
        .order_by(jobs.desc(), v.status, v.error_code)
    )
    return [
        FailureReason(r.status, r.error_code, int(r.jobs), r.last_at) for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class ReviewLatencyPoint:
    hour: dt.datetime
    kind: str  # queue, audit, direct (a review without a queue item)
    reviews: int
    mean_wait_s: float | None  # queued → reviewed
    max_wait_s: float | None


def review_latency(conn: Executor, window: TimeWindow) -> list[ReviewLatencyPoint]:
    """Reviews per hour and item kind with their queue wait, oldest first."""
    rows = _windowed(conn, LATENCY, window, "hour")
    query = select(rows).order_by(rows.c.hour, rows.c.kind)
    return [
        ReviewLatencyPoint(r.hour, r.kind, r.reviews, _float(r.mean_wait_s), _float(r.max_wait_s))
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class ReviewerAgreement:
    reviewer: str
    category: str
    reviews: int
    compared: int  # pairs with another reviewer's label on the same (job, category)
    agreed: int

    @property
    def rate(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


def reviewer_agreement(conn: Executor, window: TimeWindow) -> list[ReviewerAgreement]:
    """Pairwise label agreement per reviewer and category over the window."""
    v = _windowed(conn, AGREEMENT, window, "hour").c
    query = (
        select(
            v.reviewer,
            v.category,
            func.sum(v.reviews).label("reviews"),
            func.sum(v.compared).label("compared"),
            func.sum(v.agreed).label("agreed"),
        )  # fmt: skip
        .group_by(v.reviewer, v.category)
        .order_by(v.reviewer, v.category)
    )
    return [
        ReviewerAgreement(r.reviewer, r.category, int(r.reviews), int(r.compared), int(r.agreed))
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class CategoryEstimate:
    """Inverse-probability-weighted confusion counts of one category (docs/views.md)."""

    category: str
    reviews: int
    flagged_reviews: int
    audit_reviews: int
    tp: float
    fp: float
    fn: float
    tn: float

    @property
    def precision(self) -> float | None:
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        """None until some below-threshold item was reviewed: misses are unobservable."""
        if self.fn + self.tn == 0 or self.tp + self.fn == 0:
            return None
        return self.tp / (self.tp + self.fn)


def review_estimates(conn: Executor, window: TimeWindow) -> list[CategoryEstimate]:
    """Estimated precision/recall inputs per category from reviews made in the window."""
    v = _windowed(conn, ESTIMATES, window, "hour").c
    sums = [func.sum(c).label(c.name) for c in (v.reviews, v.flagged_reviews, v.audit_reviews)]
    weights = [func.sum(c).label(c.name) for c in (v.tp, v.fp, v.fn, v.tn)]
    query = select(v.category, *sums, *weights).group_by(v.category).order_by(v.category)
    return [
        CategoryEstimate(
            r.category,
            int(r.reviews),
            int(r.flagged_reviews),
            int(r.audit_reviews),
            float(r.tp),
            float(r.fp),
            float(r.fn),
            float(r.tn),
        )  # fmt: skip
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class ThresholdHistoryEntry:
    id: int
    category: str
    policy: str
    value: float
    previous_value: float | None
    delta: float | None
    cutoffs: Mapping[str, float]
    scale: str
    strategy: str
    reason: str
    stats: Mapping[str, Any]
    created_by: str
    restored_from_id: int | None
    created_at: dt.datetime
    is_active: bool

    @property
    def kind(self) -> str:
        """rollback, adjuster (feedback loop) or calibration (anything else: presets, CLI)."""
        if self.restored_from_id is not None:
            return "rollback"
        by_adjuster = self.created_by == ADJUSTER_ACTOR or self.strategy in ADJUSTER_STRATEGIES
        return "adjuster" if by_adjuster else "calibration"


def threshold_history(
    conn: Executor, category: str | None = None, limit: int = 500
) -> list[ThresholdHistoryEntry]:
    """Threshold versions, newest first (optionally of one category)."""
    v = THRESHOLDS.c
    query = select(THRESHOLDS).order_by(v.id.desc()).limit(limit)
    if category is not None:
        query = query.where(v.category == category)
    return [
        ThresholdHistoryEntry(
            r.id,
            r.category,
            r.policy,
            r.value,
            _float(r.previous_value),
            _float(r.delta),
            dict(r.cutoffs or {}),
            r.scale,
            r.strategy,
            r.reason,
            dict(r.stats or {}),
            r.created_by,
            r.restored_from_id,
            r.created_at,
            bool(r.is_active),
        )  # fmt: skip
        for r in conn.execute(query)
    ]


@dataclass(frozen=True)
class ActionPoint:
    hour: dt.datetime
    action: str  # the action rules' overall action of the job (allow, blur, …, block)
    jobs: int


def actions_hourly(conn: Executor, window: TimeWindow) -> list[ActionPoint]:
    """Decided jobs per hour by their action-rule action, oldest first (decisions made before
    the action rules, migration 0014, have none and are left out)."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    d = Decision.__table__.c
    if bind.dialect.name == "postgresql":
        hour: Any = literal_column(pg_time_bucket("hour", "decisions.decided_at").text)
    else:
        hour = func.strftime("%Y-%m-%d %H:00:00", d.decided_at)
    jobs = func.count().label("jobs")
    query = (
        select(hour.label("hour"), d.enforcement, jobs)
        .where(d.decided_at >= _floor(window.start, "hour"), d.decided_at < window.end)
        .where(d.enforcement.is_not(None))
        .group_by(hour, d.enforcement)
        .order_by(hour, d.enforcement)
    )
    out = []
    for bucket, action, n in conn.execute(query).all():
        if isinstance(bucket, str):  # SQLite: text; PostgreSQL: timestamptz
            bucket = dt.datetime.fromisoformat(bucket)
        moment = bucket.replace(tzinfo=dt.UTC) if bucket.tzinfo is None else bucket
        out.append(ActionPoint(moment.astimezone(dt.UTC), action, int(n)))
    return out


@dataclass(frozen=True)
class AuditLoad:
    """Audit review load against uploads over a window: jobs scored, audit items routed and
    the distinct images they are of (``MODERATION_AUDIT_FRACTION`` applies per (image,
    category) in the per_category design, so images audited can be several times the
    fraction)."""

    uploads: int  # jobs scored in the window
    audit_items: int  # audit review items routed in the window
    audited_images: int  # distinct jobs among them

    def per_1000(self, count: int) -> float | None:
        return 1000 * count / self.uploads if self.uploads else None

    @property
    def items_per_1000(self) -> float | None:
        return self.per_1000(self.audit_items)

    @property
    def images_per_1000(self) -> float | None:
        return self.per_1000(self.audited_images)


def audit_load(conn: Executor, window: TimeWindow) -> AuditLoad:
    """``AuditLoad`` of ``[window.start, window.end)`` (the jobs' ``finished_at`` index and the
    review items' ``(kind, status, created_at)`` one)."""
    j, r = Job.__table__.c, ReviewItem.__table__.c
    uploads = conn.scalar(
        select(func.count()).where(
            j.finished_at >= window.start, j.finished_at < window.end, j.status == JobStatus.SCORED
        )
    )
    items, images = conn.execute(
        select(func.count(), func.count(distinct(r.job_id))).where(
            r.kind == ReviewItemKind.AUDIT, r.created_at >= window.start, r.created_at < window.end
        )
    ).one()
    return AuditLoad(int(uploads or 0), int(items or 0), int(images or 0))
