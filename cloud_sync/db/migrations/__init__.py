"""Alembic migrations of the cloud database (the seed's tables and the cloud's own)."""
