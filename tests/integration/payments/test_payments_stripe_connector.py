"""The Stripe connector against stripe-mock, Stripe's official mock validating its OpenAPI spec.

stripe-mock rejects any request that does not match the spec (400), so a passing call proves
the connector speaks the PaymentIntents API. Its answers are fixtures (a PaymentIntent always
`requires_payment_method`), so outcomes are checked for shape and normalization only.
"""

import uuid
from datetime import date

import pytest

from clients.deadline import Deadline
from services.payments.domain.money import Money
from services.payments.psp.model import (
    AuthorizeRequest,
    FailureKind,
    PspFailure,
    PspPaymentStatus,
    PspRefundStatus,
)
from services.payments.psp.stripe_connector import StripeConnector


@pytest.fixture
def stripe(http, stripe_mock_url):
    return StripeConnector(http.client, stripe_mock_url, api_key="sk_test_mock")


def soon():
    return Deadline.after(5)


async def test_authorize_sends_a_valid_manual_capture_payment_intent(stripe, http):
    key = str(uuid.uuid4())
    payment = await stripe.authorize(
        AuthorizeRequest(
            amount=Money(1_000, "USD"),
            payment_method_token="pm_card_visa",
            idempotency_key=key,
            description="order 42",
        ),
        deadline=soon(),
    )
    assert payment.psp_reference.startswith("pi_")
    assert payment.amount.currency == "USD"
    assert payment.status is PspPaymentStatus.INCOMPLETE  # the fixture's status
    sent = http.sent[-1]
    assert sent.headers["Idempotency-Key"] == key
    assert sent.headers["Authorization"] == "Bearer sk_test_mock"
    form = sent.content.decode()
    assert "capture_method=manual" in form
    assert "confirm=true" in form
    assert f"metadata%5Bcommerce_request_id%5D={key}" in form


async def test_the_idempotency_key_reaches_stripe_on_every_write(stripe, http, stripe_mock_url):
    keys = [str(uuid.uuid4()) for _ in range(3)]
    await stripe.capture(
        "pi_123", Money(500, "USD"), final=False, idempotency_key=keys[0], deadline=soon()
    )
    await stripe.void("pi_123", idempotency_key=keys[1], deadline=soon())
    refund = await stripe.refund(
        "pi_123", Money(100, "USD"), idempotency_key=keys[2], deadline=soon()
    )
    assert refund.psp_reference.startswith("re_")
    assert refund.status is PspRefundStatus.SUCCEEDED
    assert http.keys_sent_to(stripe_mock_url) == keys


async def test_retrieve_and_search_by_request_id_parse_payment_intents(stripe):
    assert (await stripe.retrieve("pi_123", deadline=soon())).psp_reference.startswith("pi_")
    found = await stripe.find_authorization(str(uuid.uuid4()), deadline=soon())
    assert found is None or found.psp_reference.startswith("pi_")


async def test_balance_transactions_become_settlement_lines(stripe):
    lines = await stripe.settlement_report(date(2026, 11, 1), date(2026, 11, 30), deadline=soon())
    assert lines
    assert all(line.line_id.startswith("txn_") for line in lines)
    assert all(line.net_minor == line.gross_minor - line.fee_minor for line in lines)


async def test_a_request_stripe_refuses_is_a_permanent_failure(http, stripe_mock_url):
    unauthorized = StripeConnector(http.client, stripe_mock_url, api_key="not_a_secret_key")
    with pytest.raises(PspFailure) as raised:
        await unauthorized.retrieve("pi_123", deadline=soon())
    assert raised.value.kind is FailureKind.PERMANENT
    assert raised.value.http_status == 401


async def test_a_malformed_reference_never_reaches_the_url(stripe, http):
    with pytest.raises(PspFailure) as raised:
        await stripe.retrieve("pi_123/../../v1/customers", deadline=soon())
    assert raised.value.kind is FailureKind.PERMANENT
    assert raised.value.skipped
    assert http.sent == []
