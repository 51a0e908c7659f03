"""Credit notes: what is credited on which invoice line (net and tax per rate), issued at once
under their own gapless series; only a note that records no refund can be voided."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.invoicing.domain import errors
from services.invoicing.domain.invoices import Invoice, InvoiceLine, Number, TaxLine, breakdown
from services.invoicing.domain.money import allocate, split_inclusive, tax_at


class CreditNoteState(enum.StrEnum):
    ISSUED = "ISSUED"
    VOID = "VOID"


class CreditNoteReason(enum.StrEnum):
    DUPLICATE = "DUPLICATE"
    FRAUDULENT = "FRAUDULENT"
    ORDER_CHANGE = "ORDER_CHANGE"
    PRODUCT_UNSATISFACTORY = "PRODUCT_UNSATISFACTORY"
    PRICE_ADJUSTMENT = "PRICE_ADJUSTMENT"
    REFUND = "REFUND"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class LineCredit:
    """A requested credit on one invoice line: `quantity` units or a net `amount`."""

    invoice_line_id: str
    quantity: int = 0
    amount: int = 0


@dataclass(frozen=True, slots=True)
class CreditNoteLine:
    invoice_line_id: str
    description: str
    net_amount: int
    taxes: tuple[TaxLine, ...]
    quantity: int = 0  # units credited, when credited by quantity

    @property
    def tax_amount(self) -> int:
        return sum(t.tax_amount for t in self.taxes)

    @property
    def total(self) -> int:
        return self.net_amount + self.tax_amount


@dataclass(slots=True)
class CreditNote:
    tenant: str
    invoice_id: str
    credit_note_id: str
    number: Number
    invoice_number: str
    reason: CreditNoteReason
    currency_code: str
    lines: tuple[CreditNoteLine, ...]
    create_time: datetime
    update_time: datetime
    memo: str = ""
    refund: str = ""
    state: CreditNoteState = CreditNoteState.ISSUED
    void_time: datetime | None = None
    version: int = 1
    changes: list[str] = field(default_factory=list, compare=False)

    @property
    def invoice(self) -> str:
        return f"tenants/{self.tenant}/invoices/{self.invoice_id}"

    @property
    def name(self) -> str:
        return f"{self.invoice}/creditNotes/{self.credit_note_id}"

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def subtotal(self) -> int:
        return sum(line.net_amount for line in self.lines)

    @property
    def tax_total(self) -> int:
        return sum(line.tax_amount for line in self.lines)

    @property
    def total(self) -> int:
        return self.subtotal + self.tax_total

    @property
    def tax_breakdown(self) -> tuple[TaxLine, ...]:
        return breakdown(tax for line in self.lines for tax in line.taxes)

    def check_etag(self, etag: str) -> None:
        if etag and etag != self.etag:
            raise errors.etag_mismatch(self.etag)

    def void(self, now: datetime) -> None:
        if self.state is CreditNoteState.VOID:
            raise errors.credit_note_transition(self.state.value, CreditNoteState.VOID.value)
        if self.refund:
            raise errors.credit_note_refunded()
        self.state = CreditNoteState.VOID
        self.void_time = now
        self.update_time = now
        self.version += 1
        self.changes.append("voided")


@dataclass(frozen=True, slots=True)
class Credited:
    """What the ISSUED credit notes of an invoice credited on one line so far."""

    units: int = 0
    net: int = 0
    taxes: tuple[int, ...] = ()

    def tax(self, index: int) -> int:
        return self.taxes[index] if index < len(self.taxes) else 0


def credited_per_line(notes: Iterable[CreditNote]) -> dict[str, Credited]:
    so_far: dict[str, Credited] = {}
    for note in notes:
        if note.state is not CreditNoteState.ISSUED:
            continue
        for line in note.lines:
            seen = so_far.get(line.invoice_line_id, Credited())
            width = max(len(seen.taxes), len(line.taxes))
            so_far[line.invoice_line_id] = Credited(
                units=seen.units + line.quantity,
                net=seen.net + line.net_amount,
                taxes=tuple(
                    seen.tax(i) + (line.taxes[i].tax_amount if i < len(line.taxes) else 0)
                    for i in range(width)
                ),
            )
    return so_far


def _remaining(line: InvoiceLine, done: Credited) -> tuple[int, list[int]]:
    return line.net_amount - done.net, [
        t.tax_amount - done.tax(i) for i, t in enumerate(line.taxes)
    ]


def _note_line(
    line: InvoiceLine, net: int, taxes: Sequence[int], quantity: int = 0
) -> CreditNoteLine:
    return CreditNoteLine(
        invoice_line_id=line.line_id,
        description=line.description,
        net_amount=net,
        taxes=tuple(
            TaxLine(t.jurisdiction, t.tax_name, t.rate_ppm, net, tax)
            for t, tax in zip(line.taxes, taxes, strict=True)
        ),
        quantity=quantity,
    )


def _credit_one(line: InvoiceLine, request: LineCredit, done: Credited) -> CreditNoteLine:
    net_left, taxes_left = _remaining(line, done)
    if request.quantity:
        units = done.units + request.quantity
        if units > line.quantity:
            raise errors.credit_exceeds_line(line.line_id)
        if units == line.quantity:  # the last units take exactly what is left
            net, taxes = net_left, taxes_left
        else:
            net = line.net_amount * request.quantity // line.quantity
            taxes = [t.tax_amount * request.quantity // line.quantity for t in line.taxes]
    elif request.amount == net_left:
        net, taxes = net_left, taxes_left
    else:
        net = request.amount
        taxes = [tax_at(net, t.rate_ppm) for t in line.taxes]
    if net > net_left or any(t > left for t, left in zip(taxes, taxes_left, strict=True)):
        raise errors.credit_exceeds_line(line.line_id)
    return _note_line(line, net, taxes, request.quantity)


def credit_lines(
    invoice: Invoice, requests: Sequence[LineCredit], credited: dict[str, Credited]
) -> tuple[CreditNoteLine, ...]:
    """Credit specific lines by units or net amount, taxed at those lines' rates."""
    running = dict(credited)
    out: list[CreditNoteLine] = []
    for request in requests:
        line = invoice.line(request.invoice_line_id)
        note_line = _credit_one(line, request, running.get(line.line_id, Credited()))
        done = running.get(line.line_id, Credited())
        running[line.line_id] = Credited(
            units=done.units + note_line.quantity,
            net=done.net + note_line.net_amount,
            taxes=tuple(done.tax(i) + t.tax_amount for i, t in enumerate(note_line.taxes)),
        )
        out.append(note_line)
    return tuple(out)


def credit_amount(
    invoice: Invoice, amount: int, credited: dict[str, Credited]
) -> tuple[CreditNoteLine, ...]:
    """Spread a tax-inclusive `amount` over the lines in proportion to what each can still be
    credited; each part is split into net and tax, so the note's total is `amount` exactly."""
    if amount > invoice.creditable:
        raise errors.credit_exceeds_balance(invoice.creditable)
    lefts = [_remaining(line, credited.get(line.line_id, Credited())) for line in invoice.lines]
    weights = [max(0, net + sum(taxes)) for net, taxes in lefts]
    out: list[CreditNoteLine] = []
    for line, (net_left, taxes_left), weight, part in zip(
        invoice.lines, lefts, weights, allocate(amount, weights), strict=True
    ):
        if part <= 0:
            continue
        if part == weight:
            out.append(_note_line(line, net_left, taxes_left))
        else:
            net, taxes = split_inclusive(part, [t.rate_ppm for t in line.taxes])
            out.append(_note_line(line, net, taxes))
    return tuple(out)
