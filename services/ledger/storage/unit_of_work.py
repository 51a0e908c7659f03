"""One tenant transaction with every repository, and the runner that retries lost races."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from services.chassis.db.database import Database
from services.ledger.domain.ports import TransactionRunner, UnitOfWork
from services.ledger.storage.accounts import SqlAccounts
from services.ledger.storage.chain import SqlChain
from services.ledger.storage.failures import as_domain_error, is_transient
from services.ledger.storage.holds import SqlHolds
from services.ledger.storage.idempotency import SqlIdempotencyKeys
from services.ledger.storage.journal import SqlJournal
from services.ledger.storage.outbox import SqlOutbox
from services.ledger.storage.reports import SqlReports
from services.ledger.storage.sql import Sql, query

T = TypeVar("T")
log = logging.getLogger(__name__)

_REGISTER_TENANT = query(
    "INSERT INTO tenants (tenant_id) VALUES (:tenant) ON CONFLICT (tenant_id) DO NOTHING"
)
_TENANTS = text("SELECT tenant_id FROM tenants ORDER BY tenant_id")


class SqlUnitOfWork(UnitOfWork):
    def __init__(self, sql: Sql, tenant: str) -> None:
        self.tenant = tenant
        self._sql = sql
        self.accounts = SqlAccounts(sql, tenant)
        self.journal = SqlJournal(sql, tenant)
        self.chain = SqlChain(sql, tenant)
        self.holds = SqlHolds(sql, tenant)
        self.idempotency = SqlIdempotencyKeys(sql, tenant)
        self.reports = SqlReports(sql, tenant)
        self.outbox = SqlOutbox(sql)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def register_tenant(self) -> None:
        await self._sql.execute(_REGISTER_TENANT, {"tenant": self.tenant})


class SqlTransactionRunner(TransactionRunner):
    """Runs each use case in its own READ COMMITTED tenant transaction.

    Serialization failures and deadlocks roll the transaction back and run the use case
    again (up to `attempts` times, with jittered backoff); callers never see them.

    The transaction is the chassis `tenant_transaction`'s (a pooled connection, BEGIN, the
    RLS tenant setting local to the transaction, COMMIT or ROLLBACK) run on the psycopg
    connection in pipeline mode (ADR 0019): BEGIN and the tenant setting travel with the
    first query, the outbox statement with COMMIT.
    """

    def __init__(self, database: Database, *, attempts: int = 20) -> None:
        self._database = database
        self._attempts = attempts
        self.retries = 0  # lost races retried so far (for tests and metrics)

    async def run(self, tenant: str, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=0.002, max=0.2),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._transaction(tenant) as sql:
                        return await work(SqlUnitOfWork(sql, tenant))
        except (DBAPIError, psycopg.Error) as error:
            mapped = as_domain_error(error)
            if mapped is None:
                raise
            raise mapped from error
        raise AssertionError("unreachable: tenacity reraises the last failure")

    @asynccontextmanager
    async def _transaction(self, tenant: str) -> AsyncIterator[Sql]:
        """One pipelined tenant transaction (the chassis'), its statements through `Sql`. A
        cancelled one closes its connection; the request_id makes a retry safe."""
        async with self._database.pipelined_tenant_transaction(tenant) as (driver, pipeline):
            yield Sql(driver, self._database.engine, pipeline)

    async def tenants(self) -> list[str]:
        async with self._database.transaction() as session:
            return list((await session.execute(_TENANTS)).scalars())

    def _count_retry(self, _: object) -> None:
        self.retries += 1
        log.debug("retrying a transaction that lost a race")
