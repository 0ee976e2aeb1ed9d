"""create initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Tables: images, image_blobs, jobs, pattern_sets, pattern_embeddings, threshold_versions,
scores, decisions, review_items, reviews, audit_samples, audit_log, api_tokens, bank_entries.
Self-contained on purpose: it does not import application code, which keeps changing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as the ORM declares them (moderation/db/types.py), frozen here.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("details", JSON_DOC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(
        op.f("ix_audit_log_target_type_target_id"),
        "audit_log",
        ["target_type", "target_id"],
        unique=False,
    )
    op.create_table(
        "images",
        sa.Column("id", ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("pdq_hash", sa.String(length=64), nullable=True),
        sa.Column("pdq_quality", sa.SmallInteger(), nullable=True),
        sa.Column("storage_uri", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("sha256", name=op.f("uq_images_sha256")),
    )
    op.create_table(
        "pattern_sets",
        sa.Column("id", ID, nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("document", JSON_DOC, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pattern_sets")),
        sa.UniqueConstraint("version", name=op.f("uq_pattern_sets_version")),
    )
    op.create_table(
        "threshold_versions",
        sa.Column("id", ID, nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("cutoffs", JSON_DOC, nullable=False),
        sa.Column("scale", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("stats", JSON_DOC, nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("restored_from_id", ID, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["restored_from_id"],
            ["threshold_versions.id"],
            name=op.f("fk_threshold_versions_restored_from_id_threshold_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threshold_versions")),
    )
    op.create_index(
        op.f("ix_threshold_versions_category_id"),
        "threshold_versions",
        ["category", "id"],
        unique=False,
    )
    op.create_table(
        "image_blobs",
        sa.Column("image_id", ID, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_blobs_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", name=op.f("pk_image_blobs")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", ID, nullable=False),
        sa.Column("image_id", ID, nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("submitted_by", sa.String(length=100), nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("callback_state", sa.String(length=16), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "processing",
                "scored",
                "failed",
                "quarantined",
                name="job_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("scorer", sa.String(length=200), nullable=True),
        sa.Column("catalog_version", sa.String(length=64), nullable=True),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_jobs_image_id_images"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(
        op.f("ix_jobs_error_code_finished_at"), "jobs", ["error_code", "finished_at"], unique=False
    )
    op.create_index(op.f("ix_jobs_external_id"), "jobs", ["external_id"], unique=False)
    op.create_index(op.f("ix_jobs_finished_at"), "jobs", ["finished_at"], unique=False)
    op.create_index(op.f("ix_jobs_image_id"), "jobs", ["image_id"], unique=False)
    op.create_index(
        op.f("ix_jobs_status_submitted_at"), "jobs", ["status", "submitted_at"], unique=False
    )
    op.create_index(
        op.f("ix_jobs_submitted_by_submitted_at"),
        "jobs",
        ["submitted_by", "submitted_at"],
        unique=False,
    )
    op.create_table(
        "pattern_embeddings",
        sa.Column("id", ID, nullable=False),
        sa.Column("pattern_set_id", ID, nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("phrasings", JSON_DOC, nullable=False),
        sa.Column("vectors", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["pattern_set_id"],
            ["pattern_sets.id"],
            name=op.f("fk_pattern_embeddings_pattern_set_id_pattern_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pattern_embeddings")),
        sa.UniqueConstraint(
            "pattern_set_id", "model_id", name=op.f("uq_pattern_embeddings_pattern_set_id_model_id")
        ),
    )
    op.create_table(
        "audit_samples",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("stratum", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("inclusion_probability", sa.Float(), nullable=False),
        sa.Column("sampled_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_audit_samples_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_samples")),
        sa.UniqueConstraint("job_id", "category", name=op.f("uq_audit_samples_job_id_category")),
    )
    op.create_index(
        op.f("ix_audit_samples_category_sampled_at"),
        "audit_samples",
        ["category", "sampled_at"],
        unique=False,
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", ID, nullable=False),
        sa.Column(
            "bank",
            sa.Enum(
                "confirmed_violation",
                "benign",
                name="bank_kind",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("pdq_hash", sa.String(length=64), nullable=False),
        sa.Column("pdq_quality", sa.SmallInteger(), nullable=True),
        sa.Column("image_id", ID, nullable=True),
        sa.Column("source_job_id", ID, nullable=True),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_bank_entries_image_id_images"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["source_job_id"],
            ["jobs.id"],
            name=op.f("fk_bank_entries_source_job_id_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_entries")),
    )
    op.create_index(
        op.f("ix_bank_entries_bank_enabled_id"),
        "bank_entries",
        ["bank", "enabled", "id"],
        unique=False,
    )
    op.create_index(op.f("ix_bank_entries_pdq_hash"), "bank_entries", ["pdq_hash"], unique=False)
    op.create_table(
        "review_items",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "queue", "audit", name="review_item_kind", native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column(
            "tier",
            sa.Enum(
                "clear",
                "warning",
                "medium",
                "high",
                "extreme",
                name="risk_tier",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("inclusion_probability", sa.Float(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "claimed",
                "done",
                name="review_item_status",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claim_expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("done_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_review_items_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("job_id", name=op.f("uq_review_items_job_id")),
    )
    op.create_index(
        op.f("ix_review_items_claim_expires_at"), "review_items", ["claim_expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_review_items_status_priority_created_at"),
        "review_items",
        ["status", "priority", "created_at"],
        unique=False,
    )
    op.create_table(
        "scores",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "embedding",
                "classifier",
                "hash_match",
                "fusion",
                name="score_source",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("phrasing", sa.Text(), nullable=True),
        sa.Column(
            "tier",
            sa.Enum(
                "clear",
                "warning",
                "medium",
                "high",
                "extreme",
                name="risk_tier",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("threshold_version_id", ID, nullable=True),
        sa.Column("details", JSON_DOC, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_scores_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["threshold_version_id"],
            ["threshold_versions.id"],
            name=op.f("fk_scores_threshold_version_id_threshold_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
        sa.UniqueConstraint("job_id", "category", name=op.f("uq_scores_job_id_category")),
    )
    op.create_index(op.f("ix_scores_category_tier"), "scores", ["category", "tier"], unique=False)
    op.create_index(
        op.f("ix_scores_threshold_version_id"), "scores", ["threshold_version_id"], unique=False
    )
    op.create_table(
        "decisions",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column(
            "tier",
            sa.Enum(
                "clear",
                "warning",
                "medium",
                "high",
                "extreme",
                name="risk_tier",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("policy", sa.String(length=64), nullable=False),
        sa.Column("threshold_versions", JSON_DOC, nullable=False),
        sa.Column("matched_bank_entry_id", ID, nullable=True),
        sa.Column("match_distance", sa.SmallInteger(), nullable=True),
        sa.Column("decided_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_decisions_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["matched_bank_entry_id"],
            ["bank_entries.id"],
            name=op.f("fk_decisions_matched_bank_entry_id_bank_entries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("job_id", name=op.f("uq_decisions_job_id")),
    )
    op.create_index(op.f("ix_decisions_decided_at"), "decisions", ["decided_at"], unique=False)
    op.create_index(
        op.f("ix_decisions_tier_decided_at"), "decisions", ["tier", "decided_at"], unique=False
    )
    op.create_table(
        "reviews",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("review_item_id", ID, nullable=True),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column(
            "label",
            sa.Enum(
                "violation",
                "not_violation",
                "other_category",
                name="review_label",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("other_category", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_reviews_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["review_item_id"],
            ["review_items.id"],
            name=op.f("fk_reviews_review_item_id_review_items"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint(
            "job_id", "category", "reviewer", name=op.f("uq_reviews_job_id_category_reviewer")
        ),
    )
    op.create_index(
        op.f("ix_reviews_category_created_at"), "reviews", ["category", "created_at"], unique=False
    )
    op.create_index(op.f("ix_reviews_job_id"), "reviews", ["job_id"], unique=False)
    op.create_index(
        op.f("ix_reviews_reviewer_created_at"), "reviews", ["reviewer", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reviews_reviewer_created_at"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_job_id"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_category_created_at"), table_name="reviews")
    op.drop_table("reviews")
    op.drop_index(op.f("ix_decisions_tier_decided_at"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_decided_at"), table_name="decisions")
    op.drop_table("decisions")
    op.drop_index(op.f("ix_scores_threshold_version_id"), table_name="scores")
    op.drop_index(op.f("ix_scores_category_tier"), table_name="scores")
    op.drop_table("scores")
    op.drop_index(op.f("ix_review_items_status_priority_created_at"), table_name="review_items")
    op.drop_index(op.f("ix_review_items_claim_expires_at"), table_name="review_items")
    op.drop_table("review_items")
    op.drop_index(op.f("ix_bank_entries_pdq_hash"), table_name="bank_entries")
    op.drop_index(op.f("ix_bank_entries_bank_enabled_id"), table_name="bank_entries")
    op.drop_table("bank_entries")
    op.drop_index(op.f("ix_audit_samples_category_sampled_at"), table_name="audit_samples")
    op.drop_table("audit_samples")
    op.drop_table("pattern_embeddings")
    op.drop_index(op.f("ix_jobs_submitted_by_submitted_at"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_status_submitted_at"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_image_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_finished_at"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_external_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_error_code_finished_at"), table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("image_blobs")
    op.drop_index(op.f("ix_threshold_versions_category_id"), table_name="threshold_versions")
    op.drop_table("threshold_versions")
    op.drop_table("pattern_sets")
    op.drop_table("images")
    op.drop_index(op.f("ix_audit_log_target_type_target_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
