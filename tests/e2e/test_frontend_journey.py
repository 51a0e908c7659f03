"""A frontend's whole checkout over REST (services/demo.py), against the real mesh: every
service, the PSP sandbox, the Pub/Sub emulator, the gateway and the trace viewer."""

from __future__ import annotations

import httpx
import pytest
from pypdf import PdfReader

from services import demo
from services.chassis import traceviewer
from services.localmesh import LocalMesh
from tests.e2e.support import running


@pytest.fixture(scope="module")
async def journey(mesh: LocalMesh, rest: httpx.AsyncClient, tenant: str) -> demo.Journey:
    running(mesh, "checkout", "payments", "ledger", "invoicing", "invoicing-consumer", "gateway")
    await demo.route_to_sandbox(rest, tenant)
    return await demo.place_checkout(rest, tenant)


async def test_the_order_is_placed_once_and_paid(journey: demo.Journey) -> None:
    assert journey.replayed_order == journey.order["name"]  # the same Idempotency-Key
    assert journey.status["state"] == "ORDER_STATE_CONFIRMED", journey.status
    total = journey.checkout["quote"]["total"]
    assert total["currencyCode"] == "EUR"
    assert int(total["amountMinor"]) > 0


async def test_the_invoice_matches_the_order_and_downloads_as_a_pdf(
    journey: demo.Journey, tmp_path
) -> None:
    invoice = journey.invoice
    assert invoice["order"] == journey.order["name"]
    assert invoice["state"] == "INVOICE_STATE_PAID", invoice["state"]
    assert invoice["total"] == journey.checkout["quote"]["total"]
    (tmp_path / "invoice.pdf").write_bytes(journey.invoice_pdf)
    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "invoice.pdf").pages)
    assert invoice["number"] in text


async def test_the_ledger_balances_sum_to_zero(journey: demo.Journey) -> None:
    assert journey.balances, "no ledger accounts after a paid checkout"
    by_currency: dict[str, int] = {}
    for balance in journey.balances.values():
        by_currency[balance.currency] = by_currency.get(balance.currency, 0) + balance.net_debit
    assert by_currency == dict.fromkeys(by_currency, 0), journey.balances
    total = int(journey.checkout["quote"]["total"]["amountMinor"])
    assert journey.balances["payments-psp-clearing-eur"].posted == total  # captured, to the cent
    # Invoicing recognised the sale: receivable settled by the captured funds, revenue + tax.
    assert journey.balances["invoicing-receivable-eur"].posted == 0
    assert journey.balances["payments-customer-funds-eur"].posted == 0
    recognised = sum(
        b.posted
        for name, b in journey.balances.items()
        if name.startswith(("invoicing-revenue-", "invoicing-tax-payable-"))
    )
    assert recognised == total


async def test_one_checkout_is_one_trace_across_every_service(
    mesh: LocalMesh, journey: demo.Journey
) -> None:
    running(mesh, "traceviewer")
    spans = await demo.trace_services(
        traceviewer.base_url(mesh.ports["traceviewer"]), journey.trace_id
    )
    # Every span's parent is in the trace but the gateway's: its parent is the caller's span.
    [root] = demo.roots(spans)
    assert root["localEndpoint"]["serviceName"] == "gateway"
    assert root["kind"] == "SERVER"
    assert all(s["traceId"] == journey.trace_id for s in spans)
    services = {s["localEndpoint"]["serviceName"] for s in spans}
    assert set(demo.SERVICES) <= services
    kinds = {(s["localEndpoint"]["serviceName"], s.get("kind")) for s in spans}
    assert ("invoicing", "CONSUMER") in kinds  # CheckoutCompleted reached invoicing in-trace
    assert ("checkout", "PRODUCER") in kinds  # published by checkout's relay
