"""What invoicing publishes: each domain event as its contract message and its subject.

The subject (and so the Pub/Sub ordering key) is always the invoice name, for credit note
events too, so a consumer sees one invoice's events in the order they happened.
"""

from __future__ import annotations

from google.protobuf.message import Message

from commerce.invoicing.v1 import events_pb2 as ev
from commerce.invoicing.v1 import resources_pb2 as res
from services.invoicing import messages
from services.invoicing.domain import events
from services.invoicing.domain.credit_notes import CreditNote
from services.invoicing.domain.invoices import Invoice

SOURCE = "//commerce-mesh/invoicing"


def _number(invoice: Invoice) -> str:
    return invoice.number.number if invoice.number else ""


def outgoing(event: events.InvoicingEvent) -> tuple[Message, str]:
    """The event's proto message and its subject."""
    match event:
        case events.InvoiceIssued(invoice=invoice):
            return _issued(invoice), invoice.name
        case events.InvoicePaid(invoice=invoice):
            return _paid(invoice), invoice.name
        case events.InvoiceVoided(invoice=invoice):
            cur = invoice.currency_code
            return ev.InvoiceVoided(
                invoice=invoice.name,
                number=_number(invoice),
                customer=messages.customer_message(invoice.content.customer),
                order=invoice.order,
                total=messages.money(invoice.total, cur),
                reason=invoice.state_reason,
                void_time=messages.timestamp(invoice.void_time),
                event_time=messages.timestamp(invoice.void_time),
            ), invoice.name
        case events.InvoiceMarkedUncollectible(invoice=invoice):
            cur = invoice.currency_code
            return ev.InvoiceMarkedUncollectible(
                invoice=invoice.name,
                number=_number(invoice),
                customer=messages.customer_message(invoice.content.customer),
                order=invoice.order,
                total=messages.money(invoice.total, cur),
                balance_due=messages.money(invoice.balance_due, cur),
                reason=invoice.state_reason,
                uncollectible_time=messages.timestamp(invoice.uncollectible_time),
                event_time=messages.timestamp(invoice.uncollectible_time),
            ), invoice.name
        case events.CreditNoteIssued(credit_note=note, invoice=invoice):
            return _credit_note_issued(note, invoice), invoice.name
        case events.CreditNoteVoided(credit_note=note, invoice=invoice):
            cur = note.currency_code
            return ev.CreditNoteVoided(
                credit_note=note.name,
                invoice=invoice.name,
                number=note.number.number,
                currency_code=cur,
                subtotal=messages.money(note.subtotal, cur),
                tax_total=messages.money(note.tax_total, cur),
                total=messages.money(note.total, cur),
                invoice_balance_due=messages.money(invoice.balance_due, cur),
                void_time=messages.timestamp(note.void_time),
                event_time=messages.timestamp(note.void_time),
            ), invoice.name


def _issued(invoice: Invoice) -> ev.InvoiceIssued:
    full = messages.invoice(invoice)
    return ev.InvoiceIssued(
        invoice=invoice.name,
        number=_number(invoice),
        source=res.InvoiceSource.Value(f"INVOICE_SOURCE_{invoice.source.value}"),
        customer=full.customer,
        billing_address=full.billing_address if full.HasField("billing_address") else None,
        currency_code=invoice.currency_code,
        lines=full.lines,
        tax_breakdown=full.tax_breakdown,
        subtotal=full.subtotal,
        discount_total=full.discount_total,
        tax_total=full.tax_total,
        total=full.total,
        balance_due=messages.money(invoice.total, invoice.currency_code),
        order=invoice.order,
        due_time=full.due_time,
        issue_time=full.issue_time,
        event_time=full.issue_time,
    )


def _paid(invoice: Invoice) -> ev.InvoicePaid:
    cur = invoice.currency_code
    return ev.InvoicePaid(
        invoice=invoice.name,
        number=_number(invoice),
        customer=messages.customer_message(invoice.content.customer),
        order=invoice.order,
        total=messages.money(invoice.total, cur),
        amount_paid=messages.money(invoice.amount_paid, cur),
        amount_credited=messages.money(invoice.amount_credited, cur),
        payments=[messages.payment_message(p, cur) for p in invoice.payments],
        paid_time=messages.timestamp(invoice.paid_time),
        event_time=messages.timestamp(invoice.update_time),
    )


def _credit_note_issued(note: CreditNote, invoice: Invoice) -> ev.CreditNoteIssued:
    full = messages.credit_note(note)
    cur = note.currency_code
    return ev.CreditNoteIssued(
        credit_note=note.name,
        invoice=invoice.name,
        number=note.number.number,
        invoice_number=note.invoice_number,
        customer=messages.customer_message(invoice.content.customer),
        reason=full.reason,
        currency_code=cur,
        lines=full.lines,
        tax_breakdown=full.tax_breakdown,
        subtotal=full.subtotal,
        tax_total=full.tax_total,
        total=full.total,
        refund=note.refund,
        order=invoice.order,
        invoice_amount_credited=messages.money(invoice.amount_credited, cur),
        invoice_balance_due=messages.money(invoice.balance_due, cur),
        issue_time=full.issue_time,
        event_time=full.issue_time,
    )
