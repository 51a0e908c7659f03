"""The invoice aggregate: lines with per-rate tax, totals, and the lifecycle
DRAFT → ISSUED → PAID / VOID / UNCOLLECTIBLE (an issued invoice's content is frozen)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.invoicing.domain import errors
from services.invoicing.domain.money import tax_at


class InvoiceState(enum.StrEnum):
    DRAFT = "DRAFT"
    ISSUED = "ISSUED"
    PAID = "PAID"
    VOID = "VOID"
    UNCOLLECTIBLE = "UNCOLLECTIBLE"


class InvoiceSource(enum.StrEnum):
    CHECKOUT = "CHECKOUT"
    MANUAL = "MANUAL"


# Every move the lifecycle allows; anything else is INVALID_STATE_TRANSITION. PAID → ISSUED
# happens only when a voided credit note makes a balance due again.
TRANSITIONS: dict[InvoiceState, frozenset[InvoiceState]] = {
    InvoiceState.DRAFT: frozenset({InvoiceState.ISSUED, InvoiceState.VOID}),
    InvoiceState.ISSUED: frozenset(
        {InvoiceState.PAID, InvoiceState.VOID, InvoiceState.UNCOLLECTIBLE}
    ),
    InvoiceState.UNCOLLECTIBLE: frozenset({InvoiceState.PAID, InvoiceState.VOID}),
    InvoiceState.PAID: frozenset({InvoiceState.ISSUED}),
    InvoiceState.VOID: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    email: str = ""
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Address:
    region_code: str = ""
    administrative_area: str = ""
    locality: str = ""
    postal_code: str = ""
    address_lines: tuple[str, ...] = ()
    recipient: str = ""


@dataclass(frozen=True, slots=True)
class TaxRate:
    jurisdiction: str
    tax_name: str
    rate_ppm: int


@dataclass(frozen=True, slots=True)
class TaxLine:
    """Tax at one rate: on one line, or summed over lines."""

    jurisdiction: str
    tax_name: str
    rate_ppm: int
    taxable_amount: int
    tax_amount: int

    @property
    def rate(self) -> TaxRate:
        return TaxRate(self.jurisdiction, self.tax_name, self.rate_ppm)


def breakdown(taxes: Iterable[TaxLine]) -> tuple[TaxLine, ...]:
    """Tax lines summed per (jurisdiction, tax name, rate), in first-seen order."""
    summed: dict[TaxRate, TaxLine] = {}
    for tax in taxes:
        seen = summed.get(tax.rate)
        summed[tax.rate] = (
            tax
            if seen is None
            else replace(
                seen,
                taxable_amount=seen.taxable_amount + tax.taxable_amount,
                tax_amount=seen.tax_amount + tax.tax_amount,
            )
        )
    return tuple(summed.values())


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line; amounts in the invoice's currency, minor units."""

    line_id: str
    description: str
    quantity: int
    unit_price: int
    sku: str = ""
    tax_code: str = ""
    discount_amount: int = 0
    taxes: tuple[TaxLine, ...] = ()

    @classmethod
    def priced(
        cls,
        line_id: str,
        description: str,
        quantity: int,
        unit_price: int,
        *,
        sku: str = "",
        tax_code: str = "",
        discount_amount: int = 0,
        rates: Sequence[TaxRate] = (),
    ) -> InvoiceLine:
        """A line whose tax is computed from `rates`, per rate, rounded half up."""
        net = unit_price * quantity - discount_amount
        taxes = tuple(
            TaxLine(r.jurisdiction, r.tax_name, r.rate_ppm, net, tax_at(net, r.rate_ppm))
            for r in rates
        )
        return cls(
            line_id, description, quantity, unit_price, sku, tax_code, discount_amount, taxes
        )

    @property
    def tax_rates(self) -> tuple[TaxRate, ...]:
        return tuple(t.rate for t in self.taxes)

    @property
    def subtotal(self) -> int:
        return self.unit_price * self.quantity

    @property
    def net_amount(self) -> int:
        return self.subtotal - self.discount_amount

    @property
    def tax_amount(self) -> int:
        return sum(t.tax_amount for t in self.taxes)

    @property
    def total(self) -> int:
        return self.net_amount + self.tax_amount


@dataclass(frozen=True, slots=True)
class InvoicePayment:
    payment: str
    amount: int
    paid_time: datetime
    capture_reference: str = ""
    external_reference: str = ""


@dataclass(frozen=True, slots=True)
class Number:
    """A number drawn from a gapless series: the printed number, the counter and the position."""

    number: str
    series: str
    sequence: int


@dataclass(frozen=True, slots=True)
class DraftContent:
    """What an editable invoice holds; replaced as a whole by an update."""

    customer: Customer
    lines: tuple[InvoiceLine, ...] = ()
    billing_address: Address | None = None
    shipping_address: Address | None = None
    memo: str = ""
    due_time: datetime | None = None


@dataclass(slots=True)
class Invoice:
    tenant: str
    invoice_id: str
    source: InvoiceSource
    currency_code: str
    content: DraftContent
    create_time: datetime
    update_time: datetime
    state: InvoiceState = InvoiceState.DRAFT
    number: Number | None = None
    order: str = ""
    payments: tuple[InvoicePayment, ...] = ()
    amount_credited: int = 0
    state_reason: str = ""
    issue_time: datetime | None = None
    paid_time: datetime | None = None
    void_time: datetime | None = None
    uncollectible_time: datetime | None = None
    version: int = 1
    # Set by transitions, read by the use case that stages the events; never stored.
    changes: list[str] = field(default_factory=list, compare=False)

    # --- identity and amounts -------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"tenants/{self.tenant}/invoices/{self.invoice_id}"

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def lines(self) -> tuple[InvoiceLine, ...]:
        return self.content.lines

    @property
    def subtotal(self) -> int:
        return sum(line.subtotal for line in self.lines)

    @property
    def discount_total(self) -> int:
        return sum(line.discount_amount for line in self.lines)

    @property
    def tax_total(self) -> int:
        return sum(line.tax_amount for line in self.lines)

    @property
    def net_total(self) -> int:
        return self.subtotal - self.discount_total

    @property
    def total(self) -> int:
        return self.net_total + self.tax_total

    @property
    def tax_breakdown(self) -> tuple[TaxLine, ...]:
        return breakdown(tax for line in self.lines for tax in line.taxes)

    @property
    def amount_paid(self) -> int:
        return sum(p.amount for p in self.payments)

    @property
    def balance_due(self) -> int:
        if self.state in {InvoiceState.DRAFT, InvoiceState.VOID}:
            return 0
        return max(0, self.total - self.amount_paid - self.amount_credited)

    @property
    def creditable(self) -> int:
        """What credit notes may still credit: the total less what is already credited."""
        return self.total - self.amount_credited

    def line(self, line_id: str) -> InvoiceLine:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise errors.invoice_line_not_found(line_id)

    # --- lifecycle ------------------------------------------------------------------------

    def check_etag(self, etag: str) -> None:
        """An empty etag means the caller does not care; any other must be current."""
        if etag and etag != self.etag:
            raise errors.etag_mismatch(self.etag)

    def _move(self, to: InvoiceState, now: datetime, why: str = "") -> None:
        if to not in TRANSITIONS[self.state]:
            raise errors.invalid_transition(self.state.value, to.value, why)
        self.state = to
        self._touch(now)

    def _touch(self, now: datetime) -> None:
        self.update_time = now
        self.version += 1

    def update_draft(self, content: DraftContent, now: datetime) -> None:
        if self.state is not InvoiceState.DRAFT:
            raise errors.invoice_not_draft(self.state.value)
        self.content = content
        self._touch(now)

    def issue(self, number: Number, now: datetime) -> None:
        """Freeze the content under `number`; due on receipt unless a due time was set."""
        if self.state is not InvoiceState.DRAFT:
            raise errors.invoice_not_draft(self.state.value)
        if not self.lines:
            raise errors.invoice_empty()
        due = self.content.due_time
        if due is not None and due < now:
            raise errors.due_before_issue()
        self.content = replace(self.content, due_time=due or now)
        self.number = number
        self.issue_time = now
        self._move(InvoiceState.ISSUED, now)
        self.changes.append("issued")

    def record_payment(self, payment: InvoicePayment, now: datetime) -> None:
        """Apply a payment; PAID when nothing is due. A payment already recorded is a no-op."""
        if any(p.payment and p.payment == payment.payment for p in self.payments):
            return
        if self.state not in {InvoiceState.ISSUED, InvoiceState.UNCOLLECTIBLE}:
            raise errors.invalid_transition(
                self.state.value, InvoiceState.PAID.value, "payments go on issued invoices"
            )
        if payment.amount > self.balance_due:
            raise errors.payment_exceeds_balance(self.balance_due)
        self.payments = (*self.payments, payment)
        self._touch(now)
        self.changes.append("payment_recorded")
        self._settle_if_nothing_due(payment.paid_time, now)

    def _settle_if_nothing_due(self, paid_time: datetime, now: datetime) -> None:
        if self.balance_due == 0 and self.state is not InvoiceState.PAID:
            self._move(InvoiceState.PAID, now)
            self.paid_time = paid_time
            self.changes.append("paid")

    def void(self, reason: str, now: datetime) -> None:
        if self.state is InvoiceState.PAID or self.state is InvoiceState.VOID:
            raise errors.invalid_transition(self.state.value, InvoiceState.VOID.value)
        if self.payments:
            raise errors.invoice_has_payments()
        was_draft = self.state is InvoiceState.DRAFT
        self._move(InvoiceState.VOID, now)
        self.state_reason = reason
        self.void_time = now
        if not was_draft:  # drafts publish nothing
            self.changes.append("voided")

    def mark_uncollectible(self, reason: str, now: datetime) -> None:
        if self.state is not InvoiceState.ISSUED:
            raise errors.invalid_transition(self.state.value, InvoiceState.UNCOLLECTIBLE.value)
        self._move(InvoiceState.UNCOLLECTIBLE, now)
        self.state_reason = reason
        self.uncollectible_time = now
        self.changes.append("uncollectible")

    def apply_credit(self, amount: int, now: datetime) -> None:
        """Count a credit note's total; an ISSUED/UNCOLLECTIBLE invoice with nothing due is PAID."""
        if self.state not in {
            InvoiceState.ISSUED,
            InvoiceState.PAID,
            InvoiceState.UNCOLLECTIBLE,
        }:
            raise errors.invalid_transition(
                self.state.value, self.state.value, "credit notes need an issued invoice"
            )
        if amount > self.creditable:
            raise errors.credit_exceeds_balance(self.creditable)
        self.amount_credited += amount
        self._touch(now)
        self._settle_if_nothing_due(now, now)

    def withdraw_credit(self, amount: int, now: datetime) -> None:
        """A voided credit note no longer counts; a PAID invoice owing again is ISSUED again."""
        self.amount_credited -= amount
        self._touch(now)
        if self.state is InvoiceState.PAID and self.balance_due > 0:
            self._move(InvoiceState.ISSUED, now)
            self.paid_time = None
