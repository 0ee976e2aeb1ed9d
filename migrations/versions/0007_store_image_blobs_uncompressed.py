"""store image_blobs.data out of line without compression (PostgreSQL)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

Uploads are JPEG, PNG or WebP: already compressed. PostgreSQL's default storage for bytea
(EXTENDED) still runs pglz over every value over ~2 kB before giving up — on 100 seeded photo
JPEGs and PNGs it saved 0 bytes, and it cost 1.3–1.5 ms of server CPU per 69 kB photo JPEG
(3.6 ms per 166 kB noisy one) against 0.33 ms (0.7 ms) with EXTERNAL: out of line, uncompressed.
Applies to rows written from now on; SQLite has no such setting.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE image_blobs ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE image_blobs ALTER COLUMN data SET STORAGE EXTENDED")
