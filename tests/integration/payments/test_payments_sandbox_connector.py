"""The sandbox connector against a real sandbox: the whole life of a payment over HTTP."""

import uuid
from datetime import UTC, datetime

import pytest

from clients.deadline import Deadline
from services.payments.domain.attempts import FailureCode
from services.payments.domain.money import Money
from services.payments.psp.model import (
    AuthorizeRequest,
    FailureKind,
    PspFailure,
    PspPaymentStatus,
    PspRefundStatus,
    SettlementLineType,
)
from services.payments.psp.sandbox_connector import SandboxConnector
from services.payments.sandbox.books import capture_fee


def eur(minor):
    return Money(minor, "EUR")


OK_TOKEN = "pm_sandbox_ok"


def request(token=OK_TOKEN, amount=10_000, key=None):
    return AuthorizeRequest(
        amount=eur(amount),
        payment_method_token=token,
        idempotency_key=key or str(uuid.uuid4()),
        description="order 42",
    )


@pytest.fixture
def connector(http, sandbox):
    return SandboxConnector(http.client, sandbox.url)


def soon():
    return Deadline.after(5)


async def test_authorize_partial_captures_and_refunds_to_the_cent(connector, sandbox):
    auth = await connector.authorize(request(), deadline=soon())
    assert auth.status is PspPaymentStatus.AUTHORIZED
    ref = auth.psp_reference
    first = await connector.capture(
        ref, eur(4_000), final=False, idempotency_key=str(uuid.uuid4()), deadline=soon()
    )
    assert first.status is PspPaymentStatus.PARTIALLY_CAPTURED
    done = await connector.capture(
        ref, eur(6_000), final=False, idempotency_key=str(uuid.uuid4()), deadline=soon()
    )
    assert done.status is PspPaymentStatus.CAPTURED
    for part in (3_333, 3_333, 3_334):
        refund = await connector.refund(
            ref, eur(part), idempotency_key=str(uuid.uuid4()), deadline=soon()
        )
        assert refund.status is PspRefundStatus.SUCCEEDED
        assert refund.payment_reference == ref
    final = await connector.retrieve(ref, deadline=soon())
    assert final.amount_captured == final.amount_refunded == eur(10_000)
    with pytest.raises(PspFailure) as raised:
        await connector.refund(ref, eur(1), idempotency_key=str(uuid.uuid4()), deadline=soon())
    assert raised.value.kind is FailureKind.PERMANENT
    assert raised.value.http_status == 422


async def test_void_releases_the_authorization(connector):
    auth = await connector.authorize(request(), deadline=soon())
    voided = await connector.void(
        auth.psp_reference, idempotency_key=str(uuid.uuid4()), deadline=soon()
    )
    assert voided.status is PspPaymentStatus.VOIDED


async def test_automatic_capture_authorizes_and_captures_at_once(connector):
    automatic = AuthorizeRequest(
        amount=eur(500),
        payment_method_token="pm_sandbox_ok",
        idempotency_key=str(uuid.uuid4()),
        capture=True,
    )
    payment = await connector.authorize(automatic, deadline=soon())
    assert payment.status is PspPaymentStatus.CAPTURED
    assert payment.amount_captured == eur(500)


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("pm_sandbox_decline", FailureCode.DECLINED),
        ("pm_sandbox_insufficient_funds", FailureCode.INSUFFICIENT_FUNDS),
    ],
)
async def test_decline_is_classified_with_its_normalized_code(connector, token, code):
    with pytest.raises(PspFailure) as raised:
        await connector.authorize(request(token), deadline=soon())
    assert raised.value.kind is FailureKind.DECLINED
    assert raised.value.code is code
    assert raised.value.psp_reference.startswith("sbx_auth_")


async def test_the_request_id_is_the_idempotency_key_and_replays_one_authorization(
    connector, http, sandbox
):
    key = str(uuid.uuid4())
    first = await connector.authorize(request(key=key), deadline=soon())
    again = await connector.authorize(request(key=key), deadline=soon())
    assert again == first
    assert http.keys_sent_to(sandbox.url) == [key, key]
    assert len(sandbox.state.books.by_idempotency_key(key)) == 1


async def test_a_changed_request_under_the_same_key_is_a_permanent_failure(connector):
    key = str(uuid.uuid4())
    await connector.authorize(request(key=key), deadline=soon())
    with pytest.raises(PspFailure) as raised:
        await connector.authorize(request(key=key, amount=10_001), deadline=soon())
    assert raised.value.kind is FailureKind.PERMANENT
    assert raised.value.psp_code == "idempotency_key_reused"


async def test_find_authorization_by_key_resolves_an_unknown_outcome(connector):
    key = str(uuid.uuid4())
    assert await connector.find_authorization(key, deadline=soon()) is None
    created = await connector.authorize(request(key=key), deadline=soon())
    assert await connector.find_authorization(key, deadline=soon()) == created


async def test_unknown_reference_is_a_permanent_failure(connector):
    with pytest.raises(PspFailure) as raised:
        await connector.retrieve("sbx_auth_nope", deadline=soon())
    assert (raised.value.kind, raised.value.http_status) == (FailureKind.PERMANENT, 404)


async def test_settlement_report_lists_captures_with_fees_and_refunds(connector):
    auth = await connector.authorize(request(amount=2_000), deadline=soon())
    ref = auth.psp_reference
    await connector.capture(
        ref, eur(2_000), final=True, idempotency_key=str(uuid.uuid4()), deadline=soon()
    )
    await connector.refund(ref, eur(500), idempotency_key=str(uuid.uuid4()), deadline=soon())
    today = datetime.now(UTC).date()
    lines = await connector.settlement_report(today, today, deadline=soon())
    mine = [line for line in lines if line.payment_reference == ref]
    assert [(x.type, x.gross_minor, x.fee_minor, x.net_minor) for x in mine] == [
        (SettlementLineType.CAPTURE, 2_000, capture_fee(2_000), 2_000 - capture_fee(2_000)),
        (SettlementLineType.REFUND, -500, 0, -500),
    ]


async def test_a_card_number_is_refused_and_never_stored(connector, sandbox):
    with pytest.raises(PspFailure) as raised:
        await connector.authorize(
            AuthorizeRequest(
                amount=eur(100),
                payment_method_token="pm_sandbox_ok",
                idempotency_key=str(uuid.uuid4()),
                description="card 4111 1111 1111 1111",
            ),
            deadline=soon(),
        )
    assert raised.value.psp_code == "card_data_refused"
    assert "4111" not in str(raised.value)
    stored = repr(sandbox.state.books.authorizations) + repr(sandbox.state.idempotency.__dict__)
    assert "4111" not in stored


async def test_a_closed_port_is_safe_to_retry(http, closed_port_url):
    closed = SandboxConnector(http.client, closed_port_url)
    with pytest.raises(PspFailure) as raised:
        await closed.authorize(request(), deadline=soon())
    assert raised.value.kind is FailureKind.RETRYABLE_SAFE
