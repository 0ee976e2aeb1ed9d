"""add review_items indexes for overdue audits and adjuster evidence

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

- ``ix_review_items_kind_status_created_at``: the claim query's first step takes audit items
  waiting longer than ``MODERATION_REVIEW_AUDIT_MAX_WAIT_S``, oldest first, before queue items
  (audits carry their job's low priority and would otherwise starve behind a busy queue).
- ``ix_review_items_category_created_at``: the threshold adjuster's evidence — a category's
  queue items over its window — without scanning every review item.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_review_items_kind_status_created_at", "review_items", ["kind", "status", "created_at"]
    )
    op.create_index(
        "ix_review_items_category_created_at", "review_items", ["category", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_review_items_category_created_at", table_name="review_items")
    op.drop_index("ix_review_items_kind_status_created_at", table_name="review_items")
