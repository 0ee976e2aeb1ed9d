"""jobs.match_text/want_tags/context and decisions.scenario: the seed's scenarios per job

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

A job may carry a text to match its image against (an e-commerce listing title), ask for album
tags, and carry the seed's decision context (candidates, criticality, image complexity). The
worker keeps what it made of them — the match verdict, the tags, the context applied — with
the decision. All nullable: jobs and decisions written before this revision have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")


# Plain ALTER TABLE on both backends, like 0003, 0005 and 0008 (no batch-mode table rebuild).
def upgrade() -> None:
    op.add_column("jobs", sa.Column("match_text", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("want_tags", sa.Boolean(), nullable=True))
    op.add_column("jobs", sa.Column("context", JSON_DOC, nullable=True))
    op.add_column("decisions", sa.Column("scenario", JSON_DOC, nullable=True))


def downgrade() -> None:
    op.drop_column("decisions", "scenario")
    op.drop_column("jobs", "context")
    op.drop_column("jobs", "want_tags")
    op.drop_column("jobs", "match_text")
