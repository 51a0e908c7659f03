"""A service's database at start-up: provisioned and migrated from an admin URL (`make run`,
tests), migrated from an owner URL, or used as configured (the app role in production)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import psycopg
from pydantic import SecretStr
from sqlalchemy.engine import URL

from services.chassis.db.database import Database
from services.chassis.db.embedded import EmbeddedPostgres
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import provision_service_database
from services.chassis.db.settings import DatabaseSettings, libpq_conninfo

log = logging.getLogger(__name__)


async def is_admin(url: URL) -> bool:
    """Whether `url` logs in as a role that may create databases and roles."""
    async with await psycopg.AsyncConnection.connect(libpq_conninfo(url)) as conn:
        cursor = await conn.execute(
            "SELECT rolsuper OR (rolcreatedb AND rolcreaterole) FROM pg_roles"
            " WHERE rolname = current_user"
        )
        row = await cursor.fetchone()
    return bool(row and row[0])


async def service_url(
    service: str,
    configured: URL,
    *,
    owner: URL | None,
    migrations: Path,
    owner_password: SecretStr | None = None,
    app_password: SecretStr | None = None,
) -> URL:
    """The URL the service serves with (always its app role when this process provisions).

    From an admin URL: provision the service's database and roles, migrate as the owner, and
    return the app role's URL. Otherwise migrate as `owner` when given, and return `configured`.
    """
    if await is_admin(configured):
        admin = configured.set(database=configured.database or "postgres")
        provisioned = await provision_service_database(
            admin, service, owner_password=owner_password, app_password=app_password
        )
        await upgrade(provisioned.owner_url, migrations)
        return provisioned.app_url
    if owner is not None:
        await upgrade(owner, migrations)
    return configured


async def connect_service(
    service: str,
    db_settings: DatabaseSettings,
    *,
    migrations: Path,
    owner_password: SecretStr | None,
    app_password: SecretStr | None,
) -> tuple[Database, EmbeddedPostgres | None]:
    """The service's database as its app role (provisioned and migrated if given an admin
    URL), and the embedded PostgreSQL started for it when no URL is configured."""
    configured = db_settings.sqlalchemy_url()
    embedded: EmbeddedPostgres | None = None
    if configured is None:
        log.info("no database URL configured: starting the embedded PostgreSQL under .data/")
        embedded = EmbeddedPostgres()
        configured = await asyncio.to_thread(embedded.start)
    url = await service_url(
        service,
        configured,
        owner=db_settings.sqlalchemy_owner_url(),
        migrations=migrations,
        owner_password=owner_password,
        app_password=app_password,
    )
    return Database.from_settings(db_settings, url=url, application_name=service), embedded
