"""What the use cases need from storage: repositories and a unit of work (abstract)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from services.invoicing.domain.credit_notes import CreditNote
from services.invoicing.domain.events import InvoicingEvent
from services.invoicing.domain.invoices import Invoice, InvoiceSource, InvoiceState
from services.invoicing.domain.journals import Journal
from services.invoicing.domain.numbering import NumberingConfig
from services.invoicing.domain.tie_out import CapturedPayment, LedgerPosting, RefundRecord

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class InvoiceFilter:
    """ListInvoices' filter terms (all must hold)."""

    state: InvoiceState | None = None
    source: InvoiceSource | None = None
    customer_id: str | None = None
    order: str | None = None
    number: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a newest-first page continues: strictly older than (create_time, id)."""

    create_time: datetime
    resource_id: str


class Invoices(abc.ABC):
    @abc.abstractmethod
    async def add(self, invoice: Invoice) -> None: ...

    @abc.abstractmethod
    async def get(self, invoice_id: str, *, lock: bool = False) -> Invoice | None: ...

    @abc.abstractmethod
    async def save(self, invoice: Invoice) -> None:
        """Store the invoice (its payments too); its version must have moved by one."""

    @abc.abstractmethod
    async def by_order(self, order: str) -> Invoice | None: ...

    @abc.abstractmethod
    async def by_payment(self, payment: str) -> Invoice | None: ...

    @abc.abstractmethod
    async def number_taken(self, number: str) -> bool: ...

    @abc.abstractmethod
    async def page(
        self, where: InvoiceFilter, after: Cursor | None, size: int
    ) -> list[Invoice]: ...

    @abc.abstractmethod
    async def issued_between(self, start: datetime, end: datetime) -> list[Invoice]: ...

    @abc.abstractmethod
    async def recording_payments(self, payments: Sequence[str]) -> list[Invoice]: ...


class CreditNotes(abc.ABC):
    @abc.abstractmethod
    async def add(self, note: CreditNote) -> None: ...

    @abc.abstractmethod
    async def get(
        self, invoice_id: str, credit_note_id: str, *, lock: bool = False
    ) -> CreditNote | None: ...

    @abc.abstractmethod
    async def save(self, note: CreditNote) -> None: ...

    @abc.abstractmethod
    async def of_invoice(self, invoice_id: str) -> list[CreditNote]: ...

    @abc.abstractmethod
    async def by_refund(self, refund: str) -> CreditNote | None: ...

    @abc.abstractmethod
    async def number_taken(self, number: str) -> bool: ...

    @abc.abstractmethod
    async def page(
        self, invoice_id: str | None, after: Cursor | None, size: int
    ) -> list[CreditNote]: ...

    @abc.abstractmethod
    async def issued_between(self, start: datetime, end: datetime) -> list[CreditNote]: ...

    @abc.abstractmethod
    async def recording_refunds(self, refunds: Sequence[str]) -> list[CreditNote]: ...


class Counters(abc.ABC):
    """Gapless counters: taking a number locks the counter until the transaction ends."""

    @abc.abstractmethod
    async def take(self, series: str, start: int) -> int:
        """The next sequence of `series` (`start` for a new one), reserved by this transaction."""

    @abc.abstractmethod
    async def peek(self, series: str) -> int | None:
        """The sequence the next document of `series` would get; None for a new series."""


class NumberingConfigs(abc.ABC):
    @abc.abstractmethod
    async def get(self) -> NumberingConfig: ...

    @abc.abstractmethod
    async def save(self, config: NumberingConfig) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """What the first request with an idempotency key was and answered."""

    method: str
    fingerprint: bytes
    response: bytes


class IdempotencyKeys(abc.ABC):
    @abc.abstractmethod
    async def claim(
        self, request_id: str, method: str, fingerprint: bytes
    ) -> StoredResponse | None:
        """None when this transaction owns the key now; else what the first request stored."""

    @abc.abstractmethod
    async def complete(self, request_id: str, response: bytes) -> None: ...


class Outbox(abc.ABC):
    @abc.abstractmethod
    async def stage(self, events: Sequence[InvoicingEvent]) -> None: ...


class LedgerQueue(abc.ABC):
    """Journals owed to the ledger, recorded in the change's transaction; a worker posts them."""

    @abc.abstractmethod
    async def queue(self, journals: Sequence[Journal]) -> None:
        """Record the journals (one already recorded under the same id is left as it is)."""


class UnitOfWork(abc.ABC):
    """One tenant transaction; leaving it without an error commits."""

    tenant: str
    invoices: Invoices
    credit_notes: CreditNotes
    counters: Counters
    numbering: NumberingConfigs
    outbox: Outbox
    idempotency: IdempotencyKeys
    ledger: LedgerQueue

    @abc.abstractmethod
    def now(self) -> datetime: ...

    @abc.abstractmethod
    async def serialize_on(self, key: str) -> None:
        """Hold a transaction lock on `key` (e.g. an order) until commit."""


class TransactionRunner(abc.ABC):
    @abc.abstractmethod
    async def run(self, tenant: str, work: Callable[[UnitOfWork], Awaitable[T]]) -> T: ...


class PaymentsView(abc.ABC):
    """Payments' records for the tie-out (an adapter over the payments service)."""

    @abc.abstractmethod
    async def captured_between(self, start: datetime, end: datetime) -> list[CapturedPayment]:
        """Payments with a capture in [start, end)."""

    @abc.abstractmethod
    async def payments(self, names: Sequence[str]) -> list[CapturedPayment]:
        """The named payments that have a capture (any time); unknown names are left out."""

    @abc.abstractmethod
    async def refunds_between(self, start: datetime, end: datetime) -> list[RefundRecord]:
        """Succeeded refunds made in [start, end)."""

    @abc.abstractmethod
    async def refunds(self, names: Sequence[str]) -> list[RefundRecord]:
        """The named succeeded refunds (any time); unknown names are left out."""


class LedgerView(abc.ABC):
    """The ledger's revenue and tax postings for the tie-out."""

    @abc.abstractmethod
    async def postings_between(self, start: datetime, end: datetime) -> list[LedgerPosting]: ...
