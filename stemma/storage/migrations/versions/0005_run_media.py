"""run media: an index of the media each run logged, and the blobs they keep alive.

New tables only: runs logged before have no media (run.log refused media objects).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:12:40.511208
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_run_media_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_media")),
        sa.UniqueConstraint("run_pk", "key", "step", name=op.f("uq_run_media_run_pk_key_step")),
    )
    op.create_table(
        "run_media_blobs",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["runs.id"],
            name=op.f("fk_run_media_blobs_run_pk_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_pk", "digest", name=op.f("pk_run_media_blobs")),
    )
    with op.batch_alter_table("run_media_blobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_media_blobs_digest"), ["digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_media_blobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_media_blobs_digest"))
    op.drop_table("run_media_blobs")
    op.drop_table("run_media")
