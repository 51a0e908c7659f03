"""The reconciliation report for people: a plain-text table, or JSON for tools.

Amounts are shown both as integer minor units (the truth) and, in the table, as decimals by
the currency's ISO 4217 exponent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.payments.domain.reconciliation import Amount, Difference, Period, Reconciliation
from services.payments.domain.reconciliation_currency import CurrencyError, format_minor_units
from services.payments.domain.reconciliation_postings import SettlementJournalEntry


def _decimal(minor: int, currency: str) -> str:
    try:
        return f"{format_minor_units(minor, currency)} {currency}"
    except CurrencyError:
        return f"{minor} {currency} (minor units)"


def _amount(amount: Amount | None) -> str:
    return "-" if amount is None else _decimal(amount.minor, amount.currency)


def _money_json(amount: Amount | None) -> dict[str, Any] | None:
    if amount is None:
        return None
    return {"currency": amount.currency, "amount_minor": amount.minor}


def _difference_json(d: Difference) -> dict[str, Any]:
    return {
        "kind": d.kind.value,
        "source": d.source.value,
        "payment": d.payment,
        "refund": d.refund,
        "psp_reference": d.psp_reference,
        "settlement_record_id": d.settlement_record_id,
        "journal_entry": d.journal_entry,
        "expected": _money_json(d.expected),
        "actual": _money_json(d.actual),
        "occurrences": d.occurrences,
        "description": d.description,
    }


def report_json(
    result: Reconciliation,
    period: Period,
    settlement_report: str,
    planned: Sequence[SettlementJournalEntry] = (),
) -> dict[str, Any]:
    """The report as a JSON-ready dict (amounts as integer minor units)."""
    return {
        "psp": result.psp,
        "start_time": period.start.isoformat(),
        "end_time": period.end.isoformat(),
        "settlement_report": settlement_report,
        "payment_operations_checked": result.payment_operations_checked,
        "settlement_records_checked": result.settlement_records_checked,
        "ledger_entries_checked": result.ledger_entries_checked,
        "matched_count": result.matched_count,
        "difference_count": result.difference_count,
        "totals": [
            {
                "currency": t.currency,
                "payments_minor": t.payments_minor,
                "settlement_minor": t.settlement_minor,
                "ledger_minor": t.ledger_minor,
                "settlement_fees_minor": t.settlement_fees_minor,
            }
            for t in result.totals
        ],
        "differences": [_difference_json(d) for d in result.differences],
        "settlement_entries": [
            {
                "entry_id": e.entry_id,
                "request_id": e.request_id,
                "kind": e.kind.value,
                "description": e.description,
                "postings": [
                    {"account": p.account, "currency": p.currency, "amount_minor": p.amount_minor}
                    for p in e.postings
                ],
            }
            for e in planned
        ],
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return out


def report_table(
    result: Reconciliation,
    period: Period,
    settlement_report: str,
    planned: Sequence[SettlementJournalEntry] = (),
) -> str:
    lines = [
        f"Reconciliation of {result.psp}, {period.start.isoformat()} to {period.end.isoformat()}",
        f"Settlement report: {settlement_report}",
        (
            f"Checked: {result.payment_operations_checked} payment operations, "
            f"{result.settlement_records_checked} settlement lines, "
            f"{result.ledger_entries_checked} ledger entries"
        ),
        f"Matched on all three sides: {result.matched_count}",
        f"Differences: {result.difference_count}",
        "",
    ]
    lines += _table(
        ("currency", "payments", "settlement", "ledger", "PSP fees"),
        [
            (
                t.currency,
                _decimal(t.payments_minor, t.currency),
                _decimal(t.settlement_minor, t.currency),
                _decimal(t.ledger_minor, t.currency),
                _decimal(t.settlement_fees_minor, t.currency),
            )
            for t in result.totals
        ],
    )
    if result.differences:
        lines.append("")
        lines += _table(
            (
                "kind",
                "source",
                "payment / refund",
                "PSP ref",
                "line",
                "entry",
                "expected",
                "actual",
            ),
            [
                (
                    d.kind.value,
                    d.source.value,
                    d.refund or d.payment or "-",
                    d.psp_reference or "-",
                    d.settlement_record_id or "-",
                    d.journal_entry or "-",
                    _amount(d.expected),
                    _amount(d.actual),
                )
                for d in result.differences
            ],
        )
        lines.append("")
        lines += [f"- {d.kind.value}: {d.description}" for d in result.differences]
    if planned:
        lines.append("")
        lines.append(f"Settlement entries to post: {len(planned)}")
        lines += [f"  {e.entry_id}  {e.description}" for e in planned]
    return "\n".join(lines) + "\n"
