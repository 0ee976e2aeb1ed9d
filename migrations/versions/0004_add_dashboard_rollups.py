"""add dashboard rollup tables

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

Closed buckets of the five windowed dashboard views, copied by a periodic refresh
(moderation/db/rollups.py) so a 24-hour or 7-day dashboard reads a few thousand rollup rows
instead of aggregating every job of the window; the open hours are still read live from the
views. ``dashboard_rollup_state`` says how far each table is filled. See docs/views.md.
Self-contained on purpose: it does not import application code, which keeps changing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _counts(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), nullable=False) for name in names]


def _floats(*names: str) -> list[sa.Column]:
    return [sa.Column(name, sa.Float(), nullable=True) for name in names]


ROLLUPS: list[tuple[str, str, list[sa.Column]]] = [
    (
        "rollup_throughput_per_minute",
        "minute",
        [*_counts("finished", "scored", "failed", "quarantined"), *_floats("mean_turnaround_s")],
    ),
    (
        "rollup_tier_mix_hourly",
        "hour",
        [
            sa.Column("category", sa.String(64), nullable=True),
            sa.Column("tier", sa.String(16), nullable=False),
            *_counts("jobs"),
        ],
    ),
    (
        "rollup_review_latency_hourly",
        "hour",
        [
            sa.Column("kind", sa.String(16), nullable=False),
            *_counts("reviews"),
            *_floats("mean_wait_s", "max_wait_s"),
        ],
    ),
    (
        "rollup_reviewer_agreement_hourly",
        "hour",
        [
            sa.Column("reviewer", sa.String(100), nullable=False),
            sa.Column("category", sa.String(64), nullable=False),
            *_counts("reviews", "compared", "agreed"),
        ],
    ),
    (
        "rollup_review_estimates_hourly",
        "hour",
        [
            sa.Column("category", sa.String(64), nullable=False),
            *_counts("reviews", "flagged_reviews", "audit_reviews"),
            *_floats("tp", "fp", "fn", "tn"),
        ],
    ),
]


def upgrade() -> None:
    op.create_table(
        "dashboard_rollup_state",
        sa.Column("view", sa.String(64), nullable=False),
        sa.Column("rolled_until", TS, nullable=False),
        sa.Column("refreshed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("view", name="pk_dashboard_rollup_state"),
    )
    for name, bucket, columns in ROLLUPS:
        op.create_table(
            name,
            sa.Column("id", BIGINT_PK, nullable=False),
            sa.Column(bucket, TS, nullable=False),
            *columns,
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        )
        op.create_index(f"ix_{name}_{bucket}", name, [bucket])


def downgrade() -> None:
    for name, bucket, _columns in reversed(ROLLUPS):
        op.drop_index(f"ix_{name}_{bucket}", table_name=name)
        op.drop_table(name)
    op.drop_table("dashboard_rollup_state")
