"""ListInvoices' filter: an AIP-160 subset of `field = value` terms joined by ` AND `."""

from __future__ import annotations

import re
from dataclasses import replace

from services.invoicing.domain import errors
from services.invoicing.domain.invoices import InvoiceSource, InvoiceState
from services.invoicing.domain.ports import InvoiceFilter

_TERM = re.compile(r'^\s*(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[A-Z_]+)\s*$')


def parse_filter(text: str) -> InvoiceFilter:
    where = InvoiceFilter()
    if not text.strip():
        return where
    for term in text.split(" AND "):
        match = _TERM.match(term)
        if match is None:
            raise errors.invalid_filter(f"cannot read {term.strip()!r}")
        field, raw = match.groups()
        quoted = raw.startswith('"')
        value = raw[1:-1].replace('\\"', '"') if quoted else raw
        where = _with(where, field, value, quoted=quoted)
    return where


def _with(where: InvoiceFilter, field: str, value: str, *, quoted: bool) -> InvoiceFilter:
    if field == "state" and not quoted:
        try:
            return replace(where, state=InvoiceState(value.removeprefix("INVOICE_STATE_")))
        except ValueError:
            raise errors.invalid_filter(f"unknown state {value}") from None
    if field == "source" and not quoted:
        try:
            return replace(where, source=InvoiceSource(value.removeprefix("INVOICE_SOURCE_")))
        except ValueError:
            raise errors.invalid_filter(f"unknown source {value}") from None
    if quoted and field == "customer_id":
        return replace(where, customer_id=value)
    if quoted and field == "order":
        return replace(where, order=value)
    if quoted and field == "number":
        return replace(where, number=value)
    raise errors.invalid_filter(f"cannot filter on {field} = {value}")
