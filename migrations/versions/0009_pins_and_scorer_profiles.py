"""add threshold_versions.pinned and scorer_profiles

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

``threshold_versions.pinned``: a hand-set version (``thresholds set``, ``rollback``, ``pin``)
that the adjuster leaves alone until it is unpinned or enough new audits arrive. Existing
versions are unpinned (the adjuster's behaviour so far).

``scorer_profiles``: what each pipeline process (worker pool process, ``moderation scan``)
scores with — model, backend, catalog version and each category's scale, severity and catalog
base — so the threshold adjuster adjusts what is actually scored instead of what its own
settings would build. One row per worker name, refreshed while the process runs.
Self-contained on purpose: it does not import application code, which keeps changing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # plain ALTER TABLE on both backends, like 0003 and 0005 (no batch-mode table rebuild)
    op.add_column(
        "threshold_versions",
        sa.Column("pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_table(
        "scorer_profiles",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("catalog_version", sa.String(64), nullable=False),
        sa.Column("categories", JSON_DOC, nullable=False),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scorer_profiles"),
        sa.UniqueConstraint("worker", name="uq_scorer_profiles_worker"),
    )
    op.create_index("ix_scorer_profiles_last_seen_at", "scorer_profiles", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_scorer_profiles_last_seen_at", table_name="scorer_profiles")
    op.drop_table("scorer_profiles")
    op.drop_column("threshold_versions", "pinned")
