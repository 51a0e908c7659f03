"""ReconciliationSources over gRPC: payments via PaymentsClient, the ledger via LedgerClient.

Payments side (ListPayments, then ListRefunds for payments with refunds), for payments routed
to the PSP:
- a capture is a CAPTURE attempt that SUCCEEDED (or, for automatic capture, the AUTHORIZE
  attempt that did), dated by the attempt's end; its id is `<payment>/captures/<attempt>`;
- a refund is a SUCCEEDED refund, dated by its last update; its id is the refund's name.

Ledger side (ListJournalEntries over the period), an entry records a payment operation when:
- its metadata names it: `payment` (name or id), `operation` (capture / refund / chargeback)
  and, ideally, `payment_operation` (the id above) and `psp`; or
- it posts a payments authorization hold (a capture; the hold's metadata names the payment
  and, ideally, the psp);
- else, with metadata `payment` only, its posting on the PSP clearing account says the kind:
  a debit is a capture, a credit a refund.
Entries reconciliation itself posts (`operation` settlement / fee) and PSP fee entries are
not payment operations and are skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from clients.services import LedgerClient, PaymentsClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.payments.v1 import payments_service_pb2 as ppb
from commerce.payments.v1 import resources_pb2 as pres
from services.payments.domain.reconciliation import (
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    Period,
)

PAGE_SIZE = 500
CLEARING_ACCOUNT_PREFIX = "payments-psp-clearing-"
"""Account ids of PSP clearing, as services/payments/ledger.py opens them (ADR 0012)."""
FEES_ACCOUNT_PREFIX = "payments-psp-fees-"
NOT_OPERATIONS = frozenset({"settlement", "fee"})
"""Metadata `operation` values of entries that are not payment operations."""


def _moment(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def captures_of(payment: pres.Payment, period: Period) -> list[PaymentOperation]:
    """The captures payments recorded for `payment` within `period`."""
    automatic = payment.capture_method == pres.CAPTURE_METHOD_AUTOMATIC
    captures = []
    for attempt in payment.attempts:
        if attempt.outcome != pres.ATTEMPT_OUTCOME_SUCCEEDED:
            continue
        captured = attempt.operation == pres.PAYMENT_OPERATION_CAPTURE or (
            automatic and attempt.operation == pres.PAYMENT_OPERATION_AUTHORIZE
        )
        if not captured or not attempt.HasField("end_time"):
            continue
        moment = _moment(attempt.end_time)
        if not period.contains(moment):
            continue
        captures.append(
            PaymentOperation(
                operation_id=f"{payment.name}/captures/{attempt.attempt_number}",
                kind=OperationKind.CAPTURE,
                payment=payment.name,
                payment_reference=payment.psp_reference,
                amount_minor=attempt.amount.amount_minor,
                currency=attempt.amount.currency_code,
                occurred_at=moment,
            )
        )
    return captures


def refund_of(
    payment: pres.Payment, refund: pres.Refund, period: Period
) -> PaymentOperation | None:
    """The refund as an operation, when it SUCCEEDED within `period`."""
    if refund.state != pres.REFUND_STATE_SUCCEEDED:
        return None
    moment = _moment(refund.update_time)
    if not period.contains(moment):
        return None
    return PaymentOperation(
        operation_id=refund.name,
        kind=OperationKind.REFUND,
        payment=payment.name,
        refund=refund.name,
        payment_reference=payment.psp_reference,
        psp_reference=refund.psp_reference,
        amount_minor=refund.amount.amount_minor,
        currency=refund.amount.currency_code,
        occurred_at=moment,
    )


def _account_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _kind_from_clearing(entry: lres.JournalEntry) -> OperationKind | None:
    if any(_account_id(p.account).startswith(FEES_ACCOUNT_PREFIX) for p in entry.postings):
        return None
    clearing = [
        p.amount.amount_minor
        for p in entry.postings
        if _account_id(p.account).startswith(CLEARING_ACCOUNT_PREFIX)
    ]
    if len(clearing) != 1 or clearing[0] == 0:
        return None
    return OperationKind.CAPTURE if clearing[0] > 0 else OperationKind.REFUND


def ledger_entry_of(
    entry: lres.JournalEntry, tenant: str, hold_payment: str = ""
) -> LedgerEntry | None:
    """The entry as the record of a payment operation, or None when it records none.

    `hold_payment` is the payment named by the metadata of the hold this entry posts, if any.
    """
    metadata = dict(entry.metadata)
    operation = metadata.get("operation", "")
    if operation in NOT_OPERATIONS:
        return None
    payment = metadata.get("payment", "") or hold_payment
    if not payment:
        return None
    if "/" not in payment:
        payment = f"tenants/{tenant}/payments/{payment}"
    if operation:
        try:
            kind: OperationKind | None = OperationKind(operation)
        except ValueError:
            return None
    elif entry.hold:
        kind = OperationKind.CAPTURE
    else:
        kind = _kind_from_clearing(entry)
    if kind is None:
        return None
    positive = [p.amount for p in entry.postings if p.amount.amount_minor > 0]
    currencies = {m.currency_code for m in positive}
    if len(currencies) != 1:
        return None
    return LedgerEntry(
        entry=entry.name,
        operation_id=metadata.get("payment_operation", ""),
        kind=kind,
        payment=payment,
        refund=metadata.get("refund", ""),
        amount_minor=sum(m.amount_minor for m in positive),
        currency=currencies.pop(),
    )


PaymentsOfPsp = Callable[[str], Awaitable[Collection[str]]]
"""psp -> names of the tenant's payments routed to it (for entries that do not name a PSP)."""


class PaymentsOverGrpc:
    """Payments' side of one tenant through PaymentsClient (ListPayments, ListRefunds)."""

    def __init__(self, payments: PaymentsClient, tenant: str) -> None:
        self._payments = payments
        self._parent = f"tenants/{tenant}"

    async def _all_payments(self) -> AsyncIterator[pres.Payment]:
        token = ""
        while True:
            request = ppb.ListPaymentsRequest(
                parent=self._parent, page_size=PAGE_SIZE, page_token=token
            )
            page = await self._payments.call(self._payments.stub.ListPayments, request)
            for payment in page.payments:
                yield payment
            token = page.next_page_token
            if not token:
                return

    async def _refunds(self, payment: pres.Payment) -> AsyncIterator[pres.Refund]:
        token = ""
        while True:
            request = ppb.ListRefundsRequest(
                parent=payment.name, page_size=PAGE_SIZE, page_token=token
            )
            page = await self._payments.call(self._payments.stub.ListRefunds, request)
            for refund in page.refunds:
                yield refund
            token = page.next_page_token
            if not token:
                return

    async def payment_names(self, psp: str) -> set[str]:
        """Names of the tenant's payments routed to `psp` (a PaymentsOfPsp)."""
        return {p.name async for p in self._all_payments() if p.psp == psp}

    async def payment_operations(self, psp: str, period: Period) -> Sequence[PaymentOperation]:
        operations: list[PaymentOperation] = []
        async for payment in self._all_payments():
            if payment.psp != psp:
                continue
            operations += captures_of(payment, period)
            if payment.amount_refunded.amount_minor > 0:
                async for refund in self._refunds(payment):
                    operation = refund_of(payment, refund, period)
                    if operation is not None:
                        operations.append(operation)
        return operations


class LedgerOverGrpc:
    """The ledger's side of one tenant through LedgerClient (ListJournalEntries, GetHold).

    `payments_of_psp` is asked only when an entry names no PSP (neither in its metadata nor
    in its hold's): inside the payments service it can read storage instead of the RPC.
    """

    def __init__(self, ledger: LedgerClient, tenant: str, payments_of_psp: PaymentsOfPsp) -> None:
        self._ledger = ledger
        self._tenant = tenant
        self._parent = f"tenants/{tenant}"
        self._payments_of_psp = payments_of_psp
        self._holds: dict[str, dict[str, str]] = {}

    async def _hold_metadata(self, hold: str) -> dict[str, str]:
        """The metadata of the hold an entry posts (payment and, ideally, psp); cached."""
        if hold not in self._holds:
            reply = await self._ledger.call(
                self._ledger.stub.GetHold, lpb.GetHoldRequest(name=hold)
            )
            self._holds[hold] = dict(reply.hold.metadata)
        return self._holds[hold]

    async def _entries(self, period: Period) -> AsyncIterator[lres.JournalEntry]:
        start, end = Timestamp(), Timestamp()
        start.FromDatetime(period.start)
        end.FromDatetime(period.end)
        token = ""
        while True:
            request = lpb.ListJournalEntriesRequest(
                parent=self._parent,
                page_size=PAGE_SIZE,
                page_token=token,
                start_time=start,
                end_time=end,
            )
            page = await self._ledger.call(self._ledger.stub.ListJournalEntries, request)
            for entry in page.journal_entries:
                yield entry
            token = page.next_page_token
            if not token:
                return

    async def ledger_entries(self, psp: str, period: Period) -> Sequence[LedgerEntry]:
        """Entries of the period that record operations of payments routed to `psp`."""
        of_psp: Collection[str] | None = None  # read only when an entry names no PSP
        found: list[LedgerEntry] = []
        async for entry in self._entries(period):
            hold = await self._hold_metadata(entry.hold) if entry.hold else {}
            named_psp = entry.metadata.get("psp", "") or hold.get("psp", "")
            if named_psp and named_psp != psp:
                continue
            recorded = ledger_entry_of(entry, self._tenant, hold.get("payment", ""))
            if recorded is None:
                continue
            if not named_psp and of_psp is None:
                of_psp = await self._payments_of_psp(psp)
            if named_psp == psp or (of_psp is not None and recorded.payment in of_psp):
                found.append(recorded)
        return found


class GrpcReconciliationSources:
    """Both sides of one tenant over the mesh's typed clients (what the CLI uses)."""

    def __init__(self, payments: PaymentsClient, ledger: LedgerClient, tenant: str) -> None:
        self._payments = PaymentsOverGrpc(payments, tenant)
        self._ledger = LedgerOverGrpc(ledger, tenant, self._payments.payment_names)

    async def payment_operations(self, psp: str, period: Period) -> Sequence[PaymentOperation]:
        return await self._payments.payment_operations(psp, period)

    async def ledger_entries(self, psp: str, period: Period) -> Sequence[LedgerEntry]:
        return await self._ledger.ledger_entries(psp, period)
