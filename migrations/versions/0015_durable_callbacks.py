"""durable callbacks: retry state on the job

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06

- ``jobs``: ``callback_attempts`` (dispatches tried), ``callback_next_at`` (when the next is
  due; while one is in flight, the end of its lease), ``callback_since`` (since when the
  callback is due: its ``MODERATION_CALLBACK_MAX_AGE_S`` counts from here) and
  ``callback_last_error``. ``callback_state`` ``failed`` becomes ``dead`` (a dead letter, which
  ``moderation callbacks resend`` sends again); callbacks left ``pending`` are due at once.
Self-contained on purpose: it does not import application code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


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


def downgrade() -> None:
    op.execute("UPDATE jobs SET callback_state = 'failed' WHERE callback_state = 'dead'")
    op.drop_index("ix_jobs_callback_next_at", table_name="jobs")
    # plain ALTER TABLE … DROP COLUMN on both backends, like 0013 (SQLite ≥ 3.35)
    for column in ("callback_last_error", "callback_since", "callback_next_at", "callback_attempts"):
        op.drop_column("jobs", column)
