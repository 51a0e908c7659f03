"""Reconciliation against the real PSP sandbox over HTTP.

Captures and refunds go through the sandbox connector; the settlement report is downloaded
from the running sandbox; the payments side is built from the connector's answers, with one
planted discrepancy of each kind, and the ledger side from the payments side.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from clients.deadline import Deadline
from services.payments.domain.money import Money
from services.payments.domain.reconciliation import (
    DifferenceKind,
    LedgerEntry,
    OperationKind,
    PaymentOperation,
    Period,
    Side,
)
from services.payments.domain.reconciliation_postings import (
    SettlementAccounts,
    plan_settlement_entries,
)
from services.payments.psp.model import AuthorizeRequest
from services.payments.psp.sandbox_connector import SandboxConnector
from services.payments.reconciliation.ports import ReportUnavailableError
from services.payments.reconciliation.reports import FileSettlementReports, HttpSettlementReports
from services.payments.reconciliation.runner import run_reconciliation
from services.payments.sandbox.books import capture_fee

TENANT = "tenants/acme"


@dataclass
class Sides:
    """The ReconciliationSources port over lists the test builds from the connector."""

    operations: list[PaymentOperation]
    entries: list[LedgerEntry]

    async def payment_operations(self, psp: str, period: Period) -> list[PaymentOperation]:
        assert psp == "sandbox"
        return [
            o for o in self.operations if o.occurred_at is None or period.contains(o.occurred_at)
        ]

    async def ledger_entries(self, psp: str, period: Period) -> list[LedgerEntry]:
        del period
        assert psp == "sandbox"
        return list(self.entries)


def key() -> str:
    return str(uuid.uuid4())


def soon() -> Deadline:
    return Deadline.after(5)


class Payments:
    """Records what payments would: one operation per successful connector call."""

    def __init__(self, connector: SandboxConnector) -> None:
        self.connector = connector
        self.operations: list[PaymentOperation] = []
        self.count = 0

    async def authorize(
        self, minor: int, currency: str, *, capture: bool = False
    ) -> tuple[str, str]:
        self.count += 1
        payment = f"{TENANT}/payments/p{self.count}"
        auth = await self.connector.authorize(
            AuthorizeRequest(
                amount=Money(minor, currency),
                payment_method_token="pm_sandbox_ok",
                idempotency_key=key(),
                capture=capture,
            ),
            deadline=soon(),
        )
        if capture:
            self._record(payment, OperationKind.CAPTURE, auth.psp_reference, minor, currency)
        return payment, auth.psp_reference

    async def capture(self, payment: str, reference: str, minor: int, currency: str) -> None:
        await self.connector.capture(
            reference, Money(minor, currency), final=False, idempotency_key=key(), deadline=soon()
        )
        self._record(payment, OperationKind.CAPTURE, reference, minor, currency)

    async def refund(self, payment: str, reference: str, minor: int, currency: str) -> None:
        refund = await self.connector.refund(
            reference, Money(minor, currency), idempotency_key=key(), deadline=soon()
        )
        self._record(
            payment, OperationKind.REFUND, reference, minor, currency, refund=refund.psp_reference
        )

    def _record(  # noqa: PLR0917 - mirrors the operation's fields, in their order
        self,
        payment: str,
        kind: OperationKind,
        reference: str,
        minor: int,
        currency: str,
        refund: str = "",
    ) -> None:
        number = len(self.operations) + 1
        self.operations.append(
            PaymentOperation(
                operation_id=f"{payment}/refunds/{refund}"
                if refund
                else f"{payment}/captures/{number}",
                kind=kind,
                payment=payment,
                refund=f"{payment}/refunds/{refund}" if refund else "",
                payment_reference=reference,
                psp_reference=refund,
                amount_minor=minor,
                currency=currency,
                occurred_at=datetime.now(UTC),
            )
        )


def ledger_of(operations: list[PaymentOperation]) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            entry=f"{TENANT}/entries/e{n}",
            operation_id=o.operation_id,
            kind=o.kind,
            payment=o.payment,
            refund=o.refund,
            amount_minor=o.amount_minor,
            currency=o.currency,
        )
        for n, o in enumerate(operations, 1)
    ]


@pytest.fixture
def today() -> Period:
    start = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    return Period(start, start + timedelta(days=1))


def settlement_url(base: str, period: Period) -> str:
    day = period.start.date().isoformat()
    return f"{base}/v1/settlements?from={day}&to={day}"


async def test_sandbox_settlement_reconciles_with_one_planted_difference_of_each_kind(  # noqa: PLR0915 - one scenario, told in order
    http, sandbox, today, tmp_path: Path
):
    payments = Payments(SandboxConnector(http.client, sandbox.url))
    # Clean: two partial captures and a refund (USD), an automatic capture (JPY), KWD.
    p1, a1 = await payments.authorize(10_000, "USD")
    await payments.capture(p1, a1, 4_000, "USD")
    await payments.capture(p1, a1, 6_000, "USD")
    await payments.refund(p1, a1, 2_500, "USD")
    await payments.authorize(5_000, "JPY", capture=True)
    p3, a3 = await payments.authorize(1_234, "KWD")
    await payments.capture(p3, a3, 1_234, "KWD")
    # Planted on the payments side.
    p4, a4 = await payments.authorize(777, "USD")
    await payments.capture(p4, a4, 777, "USD")
    forgotten = payments.operations.pop()  # MISSING_IN_PAYMENTS: payments lost it
    p5, a5 = await payments.authorize(3_000, "USD")
    payments._record(p5, OperationKind.CAPTURE, a5, 3_000, "USD")  # MISSING_IN_PSP: never sent
    p6, a6 = await payments.authorize(999, "USD")
    await payments.capture(p6, a6, 999, "USD")
    payments.operations[-1] = replace(payments.operations[-1], amount_minor=1_000)  # +1 cent
    p7, a7 = await payments.authorize(450, "EUR")
    await payments.capture(p7, a7, 450, "EUR")
    payments.operations[-1] = replace(payments.operations[-1], currency="GBP")  # currency
    operations = payments.operations
    # The ledger follows payments, except that it missed the KWD capture.
    kwd = next(o for o in operations if o.currency == "KWD")
    entries = [e for e in ledger_of(operations) if e.operation_id != kwd.operation_id]

    # The pristine report, downloaded from the running sandbox.
    url = settlement_url(sandbox.url, today)
    reports = HttpSettlementReports(http.client, [f"{sandbox.url}/v1/settlements"])
    sides = Sides(operations, entries)
    pristine = await run_reconciliation(
        psp="sandbox", period=today, settlement_report=url, reports=reports, sources=sides
    )
    # The same report with one line settled twice (planted in the file).
    csv_text = await reports.fetch("sandbox", url)
    lines = csv_text.splitlines()
    duplicated = next(line for line in lines if ",refund," in line)
    (tmp_path / "settlement.csv").write_text("\n".join([*lines, duplicated]) + "\n")
    result = await run_reconciliation(
        psp="sandbox",
        period=today,
        settlement_report="settlement.csv",
        reports=FileSettlementReports(tmp_path),
        sources=sides,
    )

    refund = next(o for o in operations if o.kind is OperationKind.REFUND)
    planted = {
        (
            DifferenceKind.MISSING_IN_PAYMENTS,
            Side.SETTLEMENT_REPORT,
            "",
            forgotten.payment_reference,
        ),
        (DifferenceKind.MISSING_IN_PSP, Side.SETTLEMENT_REPORT, p5, ""),
        (DifferenceKind.AMOUNT_MISMATCH, Side.SETTLEMENT_REPORT, p6, ""),
        (DifferenceKind.CURRENCY_MISMATCH, Side.SETTLEMENT_REPORT, p7, ""),
        (DifferenceKind.MISSING_IN_LEDGER, Side.LEDGER, p3, ""),
    }

    def found(reconciliation):
        return {
            (
                d.kind,
                d.source,
                d.payment,
                d.records[0].payment_reference
                if d.kind is DifferenceKind.MISSING_IN_PAYMENTS
                else "",
            )
            for d in reconciliation.differences
        }

    assert found(pristine) == planted
    assert found(result) == planted | {(DifferenceKind.DUPLICATE, Side.SETTLEMENT_REPORT, p1, "")}
    duplicate = result.differences_of(DifferenceKind.DUPLICATE)[0]
    assert (duplicate.psp_reference, duplicate.occurrences) == (refund.psp_reference, 2)
    assert (duplicate.refund, duplicate.expected) == (refund.refund, refund.signed)
    mismatch = result.differences_of(DifferenceKind.AMOUNT_MISMATCH)[0]
    assert (mismatch.expected.minor, mismatch.actual.minor) == (1_000, 999)  # type: ignore[union-attr]
    currency = result.differences_of(DifferenceKind.CURRENCY_MISMATCH)[0]
    assert (currency.expected.currency, currency.actual.currency) == ("GBP", "EUR")  # type: ignore[union-attr]

    # Matched on all three sides: p1's two captures and refund, the JPY automatic capture.
    assert result.matched_count == 4
    assert result.settlement_records_checked == 9
    usd = next(t for t in result.totals if t.currency == "USD")
    assert usd.settlement_minor == 4_000 + 6_000 - 2_500 + 777 + 999 - 2_500
    assert usd.settlement_fees_minor == sum(capture_fee(m) for m in (4_000, 6_000, 777, 999))
    assert usd.payments_minor == 4_000 + 6_000 - 2_500 + 3_000 + 1_000

    accounts = {
        c: SettlementAccounts(
            f"{TENANT}/accounts/clr-{c}",
            f"{TENANT}/accounts/bank-{c}",
            f"{TENANT}/accounts/fee-{c}",
        )
        for c in ("USD", "JPY", "KWD", "EUR", "GBP")
    }
    planned = plan_settlement_entries(result, accounts)
    assert planned == plan_settlement_entries(pristine, accounts)  # rerun: same entries, same ids
    fees = [p.amount_minor for e in planned for p in e.postings if p.account.endswith("fee-USD")]
    assert sorted(fees) == sorted(capture_fee(m) for m in (4_000, 6_000))
    assert all(sum(p.amount_minor for p in e.postings) == 0 for e in planned)


async def test_a_report_outside_the_allowed_urls_or_directory_is_refused(http, sandbox, tmp_path):
    reports = HttpSettlementReports(http.client, [f"{sandbox.url}/v1/settlements"])
    with pytest.raises(ReportUnavailableError):
        await reports.fetch("sandbox", f"{sandbox.url}/admin/config")
    with pytest.raises(ReportUnavailableError):
        await reports.fetch("sandbox", f"{sandbox.url}/v1/settlements/../../admin/config")
    with pytest.raises(ReportUnavailableError):
        await reports.fetch("sandbox", "http://169.254.169.254/v1/settlements")
    with pytest.raises(ReportUnavailableError, match="answered HTTP 400"):
        await reports.fetch("sandbox", f"{sandbox.url}/v1/settlements?from=yesterday")
    with pytest.raises(ReportUnavailableError):
        await FileSettlementReports(tmp_path).fetch("sandbox", "../../etc/passwd")
    with pytest.raises(ReportUnavailableError):
        await FileSettlementReports(tmp_path).fetch("sandbox", "missing.csv")
