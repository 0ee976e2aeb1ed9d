"""add jobs.enqueued_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

When the job's broker message was last published. NULL means never (the API committed the job
but could not reach the broker): the reaper publishes those at once, and republishes jobs whose
message may have been lost (queued or processing for longer than ``stale_claim_s``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("enqueued_at")
