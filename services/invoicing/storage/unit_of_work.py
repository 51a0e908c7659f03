"""One tenant transaction with every repository, and the runner that retries lost races."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from services.chassis.db.database import Database
from services.invoicing.domain.ports import TransactionRunner, UnitOfWork
from services.invoicing.storage.credit_notes import SqlCreditNotes
from services.invoicing.storage.failures import as_domain_error, is_transient
from services.invoicing.storage.idempotency import SqlIdempotencyKeys
from services.invoicing.storage.invoices import SqlInvoices
from services.invoicing.storage.ledger_queue import SqlLedgerQueue
from services.invoicing.storage.numbering import SqlCounters, SqlNumberingConfigs
from services.invoicing.storage.outbox import SqlOutbox

T = TypeVar("T")
log = logging.getLogger(__name__)

# Advisory-lock class for "a document for this source (order, refund) is being created".
_SOURCE_LOCK_CLASS = 0x494E56  # "INV"
_SERIALIZE = text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:key))")


class SqlUnitOfWork(UnitOfWork):
    """The repositories over one open tenant transaction (the runner's or a consumer's)."""

    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self.tenant = tenant
        self.session = session
        self.invoices = SqlInvoices(session, tenant)
        self.credit_notes = SqlCreditNotes(session, tenant)
        self.counters = SqlCounters(session, tenant)
        self.numbering = SqlNumberingConfigs(session, tenant)
        self.outbox = SqlOutbox(session)
        self.idempotency = SqlIdempotencyKeys(session, tenant)
        self.ledger = SqlLedgerQueue(session, tenant)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def serialize_on(self, key: str) -> None:
        await self.session.execute(_SERIALIZE, {"lock_class": _SOURCE_LOCK_CLASS, "key": key})


class SqlTransactionRunner(TransactionRunner):
    """Runs each use case in its own READ COMMITTED tenant transaction.

    Serialization failures, deadlocks and lost unique races roll the transaction back and run
    the use case again (with jittered backoff); callers never see them.
    """

    def __init__(self, database: Database, *, attempts: int = 20) -> None:
        self._database = database
        self._attempts = attempts
        self.retries = 0

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
                    async with self._database.tenant_transaction(tenant) as session:
                        return await work(SqlUnitOfWork(session, tenant))
        except (DBAPIError, psycopg.Error) as error:
            mapped = as_domain_error(error)
            if mapped is None:
                raise
            raise mapped from error
        raise AssertionError("unreachable: tenacity reraises the last failure")

    def _count_retry(self, _: object) -> None:
        self.retries += 1
        log.debug("retrying a transaction that lost a race")
