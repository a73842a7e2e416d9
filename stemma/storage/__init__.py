"""Persistence: SQL metadata (SQLAlchemy Core + Alembic) and, later, the blob store."""
