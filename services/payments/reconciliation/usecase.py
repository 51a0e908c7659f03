"""The reconciliation use case behind RunReconciliation: from a started run to its final report.

The servicer stores `started_report(...)` (RUNNING) under the request's idempotency key, then
awaits `complete_run(...)` (in the background) and stores the FAILED or SUCCEEDED report it
returns, with a ReconciliationCompleted event built by `completed_event(...)` in the same
transaction. Reports are stored as the serialized FULL message; `messages.with_view` gives
the BASIC view for List and for the event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from clients.errors import CommerceError
from clients.services import LedgerClient
from commerce.payments.v1 import events_pb2
from commerce.payments.v1 import reconciliation_pb2 as pb
from services.payments.domain.reconciliation import Period, ReconciliationInputError, ReportState
from services.payments.domain.reconciliation_postings import (
    MissingAccountsError,
    SettlementAccounts,
    plan_settlement_entries,
)
from services.payments.reconciliation.ingest import SettlementReportError
from services.payments.reconciliation.messages import report_message, with_view
from services.payments.reconciliation.ports import (
    ReconciliationSources,
    ReportUnavailableError,
    SettlementReports,
)
from services.payments.reconciliation.posting import post_settlement_entries
from services.payments.reconciliation.runner import run_reconciliation

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconciliationRun:
    """What RunReconciliation asked for, as the servicer validated it."""

    tenant: str
    report_id: str
    psp: str
    period: Period
    settlement_report: str
    create_time: datetime

    @property
    def name(self) -> str:
        return f"tenants/{self.tenant}/reconciliationReports/{self.report_id}"


def started_report(run: ReconciliationRun) -> pb.ReconciliationReport:
    """The RUNNING report RunReconciliation returns and stores first."""
    return report_message(
        name=run.name,
        psp=run.psp,
        period=run.period,
        settlement_report=run.settlement_report,
        state=ReportState.RUNNING,
        create_time=run.create_time,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """Where to book settled lines; leave it out to report without posting."""

    ledger: LedgerClient
    accounts: Callable[[str, list[str]], Mapping[str, SettlementAccounts]]
    """(tenant, currencies) -> accounts per currency, e.g. posting.payments_settlement_accounts."""
    prepare: Callable[[str, list[str]], Awaitable[None]] | None = None
    """(tenant, currencies) -> opens those accounts before posting (AccountsUnavailableError)."""


class AccountsUnavailableError(Exception):
    """The settlement accounts could not be opened (the run ends FAILED, saying so)."""


async def complete_run(
    run: ReconciliationRun,
    *,
    reports: SettlementReports,
    sources: ReconciliationSources,
    settlement: Settlement | None = None,
    clock: Clock = _now,
) -> pb.ReconciliationReport:
    """Run the reconciliation and return the final FULL report, SUCCEEDED or FAILED.

    A report that cannot be fetched or read, inputs that break the model, missing accounts and
    ledger errors while posting end the run FAILED with the reason; they are not raised.
    """
    try:
        result = await run_reconciliation(
            psp=run.psp,
            period=run.period,
            settlement_report=run.settlement_report,
            reports=reports,
            sources=sources,
        )
        if settlement is not None:
            currencies = sorted({t.currency for t in result.totals})
            planned = plan_settlement_entries(result, settlement.accounts(run.tenant, currencies))
            if planned and settlement.prepare is not None:
                await settlement.prepare(
                    run.tenant, sorted({e.postings[0].currency for e in planned})
                )
            await post_settlement_entries(settlement.ledger, run.tenant, planned)
    except (
        SettlementReportError,
        ReportUnavailableError,
        ReconciliationInputError,
        MissingAccountsError,
        AccountsUnavailableError,
        CommerceError,
    ) as exc:
        return report_message(
            name=run.name,
            psp=run.psp,
            period=run.period,
            settlement_report=run.settlement_report,
            state=ReportState.FAILED,
            create_time=run.create_time,
            complete_time=clock(),
            failure_reason=str(exc)[:4000],
        )
    return report_message(
        name=run.name,
        psp=run.psp,
        period=run.period,
        settlement_report=run.settlement_report,
        state=ReportState.SUCCEEDED,
        create_time=run.create_time,
        complete_time=clock(),
        result=result,
    )


def completed_event(report: pb.ReconciliationReport) -> events_pb2.ReconciliationCompleted:
    """The ReconciliationCompleted event for a final report (BASIC view, as the contract says)."""
    event_time = Timestamp()
    event_time.CopyFrom(report.complete_time)
    return events_pb2.ReconciliationCompleted(
        report=with_view(
            report,
            pb.RECONCILIATION_REPORT_VIEW_BASIC,
            default=pb.RECONCILIATION_REPORT_VIEW_BASIC,
        ),
        event_time=event_time,
    )
