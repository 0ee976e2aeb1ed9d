"""add jobs.intake_key: idempotent intake

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

The API names every submission with a fresh key before its insert transaction. When the
connection drops during COMMIT the outcome is unknown and the transaction is run again; with the
key, a retry of a commit that did land finds its jobs instead of inserting a second job per
upload. NULL for jobs from other sources (``scan``), which are not retried that way.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both backends, like 0003 and 0005 (no batch-mode table rebuild).
def upgrade() -> None:
    op.add_column("jobs", sa.Column("intake_key", sa.String(length=64), nullable=True))
    op.create_index("uq_jobs_intake_key", "jobs", ["intake_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_jobs_intake_key", table_name="jobs")
    op.drop_column("jobs", "intake_key")
