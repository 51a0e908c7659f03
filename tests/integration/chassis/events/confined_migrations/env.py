"""Alembic environment of the events test migrations: all of it is the shared helper."""

from services.chassis.db.migrations import run_env
from services.chassis.events.outbox import metadata

run_env(metadata)
