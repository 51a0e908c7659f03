"""Reconciliation to and from protos: report messages, views, and the gRPC sources' mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from commerce.ledger.v1 import resources_pb2 as lres
from commerce.payments.v1 import reconciliation_pb2 as pb
from commerce.payments.v1 import resources_pb2 as pres
from commerce.type.v1.money_pb2 import Money
from services.payments.domain.reconciliation import (
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    Period,
    RecordType,
    ReportState,
    SettlementRecord,
    reconcile,
)
from services.payments.reconciliation.grpc_sources import captures_of, ledger_entry_of, refund_of
from services.payments.reconciliation.messages import report_message, with_view

T0 = datetime(2026, 11, 20, tzinfo=UTC)
PERIOD = Period(T0, T0 + timedelta(days=1))
PAYMENT = "tenants/acme/payments/p1"


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def usd(minor: int) -> Money:
    return Money(currency_code="USD", amount_minor=minor)


def result_with_every_field():
    op = PaymentOperation(
        operation_id=f"{PAYMENT}/refunds/r1",
        kind=OperationKind.REFUND,
        payment=PAYMENT,
        refund=f"{PAYMENT}/refunds/r1",
        payment_reference="sbx_auth_1",
        psp_reference="sbx_re_1",
        amount_minor=2_500,
        currency="USD",
    )
    line = SettlementRecord(
        record_id="sl_1",
        line_number=2,
        settlement_date=T0.date(),
        type=RecordType.REFUND,
        psp_reference="sbx_re_1",
        payment_reference="sbx_auth_1",
        currency="USD",
        gross_minor=-2_501,
        fee_minor=0,
        net_minor=-2_501,
    )
    entry = LedgerEntry(
        entry="tenants/acme/entries/e1",
        operation_id=op.operation_id,
        kind=OperationKind.REFUND,
        payment=PAYMENT,
        amount_minor=2_500,
        currency="USD",
    )
    return reconcile(psp="sandbox", records=[line, line], operations=[op], ledger_entries=[entry])


def test_a_succeeded_report_carries_counts_totals_and_every_difference_field():
    result = result_with_every_field()
    report = report_message(
        name="tenants/acme/reconciliationReports/r-1",
        psp="sandbox",
        period=PERIOD,
        settlement_report="http://127.0.0.1:1/v1/settlements",
        state=ReportState.SUCCEEDED,
        create_time=T0 + timedelta(days=1),
        complete_time=T0 + timedelta(days=1, seconds=3),
        result=result,
    )
    assert report.state == pb.RECONCILIATION_STATE_SUCCEEDED
    assert report.start_time.ToDatetime(tzinfo=UTC) == PERIOD.start
    assert report.complete_time.ToDatetime(tzinfo=UTC) == T0 + timedelta(days=1, seconds=3)
    assert (
        report.payment_operations_checked,
        report.settlement_records_checked,
        report.ledger_entries_checked,
        report.matched_count,
        report.difference_count,
    ) == (1, 2, 1, 0, 2)
    [total] = report.totals
    assert total.payments_amount == usd(-2_500)
    assert total.settlement_amount == usd(-5_002)
    assert total.ledger_amount == usd(-2_500)
    assert total.settlement_fees == usd(0)
    by_kind = {d.kind: d for d in report.differences}
    mismatch = by_kind[pb.RECONCILIATION_DIFFERENCE_KIND_AMOUNT_MISMATCH]
    assert mismatch.payment == PAYMENT
    assert mismatch.refund == f"{PAYMENT}/refunds/r1"
    assert mismatch.psp_reference == "sbx_re_1"
    assert mismatch.settlement_record_id == "sl_1"
    assert mismatch.expected == usd(-2_500)
    assert mismatch.actual == usd(-2_501)
    assert mismatch.actual_source == pb.RECONCILIATION_SOURCE_SETTLEMENT_REPORT
    assert "off by -1" in mismatch.description
    duplicate = by_kind[pb.RECONCILIATION_DIFFERENCE_KIND_DUPLICATE]
    assert duplicate.occurrences == 2
    assert duplicate.actual == usd(-2_501)


def test_basic_view_drops_differences_but_keeps_their_count():
    full = report_message(
        name="tenants/acme/reconciliationReports/r-1",
        psp="sandbox",
        period=PERIOD,
        settlement_report="x.csv",
        state=ReportState.SUCCEEDED,
        create_time=T0,
        result=result_with_every_field(),
    )
    basic = with_view(
        full, pb.RECONCILIATION_REPORT_VIEW_BASIC, default=pb.RECONCILIATION_REPORT_VIEW_FULL
    )
    assert (len(basic.differences), basic.difference_count) == (0, 2)
    assert len(full.differences) == 2  # the stored message is untouched
    listed = with_view(
        full, pb.RECONCILIATION_REPORT_VIEW_UNSPECIFIED, default=pb.RECONCILIATION_REPORT_VIEW_BASIC
    )
    assert len(listed.differences) == 0
    got = with_view(
        full, pb.RECONCILIATION_REPORT_VIEW_UNSPECIFIED, default=pb.RECONCILIATION_REPORT_VIEW_FULL
    )
    assert len(got.differences) == 2


def test_running_and_failed_reports_have_no_result_and_failed_says_why():
    running = report_message(
        name="tenants/acme/reconciliationReports/r-2",
        psp="sandbox",
        period=PERIOD,
        settlement_report="x.csv",
        state=ReportState.RUNNING,
        create_time=T0,
    )
    assert running.state == pb.RECONCILIATION_STATE_RUNNING
    assert not running.HasField("complete_time")
    failed = report_message(
        name="tenants/acme/reconciliationReports/r-2",
        psp="sandbox",
        period=PERIOD,
        settlement_report="x.csv",
        state=ReportState.FAILED,
        create_time=T0,
        complete_time=T0,
        failure_reason="settlement report x.csv is malformed: line 3, column net_minor: ...",
    )
    assert failed.state == pb.RECONCILIATION_STATE_FAILED
    assert failed.failure_reason.startswith("settlement report x.csv is malformed")


def attempt(number, operation, outcome, minor, end):
    return pres.PaymentAttempt(
        attempt_number=number,
        operation=operation,
        outcome=outcome,
        amount=usd(minor),
        psp="sandbox",
        end_time=stamp(end),
    )


def test_captures_are_the_succeeded_capture_attempts_within_the_period():
    payment = pres.Payment(
        name=PAYMENT,
        psp="sandbox",
        psp_reference="sbx_auth_1",
        capture_method=pres.CAPTURE_METHOD_MANUAL,
        attempts=[
            attempt(
                1, pres.PAYMENT_OPERATION_AUTHORIZE, pres.ATTEMPT_OUTCOME_SUCCEEDED, 10_000, T0
            ),
            attempt(2, pres.PAYMENT_OPERATION_CAPTURE, pres.ATTEMPT_OUTCOME_ERROR, 4_000, T0),
            attempt(3, pres.PAYMENT_OPERATION_CAPTURE, pres.ATTEMPT_OUTCOME_SUCCEEDED, 4_000, T0),
            attempt(
                4,
                pres.PAYMENT_OPERATION_CAPTURE,
                pres.ATTEMPT_OUTCOME_SUCCEEDED,
                6_000,
                T0 + timedelta(days=1),  # the next period
            ),
        ],
    )
    [capture] = captures_of(payment, PERIOD)
    assert (capture.operation_id, capture.kind, capture.amount_minor) == (
        f"{PAYMENT}/captures/3",
        OperationKind.CAPTURE,
        4_000,
    )
    assert (capture.payment, capture.payment_reference, capture.psp_reference) == (
        PAYMENT,
        "sbx_auth_1",
        "",
    )


def test_an_automatic_capture_is_its_succeeded_authorization():
    payment = pres.Payment(
        name=PAYMENT,
        psp="sandbox",
        psp_reference="sbx_auth_1",
        capture_method=pres.CAPTURE_METHOD_AUTOMATIC,
        attempts=[
            attempt(1, pres.PAYMENT_OPERATION_AUTHORIZE, pres.ATTEMPT_OUTCOME_SUCCEEDED, 900, T0)
        ],
    )
    [capture] = captures_of(payment, PERIOD)
    assert (capture.operation_id, capture.amount_minor) == (f"{PAYMENT}/captures/1", 900)


def test_refunds_count_once_succeeded_within_the_period():
    payment = pres.Payment(name=PAYMENT, psp="sandbox", psp_reference="sbx_auth_1")
    done = pres.Refund(
        name=f"{PAYMENT}/refunds/r1",
        amount=usd(2_500),
        state=pres.REFUND_STATE_SUCCEEDED,
        psp_reference="sbx_re_1",
        update_time=stamp(T0 + timedelta(hours=3)),
    )
    pending = pres.Refund(
        name=f"{PAYMENT}/refunds/r2",
        amount=usd(100),
        state=pres.REFUND_STATE_PENDING,
        update_time=stamp(T0),
    )
    operation = refund_of(payment, done, PERIOD)
    assert operation is not None
    assert (operation.kind, operation.refund, operation.psp_reference, operation.amount_minor) == (
        OperationKind.REFUND,
        f"{PAYMENT}/refunds/r1",
        "sbx_re_1",
        2_500,
    )
    assert refund_of(payment, pending, PERIOD) is None


def posting(account_id, minor):
    return lres.Posting(account=f"tenants/acme/accounts/{account_id}", amount=usd(minor))


def test_ledger_entries_map_from_metadata_holds_or_the_clearing_posting():
    named = lres.JournalEntry(
        name="tenants/acme/entries/e1",
        metadata={"payment": "p1", "operation": "refund", "payment_operation": "op-7"},
        postings=[
            posting("payments-customer-funds-usd", 500),
            posting("payments-psp-clearing-usd", -500),
        ],
    )
    recorded = ledger_entry_of(named, "acme")
    assert recorded == LedgerEntry(
        entry="tenants/acme/entries/e1",
        operation_id="op-7",
        kind=OperationKind.REFUND,
        payment=PAYMENT,
        amount_minor=500,
        currency="USD",
    )
    held = lres.JournalEntry(
        name="tenants/acme/entries/e2",
        hold="tenants/acme/holds/pay-1",
        postings=[
            posting("payments-psp-clearing-usd", 700),
            posting("payments-customer-funds-usd", -700),
        ],
    )
    capture = ledger_entry_of(held, "acme", hold_payment="p1")
    assert capture is not None
    assert (capture.kind, capture.payment, capture.operation_id) == (
        OperationKind.CAPTURE,
        PAYMENT,
        "",
    )
    inferred = lres.JournalEntry(
        name="tenants/acme/entries/e3",
        metadata={"payment": "p1"},
        postings=[
            posting("payments-customer-funds-usd", 300),
            posting("payments-psp-clearing-usd", -300),
        ],
    )
    refund = ledger_entry_of(inferred, "acme")
    assert refund is not None
    assert refund.kind is OperationKind.REFUND


def test_fee_settlement_and_unrelated_entries_are_not_payment_operations():
    fee = lres.JournalEntry(
        name="tenants/acme/entries/f",
        metadata={"payment": "p1"},
        postings=[posting("payments-psp-fees-usd", 30), posting("payments-psp-clearing-usd", -30)],
    )
    ours = lres.JournalEntry(
        name="tenants/acme/entries/s",
        metadata={"operation": "settlement", "psp": "sandbox", "payment": "p1"},
        postings=[posting("payments-bank-usd", 970), posting("payments-psp-clearing-usd", -970)],
    )
    unrelated = lres.JournalEntry(
        name="tenants/acme/entries/u",
        postings=[posting("cash", 1), posting("equity", -1)],
    )
    assert ledger_entry_of(fee, "acme") is None
    assert ledger_entry_of(ours, "acme") is None
    assert ledger_entry_of(unrelated, "acme") is None
