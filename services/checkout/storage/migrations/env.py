"""Alembic environment of the checkout database: all of it is the chassis helper."""

from services.chassis.db.migrations import run_env

run_env()
