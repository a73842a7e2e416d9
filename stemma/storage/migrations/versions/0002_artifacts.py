"""artifacts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:31:13.178326
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("condemned", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_blobs")),
    )
    op.create_table(
        "artifact_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_artifact_collections_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_collections")),
        sa.UniqueConstraint(
            "project_id", "name", name=op.f("uq_artifact_collections_project_id_name")
        ),
    )
    op.create_table(
        "project_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column(
            "protected_aliases",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_settings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_settings")),
    )
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("collection_name", sa.String(length=128), nullable=True),
        sa.Column("keep_last", sa.Integer(), nullable=True),
        sa.Column("delete_unaliased_older_than", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_retention_policies_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policies")),
        sa.UniqueConstraint(
            "project_id",
            "collection_name",
            name=op.f("uq_retention_policies_project_id_collection_name"),
        ),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["artifact_collections.id"],
            name=op.f("fk_alias_events_collection_id_artifact_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_events")),
    )
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alias_events_collection_id_alias_at"),
            ["collection_id", "alias", "at"],
            unique=False,
        )

    op.create_table(
        "artifact_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("version_index", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=True),
        sa.Column("manifest_base_id", sa.Integer(), nullable=True),
        sa.Column("manifest_depth", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ttl_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_pk", sa.Integer(), nullable=True),
        sa.Column(
            "creator",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["artifact_collections.id"],
            name=op.f("fk_artifact_versions_collection_id_artifact_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["manifest_base_id"],
            ["artifact_versions.id"],
            name=op.f("fk_artifact_versions_manifest_base_id_artifact_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["runs.id"],
            name=op.f("fk_artifact_versions_run_pk_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_versions")),
        sa.UniqueConstraint(
            "collection_id",
            "version_index",
            name=op.f("uq_artifact_versions_collection_id_version_index"),
        ),
    )
    with op.batch_alter_table("artifact_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_artifact_versions_collection_id_digest"),
            ["collection_id", "digest"],
            unique=False,
        )

    op.create_table(
        "artifact_aliases",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["artifact_collections.id"],
            name=op.f("fk_artifact_aliases_collection_id_artifact_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["artifact_versions.id"],
            name=op.f("fk_artifact_aliases_version_id_artifact_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "alias", name=op.f("pk_artifact_aliases")),
    )
    op.create_table(
        "artifact_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"], ["runs.id"], name=op.f("fk_artifact_usage_run_pk_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["artifact_versions.id"],
            name=op.f("fk_artifact_usage_version_id_artifact_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_usage")),
        sa.UniqueConstraint(
            "run_pk",
            "version_id",
            "direction",
            name=op.f("uq_artifact_usage_run_pk_version_id_direction"),
        ),
    )
    with op.batch_alter_table("artifact_usage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_artifact_usage_version_id_direction"),
            ["version_id", "direction"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("artifact_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_usage_version_id_direction"))

    op.drop_table("artifact_usage")
    op.drop_table("artifact_aliases")
    with op.batch_alter_table("artifact_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_versions_collection_id_digest"))

    op.drop_table("artifact_versions")
    with op.batch_alter_table("alias_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alias_events_collection_id_alias_at"))

    op.drop_table("alias_events")
    op.drop_table("retention_policies")
    op.drop_table("project_settings")
    op.drop_table("artifact_collections")
    op.drop_table("blobs")
