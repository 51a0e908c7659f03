"""What invoicing announces; each event is staged in the outbox of the change's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from services.invoicing.domain.credit_notes import CreditNote
from services.invoicing.domain.invoices import Invoice, InvoicePayment


@dataclass(frozen=True, slots=True)
class InvoiceIssued:
    invoice: Invoice


@dataclass(frozen=True, slots=True)
class InvoicePaid:
    invoice: Invoice
    payment: InvoicePayment | None


@dataclass(frozen=True, slots=True)
class InvoiceVoided:
    invoice: Invoice


@dataclass(frozen=True, slots=True)
class InvoiceMarkedUncollectible:
    invoice: Invoice


@dataclass(frozen=True, slots=True)
class CreditNoteIssued:
    credit_note: CreditNote
    invoice: Invoice


@dataclass(frozen=True, slots=True)
class CreditNoteVoided:
    credit_note: CreditNote
    invoice: Invoice


InvoicingEvent = (
    InvoiceIssued
    | InvoicePaid
    | InvoiceVoided
    | InvoiceMarkedUncollectible
    | CreditNoteIssued
    | CreditNoteVoided
)
