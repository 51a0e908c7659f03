"""Reconciliation end to end: payments over its RPCs (real server, PostgreSQL, ledger, sandbox),
then both sides read back over gRPC and tied to the sandbox's settlement report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from clients.base import ClientSettings, ServiceClient
from clients.channel import create_channel
from clients.services import LedgerClient, PaymentsClient
from commerce.payments.v1 import resources_pb2 as res
from services.payments.domain.reconciliation import DifferenceKind, Period, Side
from services.payments.reconciliation.grpc_sources import GrpcReconciliationSources
from services.payments.reconciliation.reports import HttpSettlementReports
from services.payments.reconciliation.runner import run_reconciliation
from tests.integration.payments.conftest import jwt_token

pytestmark = pytest.mark.integration


@pytest.fixture
async def sources(payments) -> AsyncIterator[GrpcReconciliationSources]:
    settings = ClientSettings(token_provider=lambda: jwt_token(payments.tenant))
    # The fixture exposes the payments stub, not its address: the typed client is built on it.
    payments_client = PaymentsClient.__new__(PaymentsClient)
    ServiceClient.__init__(payments_client, payments.stub, settings)
    async with create_channel(f"127.0.0.1:{payments.ledger.port}") as channel:
        yield GrpcReconciliationSources(
            payments_client, LedgerClient(channel, settings), payments.tenant
        )


async def refund(payments, name: str, amount: int) -> res.Refund:
    reply = await payments.call("RefundPayment", payments.refund_request(name, amount))
    refunded: res.Refund = reply.refund
    return refunded


async def test_what_payments_did_through_the_mesh_ties_out_with_the_psp_settlement(
    payments, sources, http
):
    await payments.route("alpha")
    start = datetime.now(UTC) - timedelta(seconds=5)
    manual = await payments.authorize(10_000)
    await payments.capture(manual.name, 4_000)
    await payments.capture(manual.name)  # the remaining 6_000
    await refund(payments, manual.name, 2_500)
    automatic = await payments.authorize(5_000, manual=False)
    assert automatic.state == res.PAYMENT_STATE_CAPTURED
    period = Period(start, datetime.now(UTC) + timedelta(seconds=5))

    day = start.date().isoformat()
    url = f"{payments.alpha.url}/v1/settlements?from={day}&to={day}"
    reports = HttpSettlementReports(http.client, [f"{payments.alpha.url}/v1/settlements"])
    result = await run_reconciliation(
        psp="alpha", period=period, settlement_report=url, reports=reports, sources=sources
    )
    assert result.differences == ()
    assert result.matched_count == 4  # two partial captures, the refund, the automatic capture
    [usd] = result.totals
    assert usd.payments_minor == usd.settlement_minor == usd.ledger_minor == 10_000 - 2_500 + 5_000

    # A capture payments makes after the report was cut is missing from that report.
    stale_report = await reports.fetch("alpha", url)
    late = await payments.authorize(700)
    await payments.capture(late.name)
    later = Period(start, datetime.now(UTC) + timedelta(seconds=5))

    class CutEarlier:
        async def fetch(self, psp: str, location: str) -> str:
            del psp, location
            return stale_report

    result = await run_reconciliation(
        psp="alpha", period=later, settlement_report=url, reports=CutEarlier(), sources=sources
    )
    [missing] = result.differences
    assert (missing.kind, missing.source, missing.payment) == (
        DifferenceKind.MISSING_IN_PSP,
        Side.SETTLEMENT_REPORT,
        late.name,
    )
    assert missing.expected is not None
    assert missing.expected.minor == 700
    assert result.matched_count == 4
