"""A service's async engine and its transactions; a tenant transaction sets the RLS tenant."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.chassis.db.rls import TENANT_SETTING
from services.chassis.db.settings import normalize_postgres_url
from services.chassis.db.tracing import instrument_engine

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.engine import URL

    from services.chassis.db.settings import DatabaseSettings

TENANT_ID_PATTERN = re.compile(r"[a-z][a-z0-9-]{2,62}")

# is_local=true: the setting dies with the transaction, so a pooled connection never carries
# one tenant's id into the next checkout.
_SET_TENANT = text("SELECT set_config(:setting, :tenant_id, true)").bindparams(
    setting=TENANT_SETTING
)


# The same, for a psycopg connection (no SQLAlchemy statement).
_SET_TENANT_SQL = "SELECT set_config(%s, %s, true)"


class InvalidTenantIdError(ValueError):
    """A tenant id outside TENANT_ID_PATTERN; it is refused before any SQL runs."""


class DatabaseNotConfiguredError(RuntimeError):
    """No database URL was given or configured (start the embedded PostgreSQL instead)."""


def validate_tenant_id(tenant_id: str) -> str:
    """Return `tenant_id` if it matches TENANT_ID_PATTERN in full, else raise."""
    # fullmatch, not match with `$`: `$` would also accept a trailing newline.
    if not isinstance(tenant_id, str) or TENANT_ID_PATTERN.fullmatch(tenant_id) is None:
        raise InvalidTenantIdError(
            f"invalid tenant id {str(tenant_id)[:80]!r}: expected 3-63 characters of a-z, 0-9 "
            "and '-', starting with a letter"
        )
    return tenant_id


class Database:
    """Owns an AsyncEngine; hands out sessions that live exactly as long as one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def connect(
        cls,
        url: str | URL,
        *,
        pool_size: int = 5,
        max_overflow: int = 5,
        statement_timeout_ms: int = 30_000,
        application_name: str = "commerce-mesh",
    ) -> Database:
        """Build the engine (lazily connecting: no connection is opened here)."""
        engine = create_async_engine(
            normalize_postgres_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            connect_args={
                "application_name": application_name,
                "options": f"-c statement_timeout={int(statement_timeout_ms)}",
            },
        )
        instrument_engine(engine)  # a client span per statement, under the active RPC span
        return cls(engine)

    @classmethod
    def from_settings(
        cls,
        settings: DatabaseSettings,
        *,
        url: str | URL | None = None,
        application_name: str = "commerce-mesh",
    ) -> Database:
        """Connect with the pool and timeout settings; `url` (e.g. embedded) wins over settings."""
        target = url if url is not None else settings.sqlalchemy_url()
        if target is None:
            raise DatabaseNotConfiguredError("no database URL configured")
        return cls.connect(
            target,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            statement_timeout_ms=settings.statement_timeout_ms,
            application_name=application_name,
        )

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def tenant_transaction(self, tenant_id: str) -> AsyncIterator[AsyncSession]:
        """One transaction that sees and writes only `tenant_id`'s rows.

        Commits when the block ends normally, rolls back if it raises. Do not commit inside
        the block: the next statement would run in a new transaction with no tenant set
        (and so would see nothing).
        """
        tenant = validate_tenant_id(tenant_id)
        async with self._sessions() as session, session.begin():
            await session.execute(_SET_TENANT, {"tenant_id": tenant})
            yield session

    @asynccontextmanager
    async def pipelined_tenant_transaction(
        self, tenant_id: str
    ) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], psycopg.AsyncPipeline]]:
        """`tenant_transaction` on the pooled psycopg connection itself, in pipeline mode.

        For hot paths that skip SQLAlchemy's execution layer (the ledger, ADR 0019): statements
        whose rows are not read are only queued and travel with the next one; the tenant
        setting is queued first, so BEGIN, the setting and the first query share a round
        trip. The caller runs statements on the connection (and `pipeline.sync()` to read a
        result); commits when the block ends normally, rolls back if it raises.
        """
        tenant = validate_tenant_id(tenant_id)
        async with self._engine.connect() as connection:  # checked out (and pinged) by the pool
            raw = await connection.get_raw_connection()
            driver = cast("psycopg.AsyncConnection[Any]", raw.driver_connection)
            try:
                async with driver.pipeline() as pipeline, driver.transaction():
                    await driver.execute(_SET_TENANT_SQL, (TENANT_SETTING, tenant))
                    yield driver, pipeline
            except Exception:
                raise  # psycopg rolled the transaction back: the connection is reusable
            except BaseException:
                # Cancelled (a caller's deadline) anywhere in the transaction, even while
                # committing or rolling back, the connection may still have statements or
                # results in flight (libpq's status cannot tell, in pipeline mode): close it
                # rather than hand it to the next caller.
                await connection.invalidate()
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction with no tenant: for system work on tables without tenant isolation."""
        async with self._sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection; call once at shutdown."""
        await self._engine.dispose()
