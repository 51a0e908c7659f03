"""One tenant transaction with every repository, and the runner that retries lost races."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from google.protobuf.message import Message
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from services.chassis.db.database import Database
from services.chassis.events.outbox import stage
from services.payments.storage.failures import as_domain_error, is_transient
from services.payments.storage.idempotency import SqlIdempotency
from services.payments.storage.payments import SqlPayments
from services.payments.storage.routing import SqlRouting
from services.payments.storage.service_wide import SqlServiceWide
from services.payments.storage.sql import Sql

T = TypeVar("T")
log = logging.getLogger(__name__)
SOURCE = "//commerce-mesh/payments"


class UnitOfWork:
    """The repositories of one transaction of one tenant (or of none, for service-wide work)."""

    def __init__(self, session: AsyncSession, tenant: str | None) -> None:
        self._session = session
        sql = Sql(session)
        self.sql = sql
        self.service_wide = SqlServiceWide(sql)
        # Without a tenant, row-level security shows these repositories no rows at all.
        scope = tenant or ""
        self.payments = SqlPayments(sql, scope)
        self.idempotency = SqlIdempotency(sql, scope)
        self.routing = SqlRouting(sql, scope)

    async def publish(self, events: list[tuple[Message, str]]) -> None:
        """Stage events in the outbox, in this transaction (subjects in a stable order)."""
        for message, subject in sorted(events, key=lambda pair: pair[1]):
            await stage(self._session, message, subject=subject, source=SOURCE)


class TransactionRunner:
    """Runs each piece of work in its own READ COMMITTED transaction; lost races (deadlocks,
    serialization failures) roll back and run again, callers never see them."""

    def __init__(self, database: Database, *, attempts: int = 10) -> None:
        self._database = database
        self._attempts = attempts
        self.retries = 0

    async def run(self, tenant: str, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        return await self._retrying(tenant, work)

    async def run_service_wide(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        return await self._retrying(None, work)

    async def _retrying(self, tenant: str | None, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
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
                    if tenant is None:
                        async with self._database.transaction() as session:
                            return await work(UnitOfWork(session, None))
                    async with self._database.tenant_transaction(tenant) as session:
                        return await work(UnitOfWork(session, tenant))
        except (DBAPIError, psycopg.Error) as error:
            mapped = as_domain_error(error)
            if mapped is None:
                raise
            raise mapped from error
        raise AssertionError("unreachable: tenacity reraises the last failure")

    def _count_retry(self, _: object) -> None:
        self.retries += 1
        log.debug("retrying a transaction that lost a race")
