"""Every state change stages its contract event in the outbox, in the same transaction."""

import pytest
from sqlalchemy import text

from commerce.payments.v1 import events_pb2 as ev
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from tests.integration.payments.conftest import money, new_request_id

pytestmark = pytest.mark.integration

TYPES = {
    message.DESCRIPTOR.full_name: message
    for message in (
        ev.PaymentAuthorized,
        ev.PaymentAuthorizationFailed,
        ev.PaymentCaptured,
        ev.PaymentVoided,
        ev.PaymentRefunded,
        ev.PaymentFailed,
        ev.PaymentOutcomeUnknown,
    )
}


async def events_of(payments, subject):
    async with payments.database.transaction() as session:
        rows = (
            await session.execute(
                text("SELECT type, source, data FROM outbox WHERE subject = :s ORDER BY position"),
                {"s": subject},
            )
        ).all()
    assert {row.source for row in rows} <= {"//commerce-mesh/payments"}
    return [TYPES[row.type].FromString(bytes(row.data)) for row in rows]


async def test_the_lifecycle_is_announced_event_by_event(payments):
    await payments.route("alpha")
    payment = await payments.authorize(10_000)
    await payments.capture(payment.name, 4_000)
    await payments.call(
        "VoidPayment", pb.VoidPaymentRequest(name=payment.name, request_id=new_request_id())
    )
    await payments.call("RefundPayment", payments.refund_request(payment.name, 1_000))
    events = await events_of(payments, payment.name)
    assert [type(e).__name__ for e in events] == [
        "PaymentAuthorized",
        "PaymentCaptured",
        "PaymentVoided",
        "PaymentRefunded",
    ]
    authorized, captured, voided, refunded = events
    assert authorized.payment.state == res.PAYMENT_STATE_AUTHORIZED
    assert authorized.payment.amount_authorized == money(10_000)
    assert (captured.amount, captured.final_capture) == (money(4_000), False)
    assert captured.payment.state == res.PAYMENT_STATE_PARTIALLY_CAPTURED
    assert voided.amount_released == money(6_000)
    assert voided.reason == ""
    assert voided.payment.state == res.PAYMENT_STATE_CAPTURED
    assert refunded.amount_refunded == money(1_000)
    assert refunded.refund.state == res.REFUND_STATE_SUCCEEDED
    final = await payments.get(payment.name)
    assert refunded.payment == final  # the event carries the payment exactly as stored


async def test_a_failed_authorization_and_automatic_capture_are_announced(payments):
    await payments.route("alpha")
    declined = await payments.authorize(1_000, pm="pm_sandbox_decline")
    (failed,) = await events_of(payments, declined.name)
    assert isinstance(failed, ev.PaymentAuthorizationFailed)
    assert failed.failure.code == res.PAYMENT_FAILURE_CODE_DECLINED
    automatic = await payments.authorize(1_000, manual=False)
    kinds = [type(e).__name__ for e in await events_of(payments, automatic.name)]
    assert kinds == ["PaymentAuthorized", "PaymentCaptured"]


async def test_a_refused_request_stages_nothing(payments):
    await payments.route("alpha")
    payment = await payments.authorize(1_000)
    before = await events_of(payments, payment.name)
    await payments.fails(
        "CapturePayment",
        pb.CapturePaymentRequest(
            name=payment.name, amount=money(1_001), request_id=new_request_id()
        ),
    )
    assert await events_of(payments, payment.name) == before
