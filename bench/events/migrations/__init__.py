"""Alembic migrations of the benchmark database."""
