"""action rules: versioned rule sets and the action on each decision

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

- ``action_rule_versions``: append-only action rule sets (the newest is in force); a rollback
  is a new version carrying an older one's rules (``restored_from_id``).
- ``decisions`` / ``decision_history``: ``enforcement`` (the job's overall action: allow,
  blur, age_restrict, hold, block or a custom name; NULL for decisions made before 0014) and,
  on ``decisions``, ``enforcement_detail`` (per category action/escalate/source, the escalate
  flag and the rule version).
Self-contained on purpose: it does not import application code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "action_rule_versions",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("rules", JSON_DOC, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("restored_from_id", BIGINT_PK, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["restored_from_id"],
            ["action_rule_versions.id"],
            name="fk_action_rule_versions_restored_from_id_action_rule_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_action_rule_versions"),
    )
    # plain ALTER TABLE on both backends, like 0003, 0005, 0012 and 0013
    op.add_column("decisions", sa.Column("enforcement", sa.String(64), nullable=True))
    op.add_column("decisions", sa.Column("enforcement_detail", JSON_DOC, nullable=True))
    op.add_column("decision_history", sa.Column("enforcement", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("decision_history", "enforcement")
    op.drop_column("decisions", "enforcement_detail")
    op.drop_column("decisions", "enforcement")
    op.drop_table("action_rule_versions")
