"""Alembic environment of the chassis test migrations: all of it is the shared helper."""

from services.chassis.db.migrations import run_env

run_env()
