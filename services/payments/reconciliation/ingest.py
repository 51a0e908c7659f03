"""Strict ingest of a PSP settlement report (CSV) into settlement records.

Nothing is skipped: every malformed line is reported with its line number and column, all of
them at once, and the report is refused as a whole. Two amount styles are accepted, chosen by
the header: integer minor units (`gross_minor,fee_minor,net_minor`, the sandbox's format) or
exact decimals (`gross,fee,net`), converted by the currency's ISO 4217 exponent and refused
when finer than its minor unit.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from services.chassis.card_data import looks_like_card_number
from services.payments.domain.reconciliation import RecordType, SettlementRecord
from services.payments.domain.reconciliation_currency import (
    AmountFormatError,
    CurrencyError,
    to_minor_units,
)

INT64_MAX = 2**63 - 1
MAX_ERRORS = 100
"""Errors listed in one refusal; more are counted, not listed."""

TEXT_COLUMNS = ("settlement_date", "line_id", "type", "reference", "authorization", "currency")
MINOR_COLUMNS = ("gross_minor", "fee_minor", "net_minor")
DECIMAL_COLUMNS = ("gross", "fee", "net")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]*)$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_OPERATION_TYPES = (RecordType.CAPTURE, RecordType.REFUND, RecordType.CHARGEBACK)


@dataclass(frozen=True, slots=True)
class LineError:
    """One problem: 1-based physical line number, the column (header name), what is wrong."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class SettlementReportError(ValueError):
    """The settlement report cannot be read; `errors` says where and why, line by line."""

    def __init__(self, source: str, errors: list[LineError], total: int | None = None) -> None:
        self.source = source
        self.errors = tuple(errors)
        self.total = total if total is not None else len(errors)
        more = self.total - len(self.errors)
        listed = "\n".join(f"  {e}" for e in self.errors)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"settlement report {source} is malformed:\n{listed}{tail}")


@dataclass(frozen=True, slots=True)
class _Layout:
    header: tuple[str, ...]
    amounts: tuple[str, str, str]
    decimal: bool


def _layout(header: list[str], errors: list[LineError]) -> _Layout | None:
    names = [name.strip() for name in header]
    if names != header:
        errors.append(LineError(1, "", "column names must not have surrounding spaces"))
        return None
    seen = set()
    for name in names:
        if name in seen:
            errors.append(LineError(1, name, "column appears twice"))
        seen.add(name)
    has_minor = seen.issuperset(MINOR_COLUMNS)
    has_decimal = seen.issuperset(DECIMAL_COLUMNS)
    if has_minor == has_decimal:
        errors.append(
            LineError(
                1,
                "",
                "the header needs amounts either as gross_minor,fee_minor,net_minor "
                "or as gross,fee,net (exactly one of the two)",
            )
        )
        return None
    amounts = DECIMAL_COLUMNS if has_decimal else MINOR_COLUMNS
    expected = {*TEXT_COLUMNS, *amounts}
    errors += [
        LineError(1, name, "required column is missing")
        for name in TEXT_COLUMNS
        if name not in seen
    ]
    errors += [LineError(1, name, "unknown column") for name in names if name not in expected]
    if errors:
        return None
    return _Layout(tuple(names), amounts, has_decimal)


class _Row:
    """Field access for one row that records an error instead of raising."""

    def __init__(self, line: int, values: dict[str, str], errors: list[LineError]) -> None:
        self.line = line
        self.values = values
        self.errors = errors

    def fail(self, column: str, message: str) -> None:
        self.errors.append(LineError(self.line, column, message))

    def text(
        self, column: str, pattern: re.Pattern[str] | None = None, *, required: bool = True
    ) -> str:
        value = self.values[column]
        if value != value.strip():
            self.fail(column, "has surrounding spaces")
        elif not value and required:
            self.fail(column, "is empty")
        elif value and pattern is not None and not pattern.match(value):
            self.fail(column, f"{value!r} is not a valid {column}")
        return value

    def settlement_date(self) -> date | None:
        value = self.text("settlement_date", _DATE)
        try:
            return date.fromisoformat(value) if _DATE.match(value) else None
        except ValueError:
            self.fail("settlement_date", f"{value!r} is not a calendar date (YYYY-MM-DD)")
            return None

    def record_type(self) -> RecordType | None:
        value = self.values["type"]
        try:
            return RecordType(value)
        except ValueError:
            kinds = ", ".join(t.value for t in RecordType)
            self.fail("type", f"{value!r} is not one of {kinds}")
            return None

    def amount(self, column: str, currency: str | None, *, decimal: bool) -> int | None:
        value = self.values[column]
        if decimal:
            if currency is None:
                return None  # the currency error is already reported
            try:
                minor = to_minor_units(value, currency)
            except AmountFormatError as exc:
                self.fail(column, "is not a valid amount" if _card_like(value) else str(exc))
                return None
        elif not _INTEGER.match(value):
            self.fail(column, f"{_shown(value)} is not an integer number of minor units")
            return None
        else:
            minor = int(value)
        if abs(minor) > INT64_MAX:
            self.fail(column, "is outside the 64-bit range of minor units")
            return None
        return minor


def _card_like(value: str) -> bool:
    return looks_like_card_number(value)


def _shown(value: str) -> str:
    """`value` quoted for an error message, unless it could be a card number."""
    return "the value" if _card_like(value) else repr(value)


def _check_signs(
    row: _Row, kind: RecordType, gross: int, fee: int, columns: tuple[str, ...]
) -> None:
    gross_column, fee_column, _ = columns
    if kind is RecordType.CAPTURE and gross <= 0:
        row.fail(gross_column, "a capture settles a positive gross amount")
    if kind in (RecordType.REFUND, RecordType.CHARGEBACK) and gross >= 0:
        row.fail(gross_column, f"a {kind.value} settles a negative gross amount")
    if kind is RecordType.FEE and gross != 0:
        row.fail(gross_column, "a fee line has no gross amount (0)")
    if kind is RecordType.FEE and fee == 0:
        row.fail(fee_column, "a fee line needs a fee")


def _record(row: _Row, layout: _Layout) -> SettlementRecord | None:
    errors_before = len(row.errors)
    # Amount columns hold numbers, which may pass the card check by chance (a 13-19 digit
    # amount is legitimate in int64); they are parsed as numbers and never echoed when
    # card-like. Every other column is refused outright.
    for column, value in row.values.items():
        if column not in layout.amounts and _card_like(value):
            row.fail(column, "looks like a card number; refused (the value is not repeated)")
    if len(row.errors) > errors_before:
        return None
    settled = row.settlement_date()
    line_id = row.text("line_id", _ID)
    kind = row.record_type()
    needs_references = kind in _OPERATION_TYPES
    reference = row.text("reference", _ID, required=needs_references)
    authorization = row.text("authorization", _ID, required=needs_references)
    currency_text = row.text("currency")
    currency: str | None = currency_text
    try:
        to_minor_units("0", currency_text)
    except CurrencyError as exc:
        row.fail("currency", str(exc))
        currency = None
    gross_c, fee_c, net_c = layout.amounts
    gross = row.amount(gross_c, currency, decimal=layout.decimal)
    fee = row.amount(fee_c, currency, decimal=layout.decimal)
    net = row.amount(net_c, currency, decimal=layout.decimal)
    if gross is not None and fee is not None and net is not None:
        if net != gross - fee:
            row.fail(net_c, f"net {_shown(row.values[net_c])} is not gross - fee")
        if kind is not None:
            _check_signs(row, kind, gross, fee, layout.amounts)
    parsed = (settled, kind, currency, gross, fee, net)
    if len(row.errors) > errors_before or any(part is None for part in parsed):
        return None
    assert settled is not None
    assert kind is not None
    assert currency is not None
    assert gross is not None
    assert fee is not None
    assert net is not None
    return SettlementRecord(
        record_id=line_id,
        line_number=row.line,
        settlement_date=settled,
        type=kind,
        psp_reference=reference,
        payment_reference=authorization,
        currency=currency,
        gross_minor=gross,
        fee_minor=fee,
        net_minor=net,
    )


def _same_line(a: SettlementRecord, b: SettlementRecord) -> bool:
    return (a.settlement_date, a.type, a.psp_reference, a.payment_reference, a.currency) == (
        b.settlement_date,
        b.type,
        b.psp_reference,
        b.payment_reference,
        b.currency,
    ) and (a.gross_minor, a.fee_minor) == (b.gross_minor, b.fee_minor)


def parse_settlement_csv(text: str, *, source: str = "<report>") -> list[SettlementRecord]:
    """Every line of the report as a record, or SettlementReportError listing every problem.

    A line repeated verbatim (same line id, same values) is kept twice: that is a duplicate
    settlement for reconciliation to report. The same line id with other values is a
    malformed report.
    """
    errors: list[LineError] = []
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise SettlementReportError(source, [LineError(1, "", "the report is empty")])
        layout = _layout(header, errors)
        if layout is None:
            raise SettlementReportError(source, errors)
        records = _rows(reader, layout, errors)
    except csv.Error as exc:
        errors.append(LineError(reader.line_num, "", f"not valid CSV: {exc}"))
        records = []
    if errors:
        raise SettlementReportError(source, errors[:MAX_ERRORS], total=len(errors))
    return records


class _LineReader(Protocol):
    """What `csv.reader` returns: rows, and the physical line it has read up to."""

    @property
    def line_num(self) -> int: ...

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


def _rows(reader: _LineReader, layout: _Layout, errors: list[LineError]) -> list[SettlementRecord]:
    records: list[SettlementRecord] = []
    by_id: dict[str, SettlementRecord] = {}
    for fields in reader:
        line = reader.line_num
        if not fields:
            errors.append(LineError(line, "", "blank line"))
            continue
        if len(fields) != len(layout.header):
            errors.append(
                LineError(
                    line, "", f"has {len(fields)} fields, the header has {len(layout.header)}"
                )
            )
            continue
        record = _record(_Row(line, dict(zip(layout.header, fields, strict=True)), errors), layout)
        if record is None:
            continue
        first = by_id.setdefault(record.record_id, record)
        if first is not record and not _same_line(first, record):
            errors.append(
                LineError(
                    line,
                    "line_id",
                    f"{record.record_id!r} is already line {first.line_number} with other values",
                )
            )
            continue
        records.append(record)
    return records
