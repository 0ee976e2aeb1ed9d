"""durable callbacks: retry state on the job; appeals

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

- ``jobs``: ``callback_attempts`` (dispatches tried), ``callback_next_at`` (when the next is
  due; while one is in flight, the end of its lease), ``callback_since`` (since when the
  callback is due: its ``MODERATION_CALLBACK_MAX_AGE_S`` counts from here) and
  ``callback_last_error``. ``callback_state`` ``failed`` becomes ``dead`` (a dead letter, which
  ``moderation callbacks resend`` sends again); callbacks left ``pending`` are due at once.
- ``appeals``: one per job at most — the submitter's reason, the decision appealed (tier,
  category, version), the claim of the reviewer deciding it, the outcome (upheld/overturned,
  the new tier, who, when).
Self-contained on purpose: it does not import application code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("callback_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("jobs", sa.Column("callback_next_at", TS, nullable=True))
    op.add_column("jobs", sa.Column("callback_since", TS, nullable=True))
    op.add_column("jobs", sa.Column("callback_last_error", sa.Text(), nullable=True))
    op.create_index("ix_jobs_callback_next_at", "jobs", ["callback_next_at"])
    op.execute("UPDATE jobs SET callback_state = 'dead' WHERE callback_state = 'failed'")
    op.execute(
        "UPDATE jobs SET callback_next_at = CURRENT_TIMESTAMP, callback_since = CURRENT_TIMESTAMP"
        " WHERE callback_state = 'pending'"
    )
    op.create_table(
        "appeals",
        sa.Column("id", ID, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("submitted_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("decision_version", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claim_expires_at", TS, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("new_tier", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_appeals_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_appeals"),
        sa.UniqueConstraint("job_id", name="uq_appeals_job_id"),
    )
    op.create_index("ix_appeals_status_created_at", "appeals", ["status", "created_at"])
    op.create_index("ix_appeals_category_created_at", "appeals", ["category", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_appeals_category_created_at", table_name="appeals")
    op.drop_index("ix_appeals_status_created_at", table_name="appeals")
    op.drop_table("appeals")
    op.execute("UPDATE jobs SET callback_state = 'failed' WHERE callback_state = 'dead'")
    op.drop_index("ix_jobs_callback_next_at", table_name="jobs")
    # plain ALTER TABLE … DROP COLUMN on both backends, like 0013 (SQLite ≥ 3.35)
    for column in (
        "callback_last_error",
        "callback_since",
        "callback_next_at",
        "callback_attempts",
    ):
        op.drop_column("jobs", column)
