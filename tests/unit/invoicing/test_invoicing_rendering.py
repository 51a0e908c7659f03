"""Rendering: the PDF parses and shows the number, lines and totals; HTML is escaped; drafts
and void documents are watermarked; the committed samples are what the script renders."""

import io
from pathlib import Path

from pypdf import PdfReader

from services.invoicing.domain.invoices import (
    Customer,
    DraftContent,
    Invoice,
    InvoiceLine,
    InvoiceSource,
)
from services.invoicing.rendering import render_credit_note, render_invoice
from services.invoicing.samples import ISSUED, sample_credit_note, sample_invoice, write

SAMPLES = Path(__file__).resolve().parents[3] / "docs" / "samples"


def text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_invoice_pdf_shows_number_lines_tax_and_totals():
    invoice = sample_invoice()
    document = render_invoice(invoice)
    assert document.content_type == "application/pdf"
    assert document.file_name == "INV-2026-000123.pdf"
    content = text(document.data)
    for expected in (
        "INV-2026-000123",
        "Analytical Engine punch cards",
        "Notes on the Analytical Engine",
        "Express shipping",
        "EUR 59.97",  # line net
        "VAT 19% (DE)",
        "VAT 7% (DE)",
        "EUR 12.51",  # tax at 19 %
        "EUR 102.46",  # total
        "Balance due",
        "Ada Lovelace",
    ):
        assert expected in content, expected
    assert invoice.total == 10246
    metadata = PdfReader(io.BytesIO(document.data)).metadata
    assert metadata is not None
    assert metadata.title == "Invoice INV-2026-000123"


def test_the_credit_note_pdf_names_the_invoice_and_the_credited_amount():
    invoice = sample_invoice()
    note = sample_credit_note(invoice)
    content = text(render_credit_note(note, invoice).data)
    for expected in ("CN-2026-000007", "INV-2026-000123", "EUR 23.78", "Refund", "ref-0001"):
        assert expected in content, expected


def test_a_draft_is_watermarked_and_unnumbered_and_html_is_escaped():
    draft = Invoice(
        "acme",
        "d1",
        InvoiceSource.MANUAL,
        "JPY",
        DraftContent(Customer("c"), (InvoiceLine.priced("1", "<b>Tea</b> & cake", 2, 1500),)),
        ISSUED,
        ISSUED,
    )
    pdf = render_invoice(draft)
    assert pdf.file_name == "draft-d1.pdf"
    content = text(pdf.data)
    assert "DRAFT" in content
    assert "JPY 3,000" in content  # zero-decimal currency
    html = render_invoice(draft, as_html=True)
    assert html.content_type == "text/html; charset=utf-8"
    body = html.data.decode()
    assert "&lt;b&gt;Tea&lt;/b&gt; &amp; cake" in body
    assert "<b>Tea</b>" not in body
    assert "DRAFT" in body


def test_rendering_is_deterministic_and_the_committed_samples_are_current(tmp_path):
    written = {path.name: path.read_bytes() for path in write(tmp_path)}
    again = {path.name: path.read_bytes() for path in write(tmp_path / "again")}
    assert written == again
    for name, data in written.items():
        assert (SAMPLES / name).read_bytes() == data, (
            f"regenerate: python -m services.invoicing.samples ({name})"
        )
