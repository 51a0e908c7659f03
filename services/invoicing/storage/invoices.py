"""Invoices in PostgreSQL: the document plus the columns its keys and constraints guard."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.invoicing.domain import errors
from services.invoicing.domain.invoices import Invoice
from services.invoicing.domain.ports import Cursor, InvoiceFilter, Invoices
from services.invoicing.storage.documents import invoice_from, invoice_json

_INSERT = text(
    "INSERT INTO invoices (tenant_id, invoice_id, state, source, currency_code, customer_id,"
    " order_name, number, series, sequence, document, version, create_time, update_time,"
    " issue_time) VALUES (:tenant, :invoice_id, :state, :source, :currency, :customer,"
    " :order_name, :number, :series, :sequence, CAST(:document AS jsonb), :version,"
    " :create_time, :update_time, :issue_time)"
)
# Optimistic check on top of the row lock the use case took: a lost update is a bug, not a race.
_UPDATE = text(
    "UPDATE invoices SET state = :state, customer_id = :customer, number = :number,"
    " series = :series, sequence = :sequence, document = CAST(:document AS jsonb),"
    " version = :version, update_time = :update_time, issue_time = :issue_time"
    " WHERE tenant_id = :tenant AND invoice_id = :invoice_id AND version < :version"
)
_RECORD_PAYMENTS = text(
    "INSERT INTO invoice_payments (tenant_id, payment, invoice_id, amount_minor, paid_time)"
    " SELECT :tenant, p.payment, :invoice_id, p.amount, p.paid_time"
    " FROM unnest(CAST(:payments AS text[]), CAST(:amounts AS bigint[]),"
    " CAST(:paid_times AS timestamptz[])) AS p (payment, amount, paid_time)"
    " ON CONFLICT (tenant_id, payment) DO UPDATE SET invoice_id = EXCLUDED.invoice_id"
    " WHERE invoice_payments.invoice_id = EXCLUDED.invoice_id"
)
_GET = "SELECT document FROM invoices WHERE tenant_id = :tenant AND invoice_id = :invoice_id"
_BY_ORDER = text(
    "SELECT document FROM invoices WHERE tenant_id = :tenant AND order_name = :order_name"
)
_BY_PAYMENT = text(
    "SELECT i.document FROM invoice_payments p JOIN invoices i USING (tenant_id, invoice_id)"
    " WHERE p.tenant_id = :tenant AND p.payment = :payment"
)
_RECORDING = text(
    "SELECT DISTINCT i.invoice_id, i.document FROM invoice_payments p"
    " JOIN invoices i USING (tenant_id, invoice_id)"
    " WHERE p.tenant_id = :tenant AND p.payment = ANY(CAST(:payments AS text[]))"
)
_NUMBER_TAKEN = text("SELECT 1 FROM invoices WHERE tenant_id = :tenant AND number = :number")
_PAGE = text(
    "SELECT document FROM invoices WHERE tenant_id = :tenant"
    " AND (CAST(:state AS text) IS NULL OR state = :state)"
    " AND (CAST(:source AS text) IS NULL OR source = :source)"
    " AND (CAST(:customer AS text) IS NULL OR customer_id = :customer)"
    " AND (CAST(:order_name AS text) IS NULL OR order_name = :order_name)"
    " AND (CAST(:number AS text) IS NULL OR number = :number)"
    " AND (CAST(:after_time AS timestamptz) IS NULL"
    "      OR (create_time, invoice_id) < (CAST(:after_time AS timestamptz), :after_id))"
    " ORDER BY create_time DESC, invoice_id DESC LIMIT :limit"
)
_ISSUED_BETWEEN = text(
    "SELECT document FROM invoices WHERE tenant_id = :tenant"
    " AND issue_time >= :start AND issue_time < :end ORDER BY issue_time, invoice_id"
)


def _columns(tenant: str, invoice: Invoice) -> dict[str, Any]:
    number = invoice.number
    return {
        "tenant": tenant,
        "invoice_id": invoice.invoice_id,
        "state": invoice.state.value,
        "source": invoice.source.value,
        "currency": invoice.currency_code,
        "customer": invoice.content.customer.customer_id,
        "order_name": invoice.order or None,
        "number": number.number if number else None,
        "series": number.series if number else None,
        "sequence": number.sequence if number else None,
        "document": invoice_json(invoice),
        "version": invoice.version,
        "create_time": invoice.create_time,
        "update_time": invoice.update_time,
        "issue_time": invoice.issue_time,
    }


class SqlInvoices(Invoices):
    def __init__(self, session: AsyncSession, tenant: str) -> None:
        self._session = session
        self._tenant = tenant

    async def _documents(self, statement: Any, **params: Any) -> list[Invoice]:
        rows = await self._session.execute(statement, {"tenant": self._tenant, **params})
        return [invoice_from(row.document) for row in rows]

    async def _one(self, statement: Any, **params: Any) -> Invoice | None:
        found = await self._documents(statement, **params)
        return found[0] if found else None

    async def add(self, invoice: Invoice) -> None:
        await self._session.execute(_INSERT, _columns(self._tenant, invoice))
        await self._record_payments(invoice)

    async def save(self, invoice: Invoice) -> None:
        result = await self._session.execute(_UPDATE, _columns(self._tenant, invoice))
        if getattr(result, "rowcount", 1) != 1:
            raise RuntimeError(f"lost update of {invoice.name}")
        await self._record_payments(invoice)

    async def _record_payments(self, invoice: Invoice) -> None:
        recorded = [p for p in invoice.payments if p.payment]
        if not recorded:
            return
        result = await self._session.execute(
            _RECORD_PAYMENTS,
            {
                "tenant": self._tenant,
                "invoice_id": invoice.invoice_id,
                "payments": [p.payment for p in recorded],
                "amounts": [p.amount for p in recorded],
                "paid_times": [p.paid_time for p in recorded],
            },
        )
        if getattr(result, "rowcount", len(recorded)) != len(recorded):
            # Another invoice recorded one of these payments meanwhile (the key waited for it).
            for payment in recorded:
                holder = await self.by_payment(payment.payment)
                if holder is not None and holder.invoice_id != invoice.invoice_id:
                    raise errors.payment_already_invoiced(holder.name)
            raise RuntimeError(f"payments of {invoice.name} not recorded")

    async def get(self, invoice_id: str, *, lock: bool = False) -> Invoice | None:
        statement = text(_GET + (" FOR UPDATE" if lock else ""))
        return await self._one(statement, invoice_id=invoice_id)

    async def by_order(self, order: str) -> Invoice | None:
        return await self._one(_BY_ORDER, order_name=order)

    async def by_payment(self, payment: str) -> Invoice | None:
        return await self._one(_BY_PAYMENT, payment=payment)

    async def number_taken(self, number: str) -> bool:
        found = await self._session.execute(
            _NUMBER_TAKEN, {"tenant": self._tenant, "number": number}
        )
        return found.first() is not None

    async def page(self, where: InvoiceFilter, after: Cursor | None, size: int) -> list[Invoice]:
        return await self._documents(
            _PAGE,
            state=where.state.value if where.state else None,
            source=where.source.value if where.source else None,
            customer=where.customer_id,
            order_name=where.order,
            number=where.number,
            after_time=after.create_time if after else None,
            after_id=after.resource_id if after else "",
            limit=size,
        )

    async def issued_between(self, start: datetime, end: datetime) -> list[Invoice]:
        return await self._documents(_ISSUED_BETWEEN, start=start, end=end)

    async def recording_payments(self, payments: Sequence[str]) -> list[Invoice]:
        return await self._documents(_RECORDING, payments=list(payments))
