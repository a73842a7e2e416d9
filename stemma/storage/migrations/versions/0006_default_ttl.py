"""retention policies: a default TTL for versions logged without one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 07:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retention_policies") as batch:
        batch.add_column(sa.Column("default_ttl_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retention_policies") as batch:
        batch.drop_column("default_ttl_seconds")
