"""chunk summaries: the extremes of each full history chunk, for fast downsampling.

Existing chunks keep a NULL summary and are read whole when downsampled, as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 05:13:58.126392
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("history_chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("history_chunks", schema=None) as batch_op:
        batch_op.drop_column("summary")
