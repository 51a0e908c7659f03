"""gRPC adapters of the tie-out's views: payments (captures, refunds) and the ledger (revenue
and tax postings). Their failures become UNAVAILABLE DOWNSTREAM_UNAVAILABLE, never hidden."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from clients.errors import CommerceError, NotFound
from clients.services import LedgerClient, PaymentsClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.payments.v1 import payments_service_pb2 as ppb
from commerce.payments.v1 import resources_pb2 as pres
from services.invoicing import messages
from services.invoicing.domain import errors
from services.invoicing.domain.ports import LedgerView, PaymentsView
from services.invoicing.domain.tie_out import CapturedPayment, LedgerPosting, RefundRecord

_PAGE = 500
Metadata = Sequence[tuple[str, str]]


def _captured(
    payment: pres.Payment, start: datetime | None, end: datetime | None
) -> CapturedPayment | None:
    """The payment's successful captures (those in [start, end) when bounded), summed."""
    captures = [
        a
        for a in payment.attempts
        if a.operation == pres.PAYMENT_OPERATION_CAPTURE
        and a.outcome == pres.ATTEMPT_OUTCOME_SUCCEEDED
        and a.HasField("end_time")
    ]
    if start is not None and end is not None:
        captures = [a for a in captures if start <= messages.when(a.end_time) < end]
    if not captures:
        return None
    return CapturedPayment(
        payment=payment.name,
        order=payment.order,
        currency_code=payment.amount.currency_code,
        amount=sum(a.amount.amount_minor for a in captures),
        capture_time=min(messages.when(a.end_time) for a in captures),
    )


class GrpcPaymentsView(PaymentsView):
    def __init__(self, client: PaymentsClient, tenant: str, metadata: Metadata = ()) -> None:
        self._client = client
        self._parent = f"tenants/{tenant}"
        self._metadata = tuple(metadata)

    async def _all_payments(self) -> AsyncIterator[pres.Payment]:
        token = ""
        while True:
            try:
                reply = await self._client.call(
                    self._client.stub.ListPayments,
                    ppb.ListPaymentsRequest(parent=self._parent, page_size=_PAGE, page_token=token),
                    metadata=self._metadata,
                )
            except CommerceError as error:
                raise errors.downstream_unavailable("payments") from error
            for payment in reply.payments:
                yield payment
            token = reply.next_page_token
            if not token:
                return

    async def captured_between(self, start: datetime, end: datetime) -> list[CapturedPayment]:
        found = [_captured(p, start, end) async for p in self._all_payments()]
        return [c for c in found if c is not None]

    async def payments(self, names: Sequence[str]) -> list[CapturedPayment]:
        out = []
        for name in names:
            try:
                reply = await self._client.call(
                    self._client.stub.GetPayment,
                    ppb.GetPaymentRequest(name=name),
                    metadata=self._metadata,
                )
            except NotFound:
                continue
            except CommerceError as error:
                raise errors.downstream_unavailable("payments") from error
            captured = _captured(reply.payment, None, None)
            if captured is not None:
                out.append(captured)
        return out

    async def _refunds_of(self, payment: str) -> list[pres.Refund]:
        try:
            reply = await self._client.call(
                self._client.stub.ListRefunds,
                ppb.ListRefundsRequest(parent=payment, page_size=_PAGE),
                metadata=self._metadata,
            )
        except CommerceError as error:
            raise errors.downstream_unavailable("payments") from error
        return [r for r in reply.refunds if r.state == pres.REFUND_STATE_SUCCEEDED]

    async def refunds_between(self, start: datetime, end: datetime) -> list[RefundRecord]:
        out = []
        async for payment in self._all_payments():
            if payment.amount_refunded.amount_minor <= 0:
                continue
            for refund in await self._refunds_of(payment.name):
                record = _refund(payment.name, refund)
                if start <= record.refund_time < end:
                    out.append(record)
        return out

    async def refunds(self, names: Sequence[str]) -> list[RefundRecord]:
        out = []
        for name in names:
            try:
                reply = await self._client.call(
                    self._client.stub.GetRefund,
                    ppb.GetRefundRequest(name=name),
                    metadata=self._metadata,
                )
            except NotFound:
                continue
            except CommerceError as error:
                raise errors.downstream_unavailable("payments") from error
            if reply.refund.state == pres.REFUND_STATE_SUCCEEDED:
                out.append(_refund(name.split("/refunds/")[0], reply.refund))
        return out


def _refund(payment: str, refund: pres.Refund) -> RefundRecord:
    return RefundRecord(
        refund=refund.name,
        payment=payment,
        currency_code=refund.amount.currency_code,
        amount=refund.amount.amount_minor,
        refund_time=messages.when(refund.update_time),
    )


@dataclass(frozen=True, slots=True)
class LedgerAccounts:
    """Which ledger accounts hold revenue and tax payable (resource ids, per tenant's chart;
    an id ending in `*` matches every account id starting with the rest)."""

    revenue: frozenset[str]
    tax: frozenset[str]

    @staticmethod
    def _matches(account: str, patterns: frozenset[str]) -> bool:
        return account in patterns or any(
            p.endswith("*") and account.startswith(p[:-1]) for p in patterns
        )

    def is_revenue(self, account: str) -> bool:
        return self._matches(account, self.revenue)

    def is_tax(self, account: str) -> bool:
        return self._matches(account, self.tax)


class GrpcLedgerView(LedgerView):
    """Revenue and tax are credits to the configured accounts (ledger postings are debit +,
    credit -), attributed to a document by the entry's `invoice` / `credit_note` metadata."""

    def __init__(
        self, client: LedgerClient, tenant: str, accounts: LedgerAccounts, metadata: Metadata = ()
    ) -> None:
        self._client = client
        self._parent = f"tenants/{tenant}"
        self._accounts = accounts
        self._metadata = tuple(metadata)

    async def postings_between(self, start: datetime, end: datetime) -> list[LedgerPosting]:
        out: list[LedgerPosting] = []
        token = ""
        while True:
            try:
                reply = await self._client.call(
                    self._client.stub.ListJournalEntries,
                    lpb.ListJournalEntriesRequest(
                        parent=self._parent,
                        page_size=_PAGE,
                        page_token=token,
                        start_time=messages.timestamp(start),
                        end_time=messages.timestamp(end),
                    ),
                    metadata=self._metadata,
                )
            except CommerceError as error:
                raise errors.downstream_unavailable("ledger") from error
            for entry in reply.journal_entries:
                posting = self._posting(entry)
                if posting is not None:
                    out.append(posting)
            token = reply.next_page_token
            if not token:
                return out

    def _posting(self, entry: lres.JournalEntry) -> LedgerPosting | None:
        revenue = tax = 0
        currency = ""
        for posting in entry.postings:
            account = posting.account.rsplit("/", 1)[-1]
            if self._accounts.is_revenue(account):
                revenue -= posting.amount.amount_minor
                currency = posting.amount.currency_code
            elif self._accounts.is_tax(account):
                tax -= posting.amount.amount_minor
                currency = posting.amount.currency_code
        if not currency:
            return None
        document = entry.metadata.get("credit_note") or entry.metadata.get("invoice", "")
        return LedgerPosting(
            entry=entry.name,
            document=document,
            currency_code=currency,
            revenue=revenue,
            tax=tax,
            post_time=messages.when(entry.create_time),
        )
