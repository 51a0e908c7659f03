"""Reconciliation results as commerce.payments.v1 reconciliation messages, for the servicer."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from commerce.payments.v1 import reconciliation_pb2 as pb
from commerce.type.v1.money_pb2 import Money
from services.payments.domain.reconciliation import (
    Amount,
    CurrencyTotal,
    Difference,
    DifferenceKind,
    Period,
    Reconciliation,
    ReportState,
    Side,
)

_KINDS = {
    DifferenceKind.MISSING_IN_PSP: pb.RECONCILIATION_DIFFERENCE_KIND_MISSING_IN_PSP,
    DifferenceKind.MISSING_IN_PAYMENTS: pb.RECONCILIATION_DIFFERENCE_KIND_MISSING_IN_PAYMENTS,
    DifferenceKind.MISSING_IN_LEDGER: pb.RECONCILIATION_DIFFERENCE_KIND_MISSING_IN_LEDGER,
    DifferenceKind.DUPLICATE: pb.RECONCILIATION_DIFFERENCE_KIND_DUPLICATE,
    DifferenceKind.AMOUNT_MISMATCH: pb.RECONCILIATION_DIFFERENCE_KIND_AMOUNT_MISMATCH,
    DifferenceKind.CURRENCY_MISMATCH: pb.RECONCILIATION_DIFFERENCE_KIND_CURRENCY_MISMATCH,
}
_SOURCES = {
    Side.SETTLEMENT_REPORT: pb.RECONCILIATION_SOURCE_SETTLEMENT_REPORT,
    Side.LEDGER: pb.RECONCILIATION_SOURCE_LEDGER,
    Side.PAYMENTS: pb.RECONCILIATION_SOURCE_PAYMENTS,
}
_STATES = {
    ReportState.RUNNING: pb.RECONCILIATION_STATE_RUNNING,
    ReportState.SUCCEEDED: pb.RECONCILIATION_STATE_SUCCEEDED,
    ReportState.FAILED: pb.RECONCILIATION_STATE_FAILED,
}


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _money(amount: Amount) -> Money:
    return Money(currency_code=amount.currency, amount_minor=amount.minor)


def difference_message(difference: Difference) -> pb.ReconciliationDifference:
    message = pb.ReconciliationDifference(
        kind=_KINDS[difference.kind],
        payment=difference.payment,
        refund=difference.refund,
        psp_reference=difference.psp_reference,
        settlement_record_id=difference.settlement_record_id,
        journal_entry=difference.journal_entry,
        actual_source=_SOURCES[difference.source],
        occurrences=difference.occurrences,
        description=difference.description,
    )
    if difference.expected is not None:
        message.expected.CopyFrom(_money(difference.expected))
    if difference.actual is not None:
        message.actual.CopyFrom(_money(difference.actual))
    return message


def total_message(total: CurrencyTotal) -> pb.ReconciliationTotal:
    return pb.ReconciliationTotal(
        payments_amount=_money(Amount(total.payments_minor, total.currency)),
        settlement_amount=_money(Amount(total.settlement_minor, total.currency)),
        ledger_amount=_money(Amount(total.ledger_minor, total.currency)),
        settlement_fees=_money(Amount(total.settlement_fees_minor, total.currency)),
    )


def report_message(
    *,
    name: str,
    psp: str,
    period: Period,
    settlement_report: str,
    state: ReportState,
    create_time: datetime,
    complete_time: datetime | None = None,
    failure_reason: str = "",
    result: Reconciliation | None = None,
) -> pb.ReconciliationReport:
    """The FULL view of a report; `result` is set once the run SUCCEEDED.

    Store this message (serialized) as the report; `with_view` derives the BASIC view.
    """
    report = pb.ReconciliationReport(
        name=name,
        psp=psp,
        start_time=_timestamp(period.start),
        end_time=_timestamp(period.end),
        settlement_report=settlement_report,
        state=_STATES[state],
        failure_reason=failure_reason,
        create_time=_timestamp(create_time),
    )
    if complete_time is not None:
        report.complete_time.CopyFrom(_timestamp(complete_time))
    if result is not None:
        report.payment_operations_checked = result.payment_operations_checked
        report.settlement_records_checked = result.settlement_records_checked
        report.ledger_entries_checked = result.ledger_entries_checked
        report.matched_count = result.matched_count
        report.difference_count = result.difference_count
        report.totals.extend(total_message(t) for t in result.totals)
        report.differences.extend(difference_message(d) for d in result.differences)
    return report


def with_view(
    report: pb.ReconciliationReport,
    view: pb.ReconciliationReportView.ValueType,
    *,
    default: pb.ReconciliationReportView.ValueType,
) -> pb.ReconciliationReport:
    """`report` as `view` asks (UNSPECIFIED means the method's `default`): BASIC drops
    `differences`, keeping `difference_count`."""
    chosen = default if view == pb.RECONCILIATION_REPORT_VIEW_UNSPECIFIED else view
    if chosen != pb.RECONCILIATION_REPORT_VIEW_BASIC:
        return report
    basic = pb.ReconciliationReport()
    basic.CopyFrom(report)
    basic.ClearField("differences")
    return basic
