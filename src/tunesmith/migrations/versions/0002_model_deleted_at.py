"""Fine-tuned models can be deleted: ``fine_tuning_jobs.model_deleted_at``.

The job keeps its ``fine_tuned_model`` name (as OpenAI's jobs do); this column says the model
behind it was deleted, so ``/v1/models`` no longer lists or serves it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs") as batch:
        batch.add_column(sa.Column("model_deleted_at", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs") as batch:
        batch.drop_column("model_deleted_at")
