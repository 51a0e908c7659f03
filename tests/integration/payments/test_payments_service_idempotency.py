"""Every mutating RPC is idempotent on its request_id: a replay answers the first response, a
changed request is refused with no effect, twins racing each other act once, and the
request_id is the PSP's idempotency key."""

import asyncio

import pytest

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from services.payments.sandbox.config import SandboxConfig
from tests.integration.payments.conftest import money, new_request_id

pytestmark = pytest.mark.integration


def authorizations(sandbox, key):
    return sandbox.state.books.by_idempotency_key(key)


async def test_a_replay_answers_the_first_response_without_acting_again(payments):
    await payments.route("alpha")
    request = payments.authorize_request(7_700)
    first = await payments.call("AuthorizePayment", request)
    again = await payments.call("AuthorizePayment", request)
    assert again == first
    assert len(authorizations(payments.alpha, request.request_id)) == 1
    assert len(await payments.holds()) == 1


async def test_a_changed_request_under_the_same_id_is_refused_without_effect(payments):
    await payments.route("alpha")
    request = payments.authorize_request(7_700)
    first = await payments.call("AuthorizePayment", request)
    changed = pb.AuthorizePaymentRequest()
    changed.CopyFrom(request)
    changed.amount.amount_minor = 7_701
    code, info = await payments.fails("AuthorizePayment", changed)
    assert (code.name, info.reason) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    assert len(authorizations(payments.alpha, request.request_id)) == 1
    listed = await payments.call("ListPayments", pb.ListPaymentsRequest(parent=payments.parent))
    assert [p.name for p in listed.payments] == [first.payment.name]


async def test_fifty_concurrent_twins_authorize_once_and_hold_once(payments):
    await payments.route("alpha", "beta")
    request = payments.authorize_request(5_050)
    replies = await asyncio.gather(*(payments.call("AuthorizePayment", request) for _ in range(50)))
    assert {r.SerializeToString(deterministic=True) for r in replies} == {
        replies[0].SerializeToString(deterministic=True)
    }
    assert replies[0].payment.state == res.PAYMENT_STATE_AUTHORIZED
    assert len(authorizations(payments.alpha, request.request_id)) == 1
    assert authorizations(payments.beta, request.request_id) == []
    holds = await payments.holds()
    assert [(h.amount.amount_minor, h.state) for h in holds] == [(5_050, 1)]
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert clearing.debits_pending.amount_minor == 5_050


async def test_capture_void_and_refund_replay_and_refuse_reuse(payments):
    await payments.route("alpha")
    payment = await payments.authorize(9_000)
    capture = pb.CapturePaymentRequest(
        name=payment.name, amount=money(4_000), request_id=new_request_id()
    )
    first = await payments.call("CapturePayment", capture)
    assert await payments.call("CapturePayment", capture) == first
    changed = pb.CapturePaymentRequest()
    changed.CopyFrom(capture)
    changed.amount.amount_minor = 4_001
    code, info = await payments.fails("CapturePayment", changed)
    assert (code.name, info.reason) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    assert (await payments.get(payment.name)).amount_captured == money(4_000)

    void = pb.VoidPaymentRequest(name=payment.name, request_id=new_request_id())
    voided = await payments.call("VoidPayment", void)
    assert await payments.call("VoidPayment", void) == voided
    assert voided.payment.state == res.PAYMENT_STATE_CAPTURED

    refund = payments.refund_request(payment.name, 1_500, refund_id="r1")
    refunded = await payments.call("RefundPayment", refund)
    assert await payments.call("RefundPayment", refund) == refunded
    other = payments.refund_request(payment.name, 1_500, refund_id="r1")
    code, info = await payments.fails("RefundPayment", other)
    assert (code.name, info.reason) == ("ALREADY_EXISTS", "REFUND_ALREADY_EXISTS")
    final = await payments.get(payment.name)
    assert final.amount_refunded == money(1_500)
    funds = await payments.balance("payments-customer-funds-usd")
    assert funds.debits_posted.amount_minor == 1_500


async def test_concurrent_captures_of_one_payment_run_one_after_the_other(payments):
    await payments.route("alpha")
    payment = await payments.authorize(10_000)
    first, second = await asyncio.gather(
        payments.capture(payment.name, 5_000), payments.capture(payment.name, 5_000)
    )
    assert {first.state, second.state} == {
        res.PAYMENT_STATE_PARTIALLY_CAPTURED,
        res.PAYMENT_STATE_CAPTURED,
    }
    final = await payments.get(payment.name)
    assert final.amount_captured == money(10_000)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert (clearing.debits_posted.amount_minor, clearing.debits_pending.amount_minor) == (
        10_000,
        0,
    )


async def test_psp_unavailable_is_not_recorded_and_a_retry_resumes_the_payment(payments):
    await payments.route("alpha", "beta")
    for sandbox in (payments.alpha, payments.beta):
        sandbox.state.config = SandboxConfig(error_rate=1.0)
    request = payments.authorize_request(3_300, payment_id="resume-me")
    code, info = await payments.fails("AuthorizePayment", request)
    assert (code.name, info.reason) == ("UNAVAILABLE", "PSP_UNAVAILABLE")
    waiting = await payments.get(payments.name("resume-me"))
    assert waiting.state == res.PAYMENT_STATE_REQUIRES_AUTHORIZATION
    assert {a.outcome for a in waiting.attempts} == {res.ATTEMPT_OUTCOME_ERROR}
    assert await payments.holds() == []
    for sandbox in (payments.alpha, payments.beta):
        sandbox.state.config = SandboxConfig()
    reply = await payments.call("AuthorizePayment", request)
    assert reply.payment.state == res.PAYMENT_STATE_AUTHORIZED
    assert reply.payment.name == waiting.name
    assert reply.payment.attempts[-1].outcome == res.ATTEMPT_OUTCOME_SUCCEEDED
    assert len(reply.payment.attempts) == len(waiting.attempts) + 1
    assert len(await payments.holds()) == 1
