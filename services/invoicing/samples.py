"""`python -m services.invoicing.samples [out_dir]`: render the committed sample documents
(docs/samples/invoice.pdf|png, credit-note.pdf|png) from fixed data, byte for byte the same on
every run with the pinned ReportLab, pypdfium2 and Pillow."""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2  # type: ignore[import-untyped]

from services.invoicing.domain.credit_notes import (
    CreditNote,
    CreditNoteReason,
    LineCredit,
    credit_lines,
)
from services.invoicing.domain.invoices import (
    Address,
    Customer,
    DraftContent,
    Invoice,
    InvoiceLine,
    InvoicePayment,
    InvoiceSource,
    Number,
    TaxRate,
)
from services.invoicing.rendering import render_credit_note, render_invoice

ISSUED = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
VAT = TaxRate("DE", "VAT", 190000)
REDUCED = TaxRate("DE", "VAT", 70000)
PNG_SCALE = 1.5  # 1.5 x 72 dpi: readable on screen, small enough to commit


def sample_invoice() -> Invoice:
    billing = Address(
        region_code="DE",
        locality="Berlin",
        postal_code="10115",
        address_lines=("Invalidenstrasse 117",),
        recipient="Ada Lovelace",
    )
    content = DraftContent(
        customer=Customer("cust-1815", "ada@example.com", "Ada Lovelace"),
        lines=(
            InvoiceLine.priced(
                "1",
                "Analytical Engine punch cards (box of 500)",
                3,
                1999,
                sku="AE-CARDS-500",
                rates=[VAT],
            ),
            InvoiceLine.priced(
                "2",
                "Notes on the Analytical Engine (hardcover)",
                1,
                2500,
                sku="BOOK-NOTES",
                discount_amount=250,
                rates=[REDUCED],
            ),
            InvoiceLine.priced("3", "Express shipping", 1, 590, sku="SHIP-EXP", rates=[VAT]),
        ),
        billing_address=billing,
        shipping_address=billing,
        memo="Paid by card at checkout. Thank you for your order!",
    )
    invoice = Invoice(
        tenant="acme-store",
        invoice_id="7b0d0dc87d3852358c64ea115193ea8e",
        source=InvoiceSource.CHECKOUT,
        currency_code="EUR",
        content=content,
        create_time=ISSUED,
        update_time=ISSUED,
        order="tenants/acme-store/orders/ord-20260302-0042",
    )
    invoice.issue(Number("INV-2026-000123", "INV/2026", 123), ISSUED)
    invoice.record_payment(
        InvoicePayment(
            "tenants/acme-store/payments/pay-0042",
            invoice.total,
            ISSUED,
            capture_reference="psp-8841",
        ),
        ISSUED,
    )
    return invoice


def sample_credit_note(invoice: Invoice) -> CreditNote:
    issued = ISSUED + timedelta(days=5)
    lines = credit_lines(invoice, [LineCredit("1", quantity=1)], {})
    note = CreditNote(
        tenant=invoice.tenant,
        invoice_id=invoice.invoice_id,
        credit_note_id="0c5b1f7e2a9d4e6f8a1b3c5d7e9f0a2b",
        number=Number("CN-2026-000007", "CN/2026", 7),
        invoice_number="INV-2026-000123",
        reason=CreditNoteReason.REFUND,
        currency_code=invoice.currency_code,
        lines=lines,
        create_time=issued,
        update_time=issued,
        memo="One box returned unopened; refunded to the original card.",
        refund="tenants/acme-store/payments/pay-0042/refunds/ref-0001",
    )
    invoice.apply_credit(note.total, issued)
    return note


def png(pdf: bytes) -> bytes:
    """The first page as PNG."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=PNG_SCALE).to_pil()
    finally:
        document.close()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def write(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    invoice = sample_invoice()
    invoice_pdf = render_invoice(invoice).data
    note = sample_credit_note(sample_invoice())
    note_pdf = render_credit_note(note, invoice).data
    files = {
        "invoice.pdf": invoice_pdf,
        "invoice.png": png(invoice_pdf),
        "credit-note.pdf": note_pdf,
        "credit-note.png": png(note_pdf),
    }
    written = []
    for name, data in files.items():
        path = out_dir / name
        path.write_bytes(data)
        written.append(path)
    return written


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/samples")
    for path in write(out_dir):
        sys.stdout.write(f"wrote {path}\n")


if __name__ == "__main__":
    main()
