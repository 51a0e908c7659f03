"""A webhook naming a known payment nudges the resolver for that payment only when it has work
queued (an unknown outcome or owed ledger movements), read in the webhook's own transaction.
(Its own module: it swaps the ledger client, as the ledger outage test does.)"""

import socket

import grpc
import pytest
from sqlalchemy import text

from clients.base import ClientSettings
from clients.retry import RetryPolicy
from clients.services import LedgerClient
from commerce.payments.v1 import resources_pb2 as res
from tests.integration.payments.test_payments_service_webhooks import deliver, event, webhook

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def queued(payments, payment_id):
    async with payments.database.transaction() as session:
        return await session.scalar(
            text("SELECT operation FROM unresolved_outcomes WHERE payment_id = :p"),
            {"p": payment_id},
        )


async def test_a_webhook_hands_owed_ledger_movements_over_and_leaves_settled_payments_alone(
    payments,
):
    await payments.route("alpha")
    settled = await payments.authorize(1_100, payment_id="settled")
    postings = payments.service._ledger
    live = postings._client
    dead = grpc.aio.insecure_channel(f"127.0.0.1:{closed_port()}")
    postings._client = LedgerClient(
        dead, ClientSettings(default_timeout=0.5, retry=RetryPolicy(max_attempts=1))
    )
    try:
        owing = await payments.authorize(2_200, payment_id="owing")
    finally:
        postings._client = live
        await dead.close(None)
    assert owing.state == res.PAYMENT_STATE_AUTHORIZED
    assert await queued(payments, "owing") == "LEDGER"
    assert await queued(payments, "settled") is None
    assert [h.amount.amount_minor for h in await payments.holds()] == [1_100]

    # A webhook about the settled payment changes nothing and queues nothing.
    reply = await deliver(
        payments, webhook(event("authorization.authorized", settled.psp_reference))
    )
    assert (reply.payment, reply.duplicate) == (settled.name, False)
    assert await queued(payments, "settled") is None
    assert (await payments.get(settled.name)).attempts == settled.attempts

    # One about the payment that owes the ledger its hold hands the hold over.
    reply = await deliver(payments, webhook(event("authorization.authorized", owing.psp_reference)))
    assert (reply.payment, reply.duplicate) == (owing.name, False)
    assert await queued(payments, "owing") is None
    holds = sorted(h.amount.amount_minor for h in await payments.holds())
    assert holds == [1_100, 2_200]
