"""add bank_entries.crop_hashes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

PDQ hashes of overlapping trimmed windows of a banked image (``MODERATION_BANK_CROP_GRID``),
concatenated 64-hex-digit hashes; NULL when none were computed. They let a cropped re-upload
match its entry: PDQ itself misses crops beyond ~2-3 %.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both backends, like 0003 (no batch-mode table rebuild).
def upgrade() -> None:
    op.add_column("bank_entries", sa.Column("crop_hashes", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("bank_entries", "crop_hashes")
