"""Uploads de-identified as they streamed in: ``files.deidentification``.

The mode and the counts of what was replaced, by type (never a value); null for a file stored
as it was sent. A job with ``deidentify`` accepts only files where it is set (decision 006).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("deidentification", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("deidentification")
