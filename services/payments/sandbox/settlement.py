"""The settlement report as CSV: one line per capture or refund settled in the period."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from services.payments.sandbox.books import SettlementEntry

COLUMNS = (
    "settlement_date",
    "line_id",
    "type",
    "reference",
    "authorization",
    "currency",
    "gross_minor",
    "fee_minor",
    "net_minor",
)


def render_csv(entries: Iterable[SettlementEntry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in entries:
        writer.writerow(
            (
                e.settlement_date.isoformat(),
                e.line_id,
                e.type,
                e.reference,
                e.authorization,
                e.currency,
                e.gross_minor,
                e.fee_minor,
                e.net_minor,
            )
        )
    return buffer.getvalue()
