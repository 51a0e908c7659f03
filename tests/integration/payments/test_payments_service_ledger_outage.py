"""The ledger down after the PSP acted: the payment records the PSP's outcome and owes the
ledger the movement; nothing else happens to the payment until the ledger has it, and the
resolver hands it over once the ledger is back. (Its own module: it swaps the ledger client.)"""

import socket

import grpc
import pytest
from sqlalchemy import text

from clients.base import ClientSettings
from clients.retry import RetryPolicy
from clients.services import LedgerClient
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from tests.integration.payments.conftest import money, new_request_id

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def owed(payments, payment_id):
    async with payments.database.tenant_transaction(payments.tenant) as session:
        pending = await session.scalar(
            text("SELECT ledger_pending FROM payments WHERE payment_id = :p"), {"p": payment_id}
        )
    async with payments.database.transaction() as session:
        queued = await session.scalar(
            text("SELECT operation FROM unresolved_outcomes WHERE payment_id = :p"),
            {"p": payment_id},
        )
    return [op["kind"] for op in pending], queued


async def test_a_ledger_outage_never_loses_a_movement(payments):
    await payments.route("alpha")
    postings = payments.service._ledger
    live = postings._client
    dead = grpc.aio.insecure_channel(f"127.0.0.1:{closed_port()}")
    postings._client = LedgerClient(
        dead,
        ClientSettings(default_timeout=0.5, retry=RetryPolicy(max_attempts=1)),
    )
    try:
        payment = await payments.authorize(4_321, payment_id="outage")
        assert payment.state == res.PAYMENT_STATE_AUTHORIZED  # the PSP authorized it
        assert await payments.holds() == []
        assert await owed(payments, "outage") == (["hold"], "LEDGER")
        code, info = await payments.fails(
            "CapturePayment",
            pb.CapturePaymentRequest(name=payment.name, request_id=new_request_id()),
        )
        assert (code.name, info.reason) == ("UNAVAILABLE", "LEDGER_UNAVAILABLE")
        assert (
            payments.alpha.state.books.authorization(payment.psp_reference).amount_captured_minor
            == 0
        )
        assert await payments.service.resolve_due(due_only=False) == 0  # still down
    finally:
        postings._client = live
        await dead.close(None)
    assert await payments.service.resolve_due(due_only=False) == 1
    assert await owed(payments, "outage") == ([], None)
    assert [(h.amount.amount_minor, h.state) for h in await payments.holds()] == [(4_321, 1)]
    captured = await payments.capture(payment.name)
    assert captured.amount_captured == money(4_321)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert (clearing.debits_posted.amount_minor, clearing.debits_pending.amount_minor) == (
        4_321,
        0,
    )
