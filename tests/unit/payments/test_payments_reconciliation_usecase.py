"""The RunReconciliation use case: RUNNING, then SUCCEEDED with the result or FAILED with why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from commerce.payments.v1 import reconciliation_pb2 as pb
from services.payments.domain.reconciliation import (
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    Period,
)
from services.payments.reconciliation.reports import FileSettlementReports
from services.payments.reconciliation.usecase import (
    ReconciliationRun,
    complete_run,
    completed_event,
    started_report,
)

T0 = datetime(2026, 11, 20, tzinfo=UTC)
HEADER = (
    "settlement_date,line_id,type,reference,authorization,currency,gross_minor,fee_minor,net_minor"
)
CAPTURE = PaymentOperation(
    operation_id="tenants/acme/payments/p1/captures/2",
    kind=OperationKind.CAPTURE,
    payment="tenants/acme/payments/p1",
    payment_reference="sbx_auth_1",
    amount_minor=10_000,
    currency="USD",
)


@dataclass
class Sides:
    operations: list[PaymentOperation]
    entries: list[LedgerEntry]

    async def payment_operations(self, psp: str, period: Period) -> list[PaymentOperation]:
        del psp, period
        return self.operations

    async def ledger_entries(self, psp: str, period: Period) -> list[LedgerEntry]:
        del psp, period
        return self.entries


def a_run(report: str) -> ReconciliationRun:
    return ReconciliationRun(
        tenant="acme",
        report_id="sandbox-2026-11-20",
        psp="sandbox",
        period=Period(T0, T0 + timedelta(days=1)),
        settlement_report=report,
        create_time=T0 + timedelta(days=1),
    )


def sides() -> Sides:
    entry = LedgerEntry(
        entry="tenants/acme/entries/e1",
        operation_id=CAPTURE.operation_id,
        kind=OperationKind.CAPTURE,
        payment=CAPTURE.payment,
        amount_minor=10_000,
        currency="USD",
    )
    return Sides([CAPTURE], [entry])


def clock() -> datetime:
    return T0 + timedelta(days=1, seconds=2)


async def test_a_run_starts_running_and_completes_succeeded_with_its_result(tmp_path: Path):
    (tmp_path / "r.csv").write_text(
        f"{HEADER}\n2026-11-20,sl_1,capture,sbx_cap_1,sbx_auth_1,USD,10000,320,9680\n"
        "2026-11-20,sl_2,capture,sbx_cap_9,sbx_auth_9,USD,500,44,456\n"
    )
    run = a_run("r.csv")
    started = started_report(run)
    assert (started.name, started.state) == (
        "tenants/acme/reconciliationReports/sandbox-2026-11-20",
        pb.RECONCILIATION_STATE_RUNNING,
    )
    done = await complete_run(
        run, reports=FileSettlementReports(tmp_path), sources=sides(), clock=clock
    )
    assert done.state == pb.RECONCILIATION_STATE_SUCCEEDED
    assert done.complete_time.ToDatetime(tzinfo=UTC) == clock()
    assert (done.matched_count, done.difference_count, done.settlement_records_checked) == (1, 1, 2)
    [difference] = done.differences
    assert difference.kind == pb.RECONCILIATION_DIFFERENCE_KIND_MISSING_IN_PAYMENTS
    assert difference.settlement_record_id == "sl_2"
    event = completed_event(done)
    assert (event.report.difference_count, len(event.report.differences)) == (1, 0)
    assert event.event_time == done.complete_time


async def test_a_malformed_report_fails_the_run_saying_where(tmp_path: Path):
    (tmp_path / "r.csv").write_text(f"{HEADER}\n2026-11-20,sl_1,capture,c,a,USD,10000,320,9000\n")
    done = await complete_run(
        a_run("r.csv"), reports=FileSettlementReports(tmp_path), sources=sides(), clock=clock
    )
    assert done.state == pb.RECONCILIATION_STATE_FAILED
    assert "line 2, column net_minor" in done.failure_reason
    assert done.difference_count == 0


async def test_a_missing_report_fails_the_run(tmp_path: Path):
    done = await complete_run(
        a_run("nope.csv"), reports=FileSettlementReports(tmp_path), sources=sides(), clock=clock
    )
    assert done.state == pb.RECONCILIATION_STATE_FAILED
    assert done.failure_reason.startswith("cannot read nope.csv")
