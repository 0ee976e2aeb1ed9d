"""hash-bank lifecycle: provenance, change stamps, retro-match runs, decision versions, frames

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

- ``bank_entries``: provenance of imported entries (``source`` list, ``tags``, ``imported_by``,
  ``imported_at``) and ``changed_at`` — stamped on add, disable and re-enable, so a worker sees
  any change with one indexed ``max()`` before each batch (instant propagation); ``retro_at``
  — when a retro-matching run last covered the entry (the sweep picks up entries added or
  re-enabled since, e.g. by a reviewer).
- ``decisions``: ``version`` (1 = the worker's, 2… = re-decisions), ``reason`` (why the last
  re-decision, e.g. ``retro_match: bank entry #5``) and ``frame`` (the animation frame that
  decided; NULL for still images and frame 0).
- ``decision_history``: every superseded decision of a job, kept for the audit trail.
- ``retro_runs`` / ``retro_matches``: retro-matching runs (progress, resumable cursor) and the
  (job, entry) pairs already re-decided — the unique pair keeps a re-run from deciding twice.
Self-contained on purpose: it does not import application code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = BIGINT_PK
TS = sa.DateTime(timezone=True)
JSON_DOC = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # plain ALTER TABLE on both backends, like 0003, 0005 and 0012
    op.add_column("bank_entries", sa.Column("source", sa.String(200), nullable=True))
    op.add_column("bank_entries", sa.Column("tags", JSON_DOC, nullable=True))
    op.add_column("bank_entries", sa.Column("imported_by", sa.String(100), nullable=True))
    op.add_column("bank_entries", sa.Column("imported_at", TS, nullable=True))
    op.add_column("bank_entries", sa.Column("changed_at", TS, nullable=True))
    op.create_index("ix_bank_entries_changed_at", "bank_entries", ["changed_at"])
    op.add_column("bank_entries", sa.Column("retro_at", TS, nullable=True))
    op.add_column(
        "decisions",
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
    )
    op.add_column("decisions", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("decisions", sa.Column("frame", sa.SmallInteger(), nullable=True))
    op.create_table(
        "decision_history",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("threshold_versions", JSON_DOC, nullable=False),
        sa.Column("matched_bank_entry_id", sa.BigInteger(), nullable=True),
        sa.Column("match_distance", sa.SmallInteger(), nullable=True),
        sa.Column("frame", sa.SmallInteger(), nullable=True),
        sa.Column("scenario", JSON_DOC, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("superseded_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_decision_history_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_decision_history"),
        sa.UniqueConstraint("job_id", "version", name="uq_decision_history_job_id_version"),
    )
    op.create_table(
        "retro_runs",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("entry_ids", JSON_DOC, nullable=False),
        sa.Column("trigger", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("cursor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("total", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("scanned", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("matched", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("redecided", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_retro_runs"),
    )
    op.create_index("ix_retro_runs_created_at", "retro_runs", ["created_at"])
    op.create_table(
        "retro_matches",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("entry_id", ID, nullable=False),
        sa.Column("distance", sa.SmallInteger(), nullable=False),
        sa.Column("old_tier", sa.String(16), nullable=False),
        sa.Column("new_tier", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_retro_matches_job_id_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["bank_entries.id"],
            name="fk_retro_matches_entry_id_bank_entries",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["retro_runs.id"],
            name="fk_retro_matches_run_id_retro_runs",
            ondelete="SET NULL",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name="pk_retro_matches"),
        sa.UniqueConstraint("job_id", "entry_id", name="uq_retro_matches_job_id_entry_id"),
    )
    op.create_index("ix_retro_matches_created_at", "retro_matches", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_retro_matches_created_at", table_name="retro_matches")
    op.drop_table("retro_matches")
    op.drop_index("ix_retro_runs_created_at", table_name="retro_runs")
    op.drop_table("retro_runs")
    op.drop_table("decision_history")
    op.drop_column("decisions", "frame")
    op.drop_column("decisions", "reason")
    op.drop_column("decisions", "version")
    op.drop_index("ix_bank_entries_changed_at", table_name="bank_entries")
    for column in ("retro_at", "changed_at", "imported_at", "imported_by", "tags", "source"):
        op.drop_column("bank_entries", column)
