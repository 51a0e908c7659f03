"""What a customer document shows, as display strings: one view for both renderers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.invoicing.domain.credit_notes import CreditNote, CreditNoteState
from services.invoicing.domain.invoices import Address, Invoice, InvoiceState, TaxLine

# ISO 4217 minor-unit exponents that differ from 2.
_EXPONENTS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def amount(minor: int, currency: str) -> str:
    """1234567 USD → "USD 12,345.67" (grouped, the currency's minor unit)."""
    exponent = _EXPONENTS.get(currency, 2)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**exponent)
    digits = f"{whole:,}" + (f".{fraction:0{exponent}d}" if exponent else "")
    return f"{currency} {sign}{digits}"


def rate(ppm: int) -> str:
    """190000 → "19%", 88750 → "8.875%"."""
    text = f"{ppm / 10_000:.4f}".rstrip("0").rstrip(".")
    return f"{text}%"


def day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    sku: str
    quantity: str
    unit_price: str
    discount: str
    net: str
    tax: str
    total: str


@dataclass(frozen=True, slots=True)
class TaxView:
    label: str
    taxable: str
    tax: str


@dataclass(frozen=True, slots=True)
class DocumentView:
    title: str
    number: str
    file_stem: str
    watermark: str
    issuer: str
    facts: tuple[tuple[str, str], ...]
    bill_to: tuple[str, ...]
    ship_to: tuple[str, ...]
    lines: tuple[LineView, ...]
    taxes: tuple[TaxView, ...]
    totals: tuple[tuple[str, str], ...]
    memo: str


def _address(name: str, address: Address | None) -> tuple[str, ...]:
    if address is None:
        return (name,) if name else ()
    place = " ".join(p for p in (address.postal_code, address.locality) if p)
    parts = (
        address.recipient or name,
        *address.address_lines,
        ", ".join(p for p in (place, address.administrative_area) if p),
        address.region_code,
    )
    return tuple(p for p in parts if p)


def _taxes(taxes: tuple[TaxLine, ...], currency: str) -> tuple[TaxView, ...]:
    return tuple(
        TaxView(
            f"{t.tax_name} {rate(t.rate_ppm)} ({t.jurisdiction})",
            amount(t.taxable_amount, currency),
            amount(t.tax_amount, currency),
        )
        for t in taxes
    )


def invoice_view(invoice: Invoice) -> DocumentView:
    cur = invoice.currency_code
    customer = invoice.content.customer
    number = invoice.number.number if invoice.number else ""
    watermark = {InvoiceState.DRAFT: "DRAFT", InvoiceState.VOID: "VOID"}.get(invoice.state, "")
    facts = [
        ("Invoice number", number or "(draft, not numbered)"),
        ("Issue date", day(invoice.issue_time)),
        ("Due date", day(invoice.content.due_time)),
        ("Customer", customer.customer_id),
        ("Status", invoice.state.value.title()),
    ]
    if invoice.order:
        facts.append(("Order", invoice.order.rsplit("/", 1)[-1]))
    return DocumentView(
        title="Invoice",
        number=number,
        file_stem=number or f"draft-{invoice.invoice_id}",
        watermark=watermark,
        issuer=invoice.tenant,
        facts=tuple((k, v) for k, v in facts if v),
        bill_to=_address(
            customer.display_name or customer.customer_id, invoice.content.billing_address
        ),
        ship_to=_address("", invoice.content.shipping_address),
        lines=tuple(
            LineView(
                description=line.description,
                sku=line.sku,
                quantity=str(line.quantity),
                unit_price=amount(line.unit_price, cur),
                discount=amount(line.discount_amount, cur) if line.discount_amount else "",
                net=amount(line.net_amount, cur),
                tax=amount(line.tax_amount, cur),
                total=amount(line.total, cur),
            )
            for line in invoice.lines
        ),
        taxes=_taxes(invoice.tax_breakdown, cur),
        totals=(
            ("Subtotal", amount(invoice.subtotal, cur)),
            ("Discounts", amount(-invoice.discount_total, cur)),
            ("Tax", amount(invoice.tax_total, cur)),
            ("Total", amount(invoice.total, cur)),
            ("Paid", amount(invoice.amount_paid, cur)),
            ("Credited", amount(invoice.amount_credited, cur)),
            ("Balance due", amount(invoice.balance_due, cur)),
        ),
        memo=invoice.content.memo,
    )


def credit_note_view(note: CreditNote, invoice: Invoice) -> DocumentView:
    cur = note.currency_code
    customer = invoice.content.customer
    facts = [
        ("Credit note number", note.number.number),
        ("Issue date", day(note.create_time)),
        ("Credits invoice", note.invoice_number),
        ("Reason", note.reason.value.replace("_", " ").title()),
        ("Customer", customer.customer_id),
        ("Status", note.state.value.title()),
    ]
    if note.refund:
        facts.append(("Refund", note.refund.rsplit("/", 1)[-1]))
    return DocumentView(
        title="Credit note",
        number=note.number.number,
        file_stem=note.number.number,
        watermark="VOID" if note.state is CreditNoteState.VOID else "",
        issuer=note.tenant,
        facts=tuple(facts),
        bill_to=_address(
            customer.display_name or customer.customer_id, invoice.content.billing_address
        ),
        ship_to=(),
        lines=tuple(
            LineView(
                description=line.description,
                sku="",
                quantity=str(line.quantity) if line.quantity else "",
                unit_price="",
                discount="",
                net=amount(line.net_amount, cur),
                tax=amount(line.tax_amount, cur),
                total=amount(line.total, cur),
            )
            for line in note.lines
        ),
        taxes=_taxes(note.tax_breakdown, cur),
        totals=(
            ("Credited net", amount(note.subtotal, cur)),
            ("Credited tax", amount(note.tax_total, cur)),
            ("Total credited", amount(note.total, cur)),
        ),
        memo=note.memo,
    )
