"""Creates a service's database with an owner role (migrations) and an app role (DML only).

Idempotent: running it again converges roles, ownership and grants, and sets the passwords
it returns. Passwords come from the caller (configuration) or are generated; when several
processes provision the same service, pass stable passwords, since each call sets them.
Needs PostgreSQL 15+ (the public schema belongs to the database owner).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from pydantic import SecretStr

from services.chassis.db.settings import (
    libpq_conninfo,
    normalize_postgres_url,
    validate_service_name,
)

if TYPE_CHECKING:
    from psycopg.rows import TupleRow
    from sqlalchemy.engine import URL

_MIN_SERVER_VERSION = 150000
# One provisioning at a time per cluster: CREATE ROLE / CREATE DATABASE have no IF NOT EXISTS.
_PROVISION_LOCK_KEY = 0x636D5F70726F76  # "cm_prov"

# The owner runs migrations and owns every object; it never needs to skip RLS.
_OWNER_ATTRIBUTES = sql.SQL(
    "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
)
# The app role only reads and writes rows, always under the tenant policies.
_APP_ATTRIBUTES = sql.SQL(
    "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
)
DML_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
# The events relay (and the events operator CLI) reads every tenant's outbox, and nothing else:
# its table grants and policies come from `services.chassis.events.outbox.confine_event_tables`.
_RELAY_ATTRIBUTES = _APP_ATTRIBUTES


class ProvisioningError(RuntimeError):
    """The server cannot host a service database as designed (e.g. too old)."""


@dataclass(frozen=True, slots=True)
class ServiceDatabase:
    """Where a provisioned service lives; the URLs carry passwords (str() masks them)."""

    name: str
    owner_role: str
    app_role: str
    owner_url: URL
    app_url: URL


def owner_role(service: str) -> str:
    return f"{validate_service_name(service)}_owner"


def app_role(service: str) -> str:
    return f"{validate_service_name(service)}_app"


def relay_role(service: str) -> str:
    return f"{validate_service_name(service)}_relay"


@dataclass(frozen=True, slots=True)
class RelayRole:
    """The events relay's role in a service database; the URL carries its password."""

    role: str
    url: URL


async def provision_relay_role(
    admin_url: str | URL, service: str, *, password: SecretStr | None = None
) -> RelayRole:
    """Create or converge `<service>_relay`: may log in to database `service`, nothing more.

    Run after `provision_service_database` and before the migration that calls
    `confine_event_tables()`, which grants it the outbox and inbox (ADR 0017). Like the app
    role, it is no superuser and has no BYPASSRLS: it sees every tenant's outbox rows through
    its own policies, and no business table at all (no grants).
    """
    admin = normalize_postgres_url(admin_url)
    role = relay_role(service)
    secret = _password(password)
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(admin), autocommit=True
    ) as conn:
        await _require_server_version(conn)
        await conn.execute("SELECT pg_advisory_lock(%s)", [_PROVISION_LOCK_KEY])
        try:
            cursor = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [service])
            if await cursor.fetchone() is None:
                raise ProvisioningError(f"database {service} does not exist: provision it first")
            await _ensure_role(conn, role, _RELAY_ATTRIBUTES, secret)
            await conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(service), sql.Identifier(role)
                )
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [_PROVISION_LOCK_KEY])
    return RelayRole(role, admin.set(username=role, password=secret, database=service))


async def drop_relay_role(admin_url: str | URL, service: str) -> None:
    """Drop `<service>_relay` (its grants and policy memberships in the database go first)."""
    admin = normalize_postgres_url(admin_url)
    role = relay_role(service)
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(admin), autocommit=True
    ) as conn:
        cursor = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if await cursor.fetchone() is None:
            return
        cursor = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [service])
        exists = await cursor.fetchone() is not None
    if exists:
        async with await psycopg.AsyncConnection.connect(
            libpq_conninfo(admin.set(database=service)), autocommit=True
        ) as conn:
            await conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(admin), autocommit=True
    ) as conn:
        if exists:
            await conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
                    sql.Identifier(service), sql.Identifier(role)
                )
            )
        await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _password(given: SecretStr | None) -> str:
    return given.get_secret_value() if given is not None else secrets.token_urlsafe(32)


async def provision_service_database(
    admin_url: str | URL,
    service: str,
    *,
    owner_password: SecretStr | None = None,
    app_password: SecretStr | None = None,
) -> ServiceDatabase:
    """Create or converge database `service`, roles `<service>_owner` and `<service>_app`."""
    admin = normalize_postgres_url(admin_url)
    owner, app = owner_role(service), app_role(service)
    passwords = {owner: _password(owner_password), app: _password(app_password)}
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(admin), autocommit=True
    ) as conn:
        await _require_server_version(conn)
        await conn.execute("SELECT pg_advisory_lock(%s)", [_PROVISION_LOCK_KEY])
        try:
            await _ensure_role(conn, owner, _OWNER_ATTRIBUTES, passwords[owner])
            await _ensure_role(conn, app, _APP_ATTRIBUTES, passwords[app])
            await _ensure_database(conn, service, owner=owner, app=app)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", [_PROVISION_LOCK_KEY])
    owner_url = admin.set(username=owner, password=passwords[owner], database=service)
    app_url = admin.set(username=app, password=passwords[app], database=service)
    # Grants inside the database are made by the owner itself: the admin needs no rights there.
    await _grant_app_dml(owner_url, app)
    return ServiceDatabase(service, owner, app, owner_url, app_url)


async def drop_service_database(admin_url: str | URL, service: str) -> None:
    """Drop the service database (disconnecting its sessions) and both roles. For tests."""
    owner, app = owner_role(service), app_role(service)
    async with await psycopg.AsyncConnection.connect(
        libpq_conninfo(admin_url), autocommit=True
    ) as conn:
        await conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(service))
        )
        for role in (app, owner):
            await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


async def _require_server_version(conn: psycopg.AsyncConnection[TupleRow]) -> None:
    version = conn.info.server_version
    if version < _MIN_SERVER_VERSION:
        raise ProvisioningError(f"PostgreSQL 15 or newer is required, server is {version}")


async def _ensure_role(
    conn: psycopg.AsyncConnection[TupleRow],
    role: str,
    attributes: sql.SQL,
    password: str,
) -> None:
    cursor = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    verb = sql.SQL("ALTER ROLE") if await cursor.fetchone() else sql.SQL("CREATE ROLE")
    # Hashed here (as psql's \password does), so the plain password never reaches the server
    # or its statement log.
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    await conn.execute(
        sql.SQL("{} {} WITH {} PASSWORD {}").format(
            verb, sql.Identifier(role), attributes, sql.Literal(verifier.decode())
        )
    )


async def _ensure_database(
    conn: psycopg.AsyncConnection[TupleRow], database: str, *, owner: str, app: str
) -> None:
    db, owner_id, app_id = sql.Identifier(database), sql.Identifier(owner), sql.Identifier(app)
    cursor = await conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    row = await cursor.fetchone()
    if row is None or not row[0]:
        # A non-superuser admin (Cloud SQL's) may only give away what it can SET ROLE to.
        await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(owner_id))
    cursor = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
    if await cursor.fetchone() is None:
        await conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                db, owner_id
            )
        )
    else:
        await conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, owner_id))
    # Other services' roles may not even connect; the app role may connect, nothing more.
    await conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
    await conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, app_id))


async def _grant_app_dml(owner_url: URL, app: str) -> None:
    app_id = sql.Identifier(app)
    dml = sql.SQL(", ").join(sql.SQL(p) for p in DML_PRIVILEGES)
    statements: list[sql.SQL | sql.Composed] = [
        sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app_id),
        # Default privileges cover tables the owner creates later (i.e. in migrations).
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {} ON TABLES TO {}").format(
            dml, app_id
        ),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {}").format(
            app_id
        ),
        sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(dml, app_id),
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(app_id),
    ]
    async with await psycopg.AsyncConnection.connect(libpq_conninfo(owner_url)) as conn:
        for statement in statements:
            await conn.execute(statement)
        await conn.commit()
