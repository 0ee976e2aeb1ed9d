"""add jobs.enqueued_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

When the job's broker message was last published. NULL means never (the API committed the job
but could not reach the broker): the reaper publishes those at once, and republishes jobs whose
message may have been lost (queued or processing for longer than ``stale_claim_s``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both backends (SQLite >= 3.35 drops columns natively): a batch-mode
# table rebuild would trip over the dashboard views that read ``jobs``.
def upgrade() -> None:
    op.add_column("jobs", sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "enqueued_at")
