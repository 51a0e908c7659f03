"""Customer documents: an invoice or a credit note as HTML (Jinja2) or PDF (ReportLab)."""

from __future__ import annotations

from dataclasses import dataclass

from services.invoicing.domain.credit_notes import CreditNote
from services.invoicing.domain.invoices import Invoice
from services.invoicing.rendering import html, pdf
from services.invoicing.rendering.view import credit_note_view, invoice_view

PDF = "application/pdf"
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Document:
    content_type: str
    data: bytes
    file_name: str


def render_invoice(invoice: Invoice, *, as_html: bool = False) -> Document:
    view = invoice_view(invoice)
    if as_html:
        return Document(HTML, html.render(view).encode(), f"{view.file_stem}.html")
    return Document(PDF, pdf.render(view), f"{view.file_stem}.pdf")


def render_credit_note(note: CreditNote, invoice: Invoice, *, as_html: bool = False) -> Document:
    view = credit_note_view(note, invoice)
    if as_html:
        return Document(HTML, html.render(view).encode(), f"{view.file_stem}.html")
    return Document(PDF, pdf.render(view), f"{view.file_stem}.pdf")
