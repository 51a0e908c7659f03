"""Runs a service's Alembic migrations as its owner role; each env.py just calls `run_env()`.

A service keeps `storage/migrations/` (env.py, versions/). Its env.py is:

    from services.chassis.db.migrations import run_env
    from services.<service>.storage.tables import metadata
    run_env(metadata)

`upgrade()` is the programmatic entry point (awaitable; hands its connection to env.py); the
`alembic` CLI also works, with `sqlalchemy.url` set to the owner URL (env.py then connects
through the async engine itself).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from alembic import command, context
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.chassis.db.settings import normalize_postgres_url

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy import MetaData
    from sqlalchemy.engine import URL

# The version table lives outside `public`, so the app role's default DML grants miss it.
VERSION_TABLE_SCHEMA = "alembic"
_CONNECTION_ATTRIBUTE = "connection"
# Serialises concurrent upgrades of one database (several workers starting at once).
_MIGRATION_LOCK_KEY = 0x636D5F6D696772  # "cm_migr"
_ALEMBIC_CONTEXT_LOCK = threading.Lock()


class MigrationRoleError(RuntimeError):
    """Migrations were started as a role that does not own the service database."""


def alembic_config(script_location: str | Path) -> Config:
    """An in-memory Alembic config (no alembic.ini) for a service's migrations folder."""
    config = Config()
    # ConfigParser interpolation would read '%' as a reference.
    config.set_main_option("script_location", str(script_location).replace("%", "%%"))
    return config


async def upgrade(
    owner_url: str | URL, script_location: str | Path, revision: str = "head"
) -> None:
    """Upgrade the database at `owner_url` to `revision`, in one transaction, as its owner.

    Runs in a worker thread, so the event loop keeps serving while migrations run.
    """
    await asyncio.to_thread(upgrade_blocking, owner_url, script_location, revision)


def upgrade_blocking(
    owner_url: str | URL, script_location: str | Path, revision: str = "head"
) -> None:
    """`upgrade` for synchronous callers (scripts, the CLI-less container entrypoint)."""
    config = alembic_config(script_location)
    engine = create_engine(normalize_postgres_url(owner_url), poolclass=NullPool)
    try:
        # Alembic's `context` is one global per process: two upgrades at once would clobber
        # each other's environment. Other processes are kept out by an advisory lock.
        with _ALEMBIC_CONTEXT_LOCK, engine.begin() as connection:
            config.attributes[_CONNECTION_ATTRIBUTE] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def run_env(target_metadata: MetaData | None = None) -> None:
    """The whole body of a service's env.py: offline SQL, a shared connection, or the CLI."""
    if context.is_offline_mode():
        _run_offline(target_metadata)
        return
    connection = context.config.attributes.get(_CONNECTION_ATTRIBUTE)
    if isinstance(connection, Connection):
        _run_online(connection, target_metadata)
    else:
        asyncio.run(_run_from_cli(_configured_url(), target_metadata))


def _configured_url() -> URL:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise MigrationRoleError("set sqlalchemy.url to the service's owner URL")
    return normalize_postgres_url(url)


def _run_offline(target_metadata: MetaData | None) -> None:
    context.configure(
        url=_configured_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        version_table_schema=VERSION_TABLE_SCHEMA,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_cli(url: URL, target_metadata: MetaData | None) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_online, target_metadata)
    finally:
        await engine.dispose()


def _run_online(connection: Connection, target_metadata: MetaData | None) -> None:
    _require_database_owner(connection)
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_TABLE_SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=VERSION_TABLE_SCHEMA,
    )
    with context.begin_transaction():
        context.run_migrations()


def _require_database_owner(connection: Connection) -> None:
    # Objects belong to whoever creates them; only tables the owner creates get the app
    # role's default grants, so a superuser or app-role run would leave the service broken.
    row = connection.execute(
        text(
            "SELECT current_user, pg_get_userbyid(datdba) FROM pg_database "
            "WHERE datname = current_database()"
        )
    ).one()
    if row[0] != row[1]:
        raise MigrationRoleError(
            f"migrations must run as the database owner {row[1]!r}, not {row[0]!r}"
        )
