"""GetTieOutReport: gather payments', the ledger's and invoicing's records for a period, run the
pure matcher (domain/tie_out.py) and page its differences."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import tie_out_pb2 as tpb
from services.invoicing import messages
from services.invoicing.domain import errors, pages
from services.invoicing.domain.credit_notes import CreditNote, CreditNoteState
from services.invoicing.domain.invoices import Invoice, InvoiceSource, InvoiceState
from services.invoicing.domain.ports import LedgerView, PaymentsView, TransactionRunner, UnitOfWork
from services.invoicing.domain.tie_out import (
    CreditNoteRecord,
    Difference,
    InvoiceRecord,
    LedgerPosting,
    Period,
    TieOut,
    TieOutInput,
    tie_out,
)

# Postings are read this far beyond the period, so a document issued just before its end
# matches the posting the ledger made just after (and the other way round).
POSTING_MARGIN = timedelta(days=2)


def invoice_record(invoice: Invoice) -> InvoiceRecord:
    assert invoice.issue_time is not None
    return InvoiceRecord(
        invoice=invoice.name,
        number=invoice.number.number if invoice.number else "",
        order=invoice.order,
        checkout=invoice.source is InvoiceSource.CHECKOUT,
        void=invoice.state is InvoiceState.VOID,
        currency_code=invoice.currency_code,
        net=invoice.net_total,
        tax=invoice.tax_total,
        total=invoice.total,
        issue_time=invoice.issue_time,
        payments=tuple((p.payment, p.amount) for p in invoice.payments if p.payment),
    )


def credit_note_record(note: CreditNote) -> CreditNoteRecord:
    return CreditNoteRecord(
        credit_note=note.name,
        invoice=note.invoice,
        invoice_number=note.invoice_number,
        refund=note.refund,
        void=note.state is CreditNoteState.VOID,
        currency_code=note.currency_code,
        net=note.subtotal,
        tax=note.tax_total,
        total=note.total,
        issue_time=note.create_time,
    )


async def gather(
    runner: TransactionRunner,
    tenant: str,
    period: Period,
    views: tuple[PaymentsView, LedgerView],
    *,
    currency_code: str = "",
) -> TieOutInput:
    """Everything the matcher needs, across the period boundary where documents point."""
    payments_view, ledger_view = views
    payments, refunds, postings = await asyncio.gather(
        payments_view.captured_between(period.start, period.end),
        payments_view.refunds_between(period.start, period.end),
        ledger_view.postings_between(period.start - POSTING_MARGIN, period.end + POSTING_MARGIN),
    )
    posted = _documents_posted(tenant, period, postings)

    async def read(uow: UnitOfWork) -> tuple[list[Invoice], list[CreditNote]]:
        invoices = {
            i.invoice_id: i for i in await uow.invoices.issued_between(period.start, period.end)
        }
        for i in await uow.invoices.recording_payments([p.payment for p in payments]):
            invoices.setdefault(i.invoice_id, i)
        notes = {
            n.credit_note_id: n
            for n in await uow.credit_notes.issued_between(period.start, period.end)
        }
        for n in await uow.credit_notes.recording_refunds([r.refund for r in refunds]):
            notes.setdefault(n.credit_note_id, n)
        # Documents issued outside the period that the ledger posted inside it.
        for invoice_id, note_id in posted:
            if note_id is None and invoice_id not in invoices:
                found = await uow.invoices.get(invoice_id)
                if found is not None:
                    invoices[invoice_id] = found
            elif note_id is not None and note_id not in notes:
                note = await uow.credit_notes.get(invoice_id, note_id)
                if note is not None:
                    notes[note_id] = note
        return list(invoices.values()), list(notes.values())

    invoices, notes = await runner.run(tenant, read)
    issued = [i for i in invoices if i.issue_time is not None]
    known_payments = {p.payment for p in payments}
    wanted = sorted({p.payment for i in issued for p in i.payments if p.payment} - known_payments)
    known_refunds = {r.refund for r in refunds}
    wanted_refunds = sorted({n.refund for n in notes if n.refund} - known_refunds)
    more_payments, more_refunds = await asyncio.gather(
        payments_view.payments(wanted), payments_view.refunds(wanted_refunds)
    )
    return TieOutInput(
        period=period,
        payments=[*payments, *more_payments],
        refunds=[*refunds, *more_refunds],
        invoices=[invoice_record(i) for i in issued],
        credit_notes=[credit_note_record(n) for n in notes],
        postings=postings,
        currency_code=currency_code,
    )


def _documents_posted(
    tenant: str, period: Period, postings: Sequence[LedgerPosting]
) -> list[tuple[str, str | None]]:
    """(invoice id, credit note id or None) of this tenant's documents posted in the period."""
    prefix = f"tenants/{tenant}/invoices/"
    out: list[tuple[str, str | None]] = []
    for posting in postings:
        if posting.post_time not in period or not posting.document.startswith(prefix):
            continue
        parts = posting.document.removeprefix(prefix).split("/")
        if len(parts) == 1:
            out.append((parts[0], None))
        elif len(parts) == 3 and parts[1] == "creditNotes":  # noqa: PLR2004 - id/creditNotes/id
            out.append((parts[0], parts[2]))
    return sorted(set(out), key=lambda pair: (pair[0], pair[1] or ""))


def _money(amount: int | None, currency: str) -> Any:
    return None if amount is None else messages.money(amount, currency)


def difference_message(d: Difference) -> tpb.TieOutDifference:
    return tpb.TieOutDifference(
        kind=tpb.TieOutDifferenceKind.Value(f"TIE_OUT_DIFFERENCE_KIND_{d.kind.value}"),
        invoice=d.invoice,
        invoice_number=d.invoice_number,
        credit_note=d.credit_note,
        payment=d.payment,
        refund=d.refund,
        order=d.order,
        ledger_entry=d.ledger_entry,
        invoicing_amount=_money(d.invoicing_amount, d.currency_code),
        counterpart_amount=_money(d.counterpart_amount, d.currency_code),
        difference_amount=messages.money(d.difference_amount, d.currency_code),
        occur_time=messages.timestamp(d.occur_time),
        detail=d.detail,
    )


def report_message(
    name: str, given: TieOutInput, result: TieOut, page: list[Difference]
) -> tpb.TieOutReport:
    m = messages.money
    return tpb.TieOutReport(
        name=name,
        start_time=messages.timestamp(given.period.start),
        end_time=messages.timestamp(given.period.end),
        currency_code=given.currency_code,
        generate_time=messages.timestamp(datetime.now(UTC)),
        tied_out=result.tied_out,
        totals=[
            tpb.TieOutTotals(
                currency_code=c,
                captured_amount=m(t.captured, c),
                refunded_amount=m(t.refunded, c),
                invoice_paid_amount=m(t.invoice_paid, c),
                invoiced_amount=m(t.invoiced, c),
                invoice_net_amount=m(t.invoice_net, c),
                invoice_tax_amount=m(t.invoice_tax, c),
                credited_amount=m(t.credited, c),
                credit_note_net_amount=m(t.credit_note_net, c),
                credit_note_tax_amount=m(t.credit_note_tax, c),
                ledger_revenue_amount=m(t.ledger_revenue, c),
                ledger_tax_amount=m(t.ledger_tax, c),
            )
            for c, t in sorted(result.totals.items())
        ],
        payment_count=result.payment_count,
        matched_payment_count=result.matched_payment_count,
        invoice_count=result.invoice_count,
        matched_invoice_count=result.matched_invoice_count,
        refund_count=result.refund_count,
        credit_note_count=result.credit_note_count,
        matched_credit_note_count=result.matched_credit_note_count,
        difference_count=len(result.differences),
        differences=[difference_message(d) for d in page],
    )


Metadata = Sequence[tuple[str, str]]
# The views for one tenant, calling downstream with the caller's credentials (`metadata`).
ViewsFor = Callable[[str, Metadata], tuple[PaymentsView, LedgerView]]


class TieOutService:
    """GetTieOutReport over a payments view and a ledger view (gRPC adapters in production)."""

    def __init__(self, runner: TransactionRunner, views_for: ViewsFor) -> None:
        self._runner = runner
        self._views_for = views_for

    async def report(
        self, tenant: str, request: pb.GetTieOutReportRequest, metadata: Metadata = ()
    ) -> pb.GetTieOutReportResponse:
        period = Period(messages.when(request.start_time), messages.when(request.end_time))
        params = {
            "m": "GetTieOutReport",
            "name": request.name,
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "currency": request.currency_code,
        }
        cursor = pages.decode(request.page_token, params) or {"offset": 0}
        offset = cursor.get("offset")
        if not isinstance(offset, int) or offset < 0:
            raise errors.invalid_page_token()
        size = pages.page_size(request.page_size)
        given = await gather(
            self._runner,
            tenant,
            period,
            self._views_for(tenant, metadata),
            currency_code=request.currency_code,
        )
        result = tie_out(given)
        page = result.differences[offset : offset + size]
        more = offset + size < len(result.differences)
        token = pages.encode(params, {"offset": offset + size}) if more else ""
        return pb.GetTieOutReportResponse(
            report=report_message(request.name, given, result, page), next_page_token=token
        )
