"""A refund no PSP would take: UNAVAILABLE, the payment stays as it was (no refund left
pending), and a retry with the same request_id refunds exactly once. (Its own module: it
trips this server's breaker for the payment's PSP.)"""

import pytest

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from services.payments.sandbox.config import SandboxConfig
from tests.integration.payments.conftest import money

pytestmark = pytest.mark.integration


async def test_an_unavailable_psp_leaves_no_refund_behind(payments):
    await payments.route("alpha")
    payment = await payments.authorize(6_000)
    await payments.capture(payment.name)
    payments.alpha.state.config = SandboxConfig(error_rate=1.0)
    request = payments.refund_request(payment.name, 2_500, refund_id="r-out")
    code, info = await payments.fails("RefundPayment", request)
    assert (code.name, info.reason) == ("UNAVAILABLE", "PSP_UNAVAILABLE")
    unchanged = await payments.get(payment.name)
    assert unchanged.state == res.PAYMENT_STATE_CAPTURED
    assert unchanged.attempts[-1].operation == res.PAYMENT_OPERATION_REFUND
    assert unchanged.attempts[-1].outcome == res.ATTEMPT_OUTCOME_ERROR
    listed = await payments.call("ListRefunds", pb.ListRefundsRequest(parent=payment.name))
    assert list(listed.refunds) == []
    payments.alpha.state.config = SandboxConfig()
    reply = await payments.call("RefundPayment", request)
    assert reply.refund.state == res.REFUND_STATE_SUCCEEDED
    assert reply.payment.amount_refunded == money(2_500)
    assert await payments.call("RefundPayment", request) == reply
    authorization = payments.alpha.state.books.authorization(payment.psp_reference)
    assert authorization.amount_refunded_minor == 2_500  # exactly once at the PSP
    funds = await payments.balance("payments-customer-funds-usd")
    assert funds.debits_posted.amount_minor == 2_500
