"""blob store and retention: where uploaded bytes live, purge marks, legal hold, runs

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06

- ``images``: ``blob_uri`` (where the blob store — MODERATION_BLOB_STORE dir/s3 — keeps the
  uploaded bytes; NULL: ``image_blobs`` or a reference's ``storage_uri``), ``purged_at`` (when
  retention deleted the bytes; the row, its hashes and jobs stay) and ``legal_hold`` (retention
  never deletes these bytes).
- ``retention_runs``: one row per retention run with what it deleted (dashboard, per day).
Self-contained on purpose: it does not import application code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("images", sa.Column("blob_uri", sa.Text(), nullable=True))
    op.add_column("images", sa.Column("purged_at", TS, nullable=True))
    op.add_column(
        "images",
        sa.Column("legal_hold", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_table(
        "retention_runs",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("purged_clear", sa.Integer(), nullable=False),
        sa.Column("purged_reviewed", sa.Integer(), nullable=False),
        sa.Column("purged_bytes", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retention_runs"),
    )
    op.create_index("ix_retention_runs_started_at", "retention_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_retention_runs_started_at", table_name="retention_runs")
    op.drop_table("retention_runs")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("legal_hold")
        batch.drop_column("purged_at")
        batch.drop_column("blob_uri")
