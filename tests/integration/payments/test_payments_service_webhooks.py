"""Signed PSP webhooks: verified, deduplicated by event id, harmless in any order; a payment
whose PSP outcome is unknown is resolved by asking the PSP, exactly once."""

import asyncio
import json
import time
import uuid

import httpx
import pytest
from sqlalchemy import text

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from services.payments.sandbox.config import SandboxConfig
from services.payments.webhooks import sign
from tests.integration.payments.conftest import WEBHOOK_SECRET, error_info, new_request_id

pytestmark = pytest.mark.integration


def event(event_type, reference, event_id=None, **data):
    body = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "type": event_type,
        "created": int(time.time()),
        "data": {"id": reference, **data},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def webhook(payload, *, secret=WEBHOOK_SECRET, at=None, psp="alpha"):
    signature = sign(secret, int(at if at is not None else time.time()), payload)
    return pb.HandlePspWebhookRequest(
        psp=psp, payload=payload, signature=signature, timestamp=signature
    )


async def deliver(payments, request):
    return await payments.stub.HandlePspWebhook(request)  # PSP_SIGNATURE: no bearer token


async def refused(payments, request):
    import grpc  # noqa: PLC0415

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await deliver(payments, request)
    return caught.value.code().name, error_info(caught.value).reason


async def test_bad_signatures_and_stale_timestamps_are_refused(payments):
    payload = event("authorization.captured", "sbx_auth_x")
    assert await refused(payments, webhook(payload, secret=b"not-the-secret")) == (
        "UNAUTHENTICATED",
        "WEBHOOK_SIGNATURE_INVALID",
    )
    tampered = webhook(payload)
    tampered.payload = payload.replace(b"captured", b"voided")
    assert await refused(payments, tampered) == ("UNAUTHENTICATED", "WEBHOOK_SIGNATURE_INVALID")
    stale = webhook(payload, at=time.time() - 301)
    assert await refused(payments, stale) == (
        "UNAUTHENTICATED",
        "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE",
    )
    assert await refused(payments, webhook(payload, psp="nobody")) == ("NOT_FOUND", "UNKNOWN_PSP")
    garbage = webhook(b"{not json")
    assert await refused(payments, garbage) == ("INVALID_ARGUMENT", "WEBHOOK_PAYLOAD_INVALID")
    async with payments.database.transaction() as session:
        found = await session.scalar(
            text("SELECT count(*) FROM webhook_events WHERE psp_reference = 'sbx_auth_x'")
        )
    assert found == 0


async def test_duplicates_and_out_of_order_events_have_no_second_effect(payments):
    await payments.route("alpha")
    payment = await payments.authorize(5_000)
    await payments.capture(payment.name, 5_000)
    before = await payments.get(payment.name)
    holds = await payments.holds()
    captured = webhook(event("authorization.captured", payment.psp_reference))
    authorized = webhook(event("authorization.authorized", payment.psp_reference))
    first = await deliver(payments, captured)
    late = await deliver(payments, authorized)  # older news, arriving after
    again = await deliver(payments, captured)
    assert (first.duplicate, late.duplicate, again.duplicate) == (False, False, True)
    assert first.payment == late.payment == again.payment == payment.name
    assert await payments.get(payment.name) == before
    assert await payments.holds() == holds


async def test_unrelated_event_types_are_acknowledged_and_ignored(payments):
    reply = await deliver(payments, webhook(event("payout.paid", "po_1")))
    assert (reply.ignored, reply.duplicate, reply.payment) == (True, False, "")


async def test_an_unknown_authorization_is_resolved_by_asking_the_psp(payments):
    await payments.route("alpha", "beta")
    payments.alpha.state.config = SandboxConfig(timeout_seconds=1.0)
    payment = await payments.authorize(6_600, pm="pm_sandbox_timeout")
    assert payment.outcome_unknown
    assert payment.state == res.PAYMENT_STATE_REQUIRES_AUTHORIZATION
    assert payment.ambiguous_outcome.psp == "alpha"
    assert [a.psp for a in payment.attempts] == ["alpha"]  # never failed over
    assert payment.attempts[0].outcome == res.ATTEMPT_OUTCOME_UNKNOWN
    code, info = await payments.fails(
        "CapturePayment", pb.CapturePaymentRequest(name=payment.name, request_id=new_request_id())
    )
    assert (code.name, info.reason) == ("FAILED_PRECONDITION", "PAYMENT_OUTCOME_UNKNOWN")
    listed = await payments.call(
        "ListPayments", pb.ListPaymentsRequest(parent=payments.parent, outcome_unknown_only=True)
    )
    assert [p.name for p in listed.payments] == [payment.name]
    assert await payments.holds() == []
    # Any authentic webhook of that PSP is a nudge: the PSP is asked, in any order, once.
    replies = await asyncio.gather(
        deliver(payments, webhook(event("authorization.captured", "sbx_auth_unknown"))),
        deliver(payments, webhook(event("authorization.authorized", "sbx_auth_unknown"))),
    )
    assert {r.duplicate for r in replies} == {False}
    resolved = await payments.get(payment.name)
    assert resolved.state == res.PAYMENT_STATE_AUTHORIZED
    assert not resolved.outcome_unknown
    assert resolved.attempts[-1].operation == res.PAYMENT_OPERATION_STATUS_INQUIRY
    assert (
        len(payments.alpha.state.books.by_idempotency_key(payment.attempts[0].psp_idempotency_key))
        == 1
    )
    holds = await payments.holds()
    assert [(h.amount.amount_minor, h.state) for h in holds] == [(6_600, 1)]
    captured = await payments.capture(payment.name)
    assert captured.state == res.PAYMENT_STATE_CAPTURED


async def test_the_resolver_asks_about_due_unknown_outcomes(payments):
    await payments.route("alpha")
    payments.alpha.state.config = SandboxConfig(timeout_seconds=1.0)
    payment = await payments.authorize(700, pm="pm_sandbox_timeout")
    assert payment.outcome_unknown
    assert await payments.service.resolve_due() == 0  # not due yet (backoff)
    await payments.service.resolve_due(due_only=False)
    resolved = await payments.get(payment.name)
    assert resolved.state == res.PAYMENT_STATE_AUTHORIZED


async def test_the_sandbox_posts_signed_webhooks_to_the_http_endpoint(payments):
    await payments.route("alpha")
    payments.alpha.state.config = SandboxConfig(
        webhook_url=f"{payments.webhook_url}/v1/webhooks/alpha"
    )
    payment = await payments.authorize(1_234)
    await payments.capture(payment.name)
    for _ in range(100):
        if len(payments.alpha.state.notifier.delivered) >= 2:
            break
        await asyncio.sleep(0.05)
    async with payments.database.transaction() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT event_type, payment_id FROM webhook_events"
                    " WHERE psp = 'alpha' AND psp_reference = :r ORDER BY receive_time"
                ),
                {"r": payment.psp_reference},
            )
        ).all()
    assert [r.event_type for r in rows] == ["authorization.authorized", "authorization.captured"]
    # The authorization's webhook may arrive before the payment recorded the PSP reference
    # (nothing is pending then, so it is only logged); the capture's matches the payment.
    assert rows[1].payment_id == payment.name.rsplit("/", 1)[1]
    async with httpx.AsyncClient() as client:
        forged = await client.post(
            f"{payments.webhook_url}/v1/webhooks/alpha",
            content=b'{"id":"evt_x","type":"authorization.voided","data":{}}',
            headers={"Sandbox-Signature": "t=1,v1=00"},
        )
    assert (forged.status_code, forged.json()) == (401, {"error": "WEBHOOK_SIGNATURE_INVALID"})


async def test_a_request_id_replays_the_first_answer(payments):
    await payments.route("alpha")
    payment = await payments.authorize(800)
    request = webhook(event("authorization.authorized", payment.psp_reference))
    request.request_id = new_request_id()
    first = await deliver(payments, request)
    assert first.duplicate is False
    again = await deliver(payments, request)
    assert again == first  # the first answer, not "duplicate"
    other = webhook(event("authorization.voided", payment.psp_reference))
    other.request_id = request.request_id
    assert await refused(payments, other) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    forged = webhook(event("authorization.voided", payment.psp_reference), secret=b"x")
    forged.request_id = request.request_id
    assert await refused(payments, forged) == ("UNAUTHENTICATED", "WEBHOOK_SIGNATURE_INVALID")
