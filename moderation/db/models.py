"""SQLAlchemy 2.0 ORM rows. The schema only changes through an Alembic migration."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import TextClause

from moderation.db.types import BigIntPK, JSONDoc, UTCDateTime, str_enum, utcnow
from moderation.domain import (
    BankKind,
    JobStatus,
    ReviewItemKind,
    ReviewItemStatus,
    ReviewLabel,
    RiskTier,
    ScoreSource,
)

__all__ = [
    "ActionRuleVersion",
    "Appeal",
    "ApiToken",
    "AuditLogEntry",
    "AuditSample",
    "Base",
    "BankEntry",
    "Decision",
    "DecisionHistory",
    "Image",
    "ImageBlob",
    "Job",
    "PatternEmbedding",
    "PatternSet",
    "ROLLUP_TABLES",
    "RetroMatch",
    "RetroRun",
    "ReviewItem",
    "Review",
    "RollupState",
    "Score",
    "ScorerProfileRow",
    "ThresholdVersion",
    "pg_time_bucket",
    "postgres_only_index",
]

# Deterministic constraint names so migrations can drop/alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CATEGORY = String(64)  # violation category names, e.g. "sexual", "weapons"

# Dashboard time buckets (the views of migration 0002, docs/views.md). `date_bin` is IMMUTABLE,
# so PostgreSQL can index it; the text is what PostgreSQL prints back, so autogenerate compares
# it as equal. SQLite cannot reflect expression indexes: these indexes are PostgreSQL-only.
_PG_EPOCH = "'2000-01-01 00:00:00+00'::timestamp with time zone"
_PG_INTERVALS = {"minute": "00:01:00", "hour": "01:00:00"}


def pg_time_bucket(unit: str, column: str) -> TextClause:
    """The views' PostgreSQL bucket expression for ``column`` (``unit``: minute or hour)."""
    return text(f"date_bin('{_PG_INTERVALS[unit]}'::interval, {column}, {_PG_EPOCH})")


def postgres_only_index(name: str, *expressions: Any, **kwargs: Any) -> Index:
    """An index created on PostgreSQL only (``info["only_on"]`` marks it for tests and tools)."""
    index = Index(name, *expressions, info={"only_on": "postgresql"}, **kwargs)
    return index.ddl_if(dialect="postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def created_at_column() -> Mapped[dt.datetime]:
    return mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class Image(Base):
    """One distinct image content; sha256 of its bytes is the idempotency key."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    byte_size: Mapped[int] = mapped_column(Integer, nullable=False)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    # PDQ perceptual hash (256 bits as 64 hex chars) and its quality 0–100.
    pdq_hash: Mapped[str | None] = mapped_column(String(64))
    pdq_quality: Mapped[int | None] = mapped_column(SmallInteger)
    # Where the bytes are when not in image_blobs (e.g. file:///… for `moderation scan`).
    storage_uri: Mapped[str | None] = mapped_column(Text)
    # Where the blob store (MODERATION_BLOB_STORE dir/s3) keeps the uploaded bytes (0016).
    blob_uri: Mapped[str | None] = mapped_column(Text)
    # When retention deleted the stored bytes (the row, hashes and jobs stay).
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Legal hold: retention never deletes these bytes (`moderation retention hold`).
    legal_hold: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    created_at: Mapped[dt.datetime] = created_at_column()

    blob: Mapped[ImageBlob | None] = relationship(
        back_populates="image", cascade="all, delete-orphan", lazy="raise"
    )


class ImageBlob(Base):
    """The uploaded bytes, kept apart from ``images`` so listing images never reads them.

    On PostgreSQL ``data`` is stored EXTERNAL (out of line, never compressed; migration 0007):
    image formats are compressed already, and pglz's attempt only burned server CPU.
    """

    __tablename__ = "image_blobs"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)

    image: Mapped[Image] = relationship(back_populates="blob")


class Job(Base):
    """One request to moderate one image."""

    __tablename__ = "jobs"
    __table_args__ = (
        # backlog size/age, `GET /v1/jobs?status=&since=`, reaper of stale `processing` claims
        Index(None, "status", "submitted_at"),
        # a submitter lists only its own jobs, newest first
        Index(None, "submitted_by", "submitted_at"),
        # throughput per minute (dashboards) scans finished jobs by time
        Index(None, "finished_at"),
        # failures/quarantine by reason
        Index(None, "error_code", "finished_at"),
        # upload pipelines look their jobs up by their own id
        Index(None, "external_id"),
        # idempotent intake: a retried insert finds the jobs its lost COMMIT did write (0008)
        Index("uq_jobs_intake_key", "intake_key", unique=True),
        # v_throughput_per_minute over a window: index-only range scan on the minute bucket
        postgres_only_index(
            "ix_jobs_finished_minute",
            pg_time_bucket("minute", "finished_at"),
            postgresql_include=["status", "submitted_at", "finished_at"],
        ),
        # v_failures_hourly: only failed/quarantined rows (about 1 %) are indexed
        postgres_only_index(
            "ix_jobs_failed_hour",
            pg_time_bucket("hour", "finished_at"),
            "status",
            "error_code",
            postgresql_include=["finished_at"],
            postgresql_where=text("status IN ('failed', 'quarantined')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    external_id: Mapped[str | None] = mapped_column(String(200))
    # set by the API per submission before its insert transaction (see create_jobs)
    intake_key: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32), nullable=False, default="api")
    submitted_by: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_state: Mapped[str | None] = mapped_column(String(16))  # pending/sent/dead/skipped
    # durable callbacks (0015): dispatches tried, when the next is due (also the lease of the
    # one in flight), since when it is due (its max age counts from here), the last failure
    callback_attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    callback_next_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    callback_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    callback_last_error: Mapped[str | None] = mapped_column(Text)
    status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus, "job_status"), nullable=False, default=JobStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    scorer: Mapped[str | None] = mapped_column(String(200))  # model id that produced the scores
    catalog_version: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # last publish of its broker message; NULL = never published (the reaper publishes it)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # the seed's scenarios (0012): a text to match the image against (e.g. a listing title),
    # album tags asked for (None: the policy's default), the decision context
    match_text: Mapped[str | None] = mapped_column(Text)
    want_tags: Mapped[bool | None] = mapped_column(Boolean)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)

    image: Mapped[Image] = relationship(lazy="raise")
    scores: Mapped[list[Score]] = relationship(
        back_populates="job", cascade="all, delete-orphan", lazy="raise"
    )
    decision: Mapped[Decision | None] = relationship(
        back_populates="job", cascade="all, delete-orphan", lazy="raise"
    )


class PatternSet(Base):
    """A violation catalog version; ``version`` is the hash of its normalised content."""

    __tablename__ = "pattern_sets"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False)
    created_at: Mapped[dt.datetime] = created_at_column()


class PatternEmbedding(Base):
    """Pattern vectors, computed once per (catalog version, model, instruction) by whichever
    worker host needs them first and read by every other one (the shared pattern cache)."""

    __tablename__ = "pattern_embeddings"
    __table_args__ = (UniqueConstraint("pattern_set_id", "model_id", "instruction"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    pattern_set_id: Mapped[int] = mapped_column(
        ForeignKey("pattern_sets.id", ondelete="CASCADE"), nullable=False
    )
    model_id: Mapped[str] = mapped_column(String(200), nullable=False)
    # the system-turn instruction the phrasings were embedded with (one per fusion dimension)
    instruction: Mapped[str] = mapped_column(Text, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    phrasings: Mapped[list[Any]] = mapped_column(JSONDoc, nullable=False)  # row order of vectors
    vectors: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # float32, row-major
    created_at: Mapped[dt.datetime] = created_at_column()


class ThresholdVersion(Base):
    """Append-only threshold history per category; the newest row of a category is active."""

    __tablename__ = "threshold_versions"
    __table_args__ = (
        # "active version of category X" = newest id for X; history pages walk it backwards
        Index(None, "category", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    category: Mapped[str] = mapped_column(CATEGORY, nullable=False)
    policy: Mapped[str] = mapped_column(String(64), nullable=False)
    value: Mapped[float] = mapped_column(Float, nullable=False)  # the base (violation) cut-off
    cutoffs: Mapped[dict[str, float]] = mapped_column(JSONDoc, nullable=False)  # tier → min score
    scale: Mapped[str] = mapped_column(String(32), nullable=False)  # e.g. gme_cosine, probability
    strategy: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    stats: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False, default=dict)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    # set when this version restores an older one (rollback)
    restored_from_id: Mapped[int | None] = mapped_column(ForeignKey("threshold_versions.id"))
    # hand-set (thresholds set/rollback/pin): the adjuster leaves the category alone (0009)
    pinned: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    created_at: Mapped[dt.datetime] = created_at_column()


class ActionRuleVersion(Base):
    """Append-only action rule sets; the newest is in force (0014)."""

    __tablename__ = "action_rule_versions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False)  # normalised
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    restored_from_id: Mapped[int | None] = mapped_column(ForeignKey("action_rule_versions.id"))
    created_at: Mapped[dt.datetime] = created_at_column()


class ScorerProfileRow(Base):
    """What one pipeline process scores with (model, backend, catalog version and per category
    scale/severity/base), refreshed while it runs: the threshold adjuster adjusts the union of
    the profiles seen recently (0009)."""

    __tablename__ = "scorer_profiles"
    __table_args__ = (
        UniqueConstraint("worker"),
        Index(None, "last_seen_at"),  # "profiles seen within the window"
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    worker: Mapped[str] = mapped_column(String(200), nullable=False)
    model_id: Mapped[str] = mapped_column(String(200), nullable=False)
    backend: Mapped[str] = mapped_column(String(32), nullable=False)
    catalog_version: Mapped[str] = mapped_column(String(64), nullable=False)
    # category → {"scale": str, "severity": int, "base": float | None}
    categories: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Score(Base):
    """One category score of one job, with the phrasing that won and the tier it gave."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("job_id", "category"),  # redelivery cannot write a second row
        # tier mix per category, precision/recall per category
        Index(None, "category", "tier"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    category: Mapped[str] = mapped_column(CATEGORY, nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    source: Mapped[ScoreSource] = mapped_column(str_enum(ScoreSource, "score_source"))
    phrasing: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[RiskTier] = mapped_column(str_enum(RiskTier, "risk_tier"), nullable=False)
    threshold_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("threshold_versions.id", ondelete="SET NULL"), index=True
    )
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)

    job: Mapped[Job] = relationship(back_populates="scores")


class Decision(Base):
    """The overall verdict of a job: its worst category tier and the action it implies."""

    __tablename__ = "decisions"
    __table_args__ = (
        # tier mix per hour, "violations in the last N minutes"
        Index(None, "decided_at"),
        Index(None, "tier", "decided_at"),
        # v_tier_mix_hourly over a window: index-only, already in GROUP BY order
        postgres_only_index(
            "ix_decisions_decided_hour",
            pg_time_bucket("hour", "decided_at"),
            "category",
            "tier",
            postgresql_include=["decided_at"],
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    tier: Mapped[RiskTier] = mapped_column(str_enum(RiskTier, "risk_tier"), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    category: Mapped[str | None] = mapped_column(CATEGORY)  # the category that set the tier
    priority: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    policy: Mapped[str] = mapped_column(String(64), nullable=False)
    threshold_versions: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False)
    matched_bank_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("bank_entries.id", ondelete="SET NULL")
    )
    match_distance: Mapped[int | None] = mapped_column(SmallInteger)
    # what the scenarios gave (0012): {"match": …, "tags": […], "context": …}; None if none
    scenario: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    # 1 = the worker's decision; 2… = re-decisions (retro-matching), the earlier ones kept in
    # decision_history (0014); ``reason`` says why the last re-decision was made
    version: Mapped[int] = mapped_column(
        Integer, nullable=False, default=1, server_default=text("1")
    )
    reason: Mapped[str | None] = mapped_column(Text)
    frame: Mapped[int | None] = mapped_column(SmallInteger)  # animation frame that decided
    # the action rules' verdict (0014): overall action, and {escalate, rules_version,
    # categories: {category: {action, escalate, source}}}; NULL for decisions before 0014
    enforcement: Mapped[str | None] = mapped_column(String(64))
    enforcement_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)

    job: Mapped[Job] = relationship(back_populates="decision")


class DecisionHistory(Base):
    """A superseded decision of a job (the audit trail of re-decisions, 0014)."""

    __tablename__ = "decision_history"
    __table_args__ = (UniqueConstraint("job_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    category: Mapped[str | None] = mapped_column(CATEGORY)
    priority: Mapped[float] = mapped_column(Float, nullable=False)
    policy: Mapped[str] = mapped_column(String(64), nullable=False)
    threshold_versions: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False)
    matched_bank_entry_id: Mapped[int | None] = mapped_column(BigInteger)
    match_distance: Mapped[int | None] = mapped_column(SmallInteger)
    frame: Mapped[int | None] = mapped_column(SmallInteger)
    scenario: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    reason: Mapped[str | None] = mapped_column(Text)
    enforcement: Mapped[str | None] = mapped_column(String(64))  # 0014
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    superseded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


class Appeal(Base):
    """A submitter contesting a job's decision (0015): a queue of its own, decided by a
    reviewer other than those who reviewed the job; the outcome writes a new decision version."""

    __tablename__ = "appeals"
    __table_args__ = (
        UniqueConstraint("job_id"),  # one appeal per job
        Index(None, "status", "created_at"),  # the queue: open appeals, oldest first
        Index(None, "category", "created_at"),  # rates per category, calibration evidence
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    submitted_by: Mapped[str] = mapped_column(String(100), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")  # open/decided
    # the decision appealed: its tier, category (the one that set the tier) and version
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    category: Mapped[str | None] = mapped_column(CATEGORY)
    decision_version: Mapped[int] = mapped_column(Integer, nullable=False)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))  # upheld/overturned
    new_tier: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = created_at_column()
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ReviewItem(Base):
    """An entry of the human review queue (tier needs review, or an audit sample)."""

    __tablename__ = "review_items"
    __table_args__ = (
        UniqueConstraint("job_id"),
        # claim query: open items by priority then age
        Index(None, "status", "priority", "created_at"),
        # expired claims go back to the queue
        Index(None, "claim_expires_at"),
        # audit items waiting too long are claimed first, oldest first (0006)
        Index(None, "kind", "status", "created_at"),
        # the adjuster's evidence: a category's queue items over a window (0006)
        Index(None, "category", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[ReviewItemKind] = mapped_column(
        str_enum(ReviewItemKind, "review_item_kind"), nullable=False
    )
    category: Mapped[str | None] = mapped_column(CATEGORY)
    score: Mapped[float | None] = mapped_column(Float)
    tier: Mapped[RiskTier] = mapped_column(str_enum(RiskTier, "risk_tier"), nullable=False)
    priority: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    # probability this item was routed to review: 1 for queue items, the sampling rate for audits
    inclusion_probability: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    status: Mapped[ReviewItemStatus] = mapped_column(
        str_enum(ReviewItemStatus, "review_item_status"),
        nullable=False,
        default=ReviewItemStatus.OPEN,
    )
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = created_at_column()
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Review(Base):
    """A reviewer's decision. Several reviewers may review one item; each row is kept."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("job_id", "category", "reviewer"),
        # agreement and latency per reviewer, label history per category
        Index(None, "reviewer", "created_at"),
        Index(None, "category", "created_at"),
        # review latency, agreement and precision/recall estimates over a window
        postgres_only_index(
            "ix_reviews_created_hour",
            pg_time_bucket("hour", "created_at"),
            postgresql_include=["created_at"],
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True, nullable=False
    )
    review_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("review_items.id", ondelete="SET NULL")
    )
    reviewer: Mapped[str] = mapped_column(String(100), nullable=False)
    category: Mapped[str] = mapped_column(CATEGORY, nullable=False)
    label: Mapped[ReviewLabel] = mapped_column(str_enum(ReviewLabel, "review_label"))
    other_category: Mapped[str | None] = mapped_column(CATEGORY)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = created_at_column()


class AuditSample(Base):
    """A below-threshold item drawn for audit, with the probability it had of being drawn."""

    __tablename__ = "audit_samples"
    __table_args__ = (
        UniqueConstraint("job_id", "category"),
        Index(None, "category", "sampled_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    category: Mapped[str] = mapped_column(CATEGORY, nullable=False)
    stratum: Mapped[str] = mapped_column(String(32), nullable=False)  # score band
    score: Mapped[float] = mapped_column(Float, nullable=False)
    inclusion_probability: Mapped[float] = mapped_column(Float, nullable=False)
    sampled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)


class AuditLogEntry(Base):
    """Append-only record of every human or admin action."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str] = mapped_column(String(32), nullable=False)
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDoc, nullable=False, default=dict)


class ApiToken(Base):
    """Bearer tokens kept in the DB (only their sha256 is stored)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[dt.datetime] = created_at_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class BankEntry(Base):
    """A perceptual hash in a bank (confirmed violations per category, or benign)."""

    __tablename__ = "bank_entries"
    __table_args__ = (
        # the in-memory index loads enabled entries, and refreshes by id > last seen
        Index(None, "bank", "enabled", "id"),
        Index(None, "pdq_hash"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    bank: Mapped[BankKind] = mapped_column(str_enum(BankKind, "bank_kind"), nullable=False)
    category: Mapped[str | None] = mapped_column(CATEGORY)
    pdq_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    pdq_quality: Mapped[int | None] = mapped_column(SmallInteger)
    # hashes of trimmed windows of the image (concatenated 64-hex-digit PDQ hashes), matched
    # as this entry so cropped copies are caught; NULL when banked without them
    crop_hashes: Mapped[str | None] = mapped_column(Text)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    source_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    added_by: Mapped[str] = mapped_column(String(100), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=text("true")
    )
    created_at: Mapped[dt.datetime] = created_at_column()
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # provenance of imported entries: the hash list, its tags, who imported it and when (0014)
    source: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str] | None] = mapped_column(JSONDoc)
    imported_by: Mapped[str | None] = mapped_column(String(100))
    imported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # stamped on add, disable and re-enable: workers compare max(changed_at) before each batch
    changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # when a retro-matching run last covered this entry (NULL: never; < changed_at: re-enabled)
    retro_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class RetroRun(Base):
    """One retro-matching run: new or re-enabled entries against the images stored in the last
    ``bank_retro_days``; resumable from ``cursor`` (the last image id scanned)."""

    __tablename__ = "retro_runs"
    __table_args__ = (Index(None, "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    entry_ids: Mapped[list[int]] = mapped_column(JSONDoc, nullable=False)
    trigger: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # pending/running/done/failed
    since: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    cursor: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default=text("0")
    )
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    scanned: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    matched: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    redecided: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = created_at_column()
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class RetroMatch(Base):
    """A job re-decided because a bank entry matched its image after it was scored; the unique
    (job, entry) pair makes re-runs idempotent."""

    __tablename__ = "retro_matches"
    __table_args__ = (UniqueConstraint("job_id", "entry_id"), Index(None, "created_at"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("retro_runs.id", ondelete="SET NULL"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("bank_entries.id", ondelete="CASCADE"), nullable=False
    )
    distance: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    old_tier: Mapped[str] = mapped_column(String(16), nullable=False)
    new_tier: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = created_at_column()


class RollupState(Base):
    """How far each dashboard rollup table is filled: buckets before ``rolled_until`` are read
    from the rollup, later ones live from the view (moderation/db/rollups.py)."""

    __tablename__ = "dashboard_rollup_state"

    view: Mapped[str] = mapped_column(String(64), primary_key=True)
    rolled_until: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    refreshed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)


def _rollup_table(view: str, bucket: str, *columns: Column[Any]) -> Table:
    """A table with the columns of ``view``: its closed buckets, copied by the rollup refresh."""
    name = "rollup_" + view.removeprefix("v_")
    return Table(
        name,
        Base.metadata,
        Column("id", BigIntPK, primary_key=True),
        Column(bucket, UTCDateTime(), nullable=False, index=True),
        *columns,
        info={"view": view, "bucket": bucket},
    )


def _counts(*names: str) -> list[Column[Any]]:
    return [Column(name, Integer, nullable=False) for name in names]


def _floats(*names: str) -> list[Column[Any]]:
    return [Column(name, Float) for name in names]


# view name → its rollup table (docs/views.md "Rollups"). Failures and the backlog stay live:
# they read a few indexed rows for any window.
ROLLUP_TABLES: dict[str, Table] = {
    t.info["view"]: t
    for t in (
        _rollup_table(
            "v_throughput_per_minute",
            "minute",
            *_counts("finished", "scored", "failed", "quarantined"),
            *_floats("mean_turnaround_s"),
        ),
        _rollup_table(
            "v_tier_mix_hourly",
            "hour",
            Column("category", CATEGORY),
            Column("tier", String(16), nullable=False),
            *_counts("jobs"),
        ),
        _rollup_table(
            "v_review_latency_hourly",
            "hour",
            Column("kind", String(16), nullable=False),
            *_counts("reviews"),
            *_floats("mean_wait_s", "max_wait_s"),
        ),
        _rollup_table(
            "v_reviewer_agreement_hourly",
            "hour",
            Column("reviewer", String(100), nullable=False),
            Column("category", CATEGORY, nullable=False),
            *_counts("reviews", "compared", "agreed"),
        ),
        _rollup_table(
            "v_review_estimates_hourly",
            "hour",
            Column("category", CATEGORY, nullable=False),
            *_counts("reviews", "flagged_reviews", "audit_reviews"),
            *_floats("tp", "fp", "fn", "tn"),
        ),
    )
}


class RetentionRun(Base):
    """One retention run (beat or ``moderation retention run``): what it deleted, for the
    dashboard's per-day counts. A dry run records what it would have deleted."""

    __tablename__ = "retention_runs"
    __table_args__ = (Index(None, "started_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    purged_clear: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    purged_reviewed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    purged_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    errors: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
