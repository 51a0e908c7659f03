"""Runs a reconciliation: fetch and parse the settlement report, read both sides, match."""

from __future__ import annotations

import asyncio

from services.payments.domain.reconciliation import Period, Reconciliation, reconcile
from services.payments.reconciliation.ingest import parse_settlement_csv
from services.payments.reconciliation.ports import ReconciliationSources, SettlementReports


async def run_reconciliation(
    *,
    psp: str,
    period: Period,
    settlement_report: str,
    reports: SettlementReports,
    sources: ReconciliationSources,
) -> Reconciliation:
    """Reconcile `psp`'s settlement report at `settlement_report` for `period`.

    Raises ReportUnavailableError when the report cannot be fetched and SettlementReportError
    when it is malformed (a run that should end FAILED with the error's text as its reason).
    """
    text = await reports.fetch(psp, settlement_report)
    records = parse_settlement_csv(text, source=settlement_report)
    operations, entries = await asyncio.gather(
        sources.payment_operations(psp, period), sources.ledger_entries(psp, period)
    )
    return reconcile(psp=psp, records=records, operations=operations, ledger_entries=entries)
