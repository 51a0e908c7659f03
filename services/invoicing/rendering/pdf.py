"""The PDF document, laid out with ReportLab's platypus; byte-for-byte deterministic
(`invariant`: no creation date or random document id), so samples can be committed."""

from __future__ import annotations

import io
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.invoicing.rendering.view import DocumentView

_STYLES = getSampleStyleSheet()
_BODY = _STYLES["BodyText"]
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=8, leading=10)
_RIGHT = ParagraphStyle("right", parent=_SMALL, alignment=TA_RIGHT)
_TITLE = ParagraphStyle("title", parent=_STYLES["Title"], alignment=TA_LEFT)
_GRID = colors.HexColor("#BBBBBB")


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _header(view: DocumentView) -> Table:
    facts = Table(
        [
            [Paragraph(f"<b>{_esc(k)}</b>", _SMALL), Paragraph(_esc(v), _SMALL)]
            for k, v in view.facts
        ],
        colWidths=[35 * mm, 55 * mm],
    )
    title = [Paragraph(_esc(view.title), _TITLE), Paragraph(_esc(view.issuer), _BODY)]
    table = Table([[title, facts]], colWidths=[85 * mm, 95 * mm])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _parties(view: DocumentView) -> Table:
    def block(title: str, lines: tuple[str, ...]) -> list[Paragraph]:
        return [Paragraph(f"<b>{title}</b>", _SMALL)] + [Paragraph(_esc(x), _SMALL) for x in lines]

    cells: list[Any] = [block("Bill to", view.bill_to)]
    if view.ship_to:
        cells.append(block("Ship to", view.ship_to))
    return Table([cells], colWidths=[90 * mm] * len(cells), hAlign="LEFT")


def _lines(view: DocumentView) -> Table:
    head = ["Description", "Qty", "Unit price", "Discount", "Net", "Tax", "Total"]
    rows: list[list[Any]] = [
        [Paragraph(f"<b>{h}</b>", _SMALL if i == 0 else _RIGHT) for i, h in enumerate(head)]
    ]
    for line in view.lines:
        sku = f" <font size=7 color='#666666'>({_esc(line.sku)})</font>" if line.sku else ""
        rows.append(
            [Paragraph(_esc(line.description) + sku, _SMALL)]
            + [
                Paragraph(_esc(v), _RIGHT)
                for v in (
                    line.quantity,
                    line.unit_price,
                    line.discount,
                    line.net,
                    line.tax,
                    line.total,
                )
            ]
        )
    table = Table(
        rows,
        colWidths=[52 * mm, 12 * mm, 24 * mm, 22 * mm, 24 * mm, 22 * mm, 24 * mm],
        repeatRows=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                ("LINEBELOW", (0, 1), (-1, -1), 0.25, _GRID),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _taxes(view: DocumentView) -> Table:
    rows: list[list[Any]] = [
        [
            Paragraph("<b>Tax breakdown</b>", _SMALL),
            Paragraph("<b>Taxable</b>", _RIGHT),
            Paragraph("<b>Tax</b>", _RIGHT),
        ]
    ]
    rows += [
        [Paragraph(_esc(t.label), _SMALL), Paragraph(t.taxable, _RIGHT), Paragraph(t.tax, _RIGHT)]
        for t in view.taxes
    ]
    table = Table(rows, colWidths=[60 * mm, 30 * mm, 30 * mm], hAlign="LEFT")
    table.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black)]))
    return table


def _totals(view: DocumentView) -> Table:
    rows = [[Paragraph(_esc(k), _SMALL), Paragraph(_esc(v), _RIGHT)] for k, v in view.totals]
    table = Table(rows, colWidths=[40 * mm, 35 * mm], hAlign="RIGHT")
    table.setStyle(
        TableStyle(
            [
                ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
            ]
        )
    )
    return table


def render(view: DocumentView) -> bytes:
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=f"{view.title} {view.number}".strip(),
        author=view.issuer,
        subject=view.title,
        creator="Commerce Mesh invoicing",
        invariant=1,
    )

    def decorate(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.grey)
        canvas.drawString(15 * mm, 8 * mm, f"{view.title} {view.number}".strip())
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"Page {doc.page}")
        if view.watermark:
            canvas.setFont("Helvetica-Bold", 96)
            canvas.setFillColor(colors.Color(0.8, 0.2, 0.2, alpha=0.18))
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(40)
            canvas.drawCentredString(0, 0, view.watermark)
        canvas.restoreState()

    story: list[Any] = [
        _header(view),
        Spacer(1, 8 * mm),
        _parties(view),
        Spacer(1, 8 * mm),
        _lines(view),
    ]
    if view.taxes:
        story += [Spacer(1, 6 * mm), _taxes(view)]
    story += [Spacer(1, 6 * mm), _totals(view)]
    if view.memo:
        story += [Spacer(1, 8 * mm), Paragraph(_esc(view.memo).replace("\n", "<br/>"), _SMALL)]
    document.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()
