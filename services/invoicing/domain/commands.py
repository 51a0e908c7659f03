"""What callers ask of invoicing, in the domain's words (built by the API and the consumer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.chassis import ids
from services.invoicing.domain import errors
from services.invoicing.domain.credit_notes import CreditNoteReason, LineCredit
from services.invoicing.domain.invoices import (
    Address,
    Customer,
    DraftContent,
    InvoiceLine,
    TaxRate,
)

# Deterministic ids for documents the service issues itself, so a replay names the same one.
_DOCUMENTS = uuid.UUID("6f1f7a53-8a3c-4c59-9d7e-8e0f1c0b2a11")


def new_id() -> str:
    return ids.random_id()


def derived_id(source: str) -> str:
    return ids.stable_id(_DOCUMENTS, source)


@dataclass(frozen=True, slots=True)
class LineSpec:
    """A manual invoice line as given by the caller; tax comes from `rates`."""

    description: str
    quantity: int
    unit_price: int
    currency_code: str
    sku: str = ""
    tax_code: str = ""
    discount_amount: int = 0
    rates: tuple[TaxRate, ...] = ()


def price_lines(specs: Sequence[LineSpec], currency_code: str) -> tuple[InvoiceLine, ...]:
    """Manual lines numbered "1", "2", ... and priced; every amount in the invoice's currency."""
    lines = []
    for position, spec in enumerate(specs, start=1):
        if spec.currency_code != currency_code:
            raise errors.currency_mismatch(currency_code, spec.currency_code)
        lines.append(
            InvoiceLine.priced(
                str(position),
                spec.description,
                spec.quantity,
                spec.unit_price,
                sku=spec.sku,
                tax_code=spec.tax_code,
                discount_amount=spec.discount_amount,
                rates=spec.rates,
            )
        )
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class DraftPatch:
    """UpdateInvoice: the fields named in the mask, each replacing the draft's value."""

    customer: Customer | None = None
    # Sub-fields named in the mask (`customer.email`): merged into the stored customer.
    customer_fields: tuple[tuple[str, str], ...] = ()
    lines: tuple[LineSpec, ...] | None = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    memo: str | None = None
    due_time: datetime | None = None
    replace_billing_address: bool = False
    replace_shipping_address: bool = False
    replace_due_time: bool = False


@dataclass(frozen=True, slots=True)
class PaymentSpec:
    """MarkInvoicePaid: `amount` None means the whole balance due."""

    amount: int | None
    currency_code: str
    payment: str = ""
    capture_reference: str = ""
    external_reference: str = ""
    paid_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class CreditSpec:
    """CreateCreditNote: exactly one of `amount` (tax inclusive) and `lines`."""

    reason: CreditNoteReason
    amount: int | None = None
    currency_code: str = ""
    lines: tuple[LineCredit, ...] = ()
    memo: str = ""
    refund: str = ""
    line_currencies: tuple[str, ...] = ()  # currency of each line's `amount`, when given


@dataclass(frozen=True, slots=True)
class CheckoutInvoice:
    """CheckoutCompleted, as invoicing needs it: the order's lines copied verbatim."""

    order: str
    customer: Customer
    currency_code: str
    lines: tuple[InvoiceLine, ...]
    payment: str
    capture_reference: str
    captured_amount: int
    complete_time: datetime
    billing_address: Address | None = None
    shipping_address: Address | None = None

    def content(self) -> DraftContent:
        return DraftContent(
            customer=self.customer,
            lines=self.lines,
            billing_address=self.billing_address,
            shipping_address=self.shipping_address,
        )


@dataclass(frozen=True, slots=True)
class Capture:
    """PaymentCaptured: a capture of a payment, of the order it belongs to (if any)."""

    payment: str
    order: str
    amount: int
    currency_code: str
    capture_reference: str
    capture_time: datetime


@dataclass(frozen=True, slots=True)
class Refund:
    """PaymentRefunded: one succeeded refund of a payment."""

    payment: str
    order: str
    refund: str
    amount: int
    currency_code: str
    refund_time: datetime
