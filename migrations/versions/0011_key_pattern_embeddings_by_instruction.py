"""pattern_embeddings: one row per (pattern set, model, instruction)

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-05

The pattern vectors cached in the database are the shared cache of every worker host. A
catalog with fusion weights embeds its phrasings twice — once per fusion dimension, each with
its own instruction — so the key gains ``instruction``. Rows are a cache that is recomputed on
a miss and were never written before this revision, so any present are dropped rather than
guessed an instruction. SQLite changes the unique constraint by rebuilding the table (batch
mode); PostgreSQL alters it in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = "uq_pattern_embeddings_pattern_set_id_model_id"
NEW_KEY = "uq_pattern_embeddings_pattern_set_id_model_id_instruction"


def upgrade() -> None:
    op.execute("DELETE FROM pattern_embeddings")
    with op.batch_alter_table("pattern_embeddings") as batch:
        batch.add_column(sa.Column("instruction", sa.Text(), nullable=False))
        batch.drop_constraint(OLD_KEY, type_="unique")
        batch.create_unique_constraint(NEW_KEY, ["pattern_set_id", "model_id", "instruction"])


def downgrade() -> None:
    op.execute("DELETE FROM pattern_embeddings")  # two instructions cannot share the old key
    with op.batch_alter_table("pattern_embeddings") as batch:
        batch.drop_constraint(NEW_KEY, type_="unique")
        batch.create_unique_constraint(OLD_KEY, ["pattern_set_id", "model_id"])
        batch.drop_column("instruction")
