"""Authorize, capture, void and refund through the RPCs, against real sandboxes and a real
ledger: every legal transition, the ledger's holds and entries, amounts to the cent."""

import pytest
from sqlalchemy import text

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from tests.integration.payments.conftest import money, new_request_id

pytestmark = pytest.mark.integration


async def test_authorize_holds_the_amount_in_the_ledger(payments):
    await payments.route("alpha", "beta")
    payment = await payments.authorize(12_345)
    assert payment.state == res.PAYMENT_STATE_AUTHORIZED
    assert payment.psp == "alpha"
    assert payment.psp_reference.startswith("sbx_auth_")
    assert payment.amount_authorized == money(12_345)
    assert [a.outcome for a in payment.attempts] == [res.ATTEMPT_OUTCOME_SUCCEEDED]
    assert payment.attempts[0].psp_idempotency_key  # the request_id went to the PSP
    holds = await payments.holds()
    assert [(h.amount.amount_minor, h.state) for h in holds] == [(12_345, 1)]
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert clearing.debits_pending.amount_minor == 12_345
    stored = await payments.get(payment.name)
    assert stored == payment


async def test_full_capture_posts_the_hold(payments):
    await payments.route("alpha")
    payment = await payments.authorize(5_000)
    captured = await payments.capture(payment.name)
    assert captured.state == res.PAYMENT_STATE_CAPTURED
    assert captured.amount_captured == money(5_000)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert clearing.debits_posted.amount_minor == 5_000
    assert clearing.debits_pending.amount_minor == 0
    funds = await payments.balance("payments-customer-funds-usd")
    assert funds.credits_posted.amount_minor == 5_000


async def test_partial_captures_end_in_captured_with_exact_ledger_amounts(payments):
    await payments.route("alpha")
    payment = await payments.authorize(10_000)
    first = await payments.capture(payment.name, 2_500)
    assert first.state == res.PAYMENT_STATE_PARTIALLY_CAPTURED
    assert first.amount_captured == money(2_500)
    second = await payments.capture(payment.name, 2_500)
    assert second.state == res.PAYMENT_STATE_PARTIALLY_CAPTURED
    last = await payments.capture(payment.name)  # the rest
    assert last.state == res.PAYMENT_STATE_CAPTURED
    assert last.amount_captured == money(10_000)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert (clearing.debits_posted.amount_minor, clearing.debits_pending.amount_minor) == (
        10_000,
        0,
    )
    holds = await payments.holds()
    assert sorted((h.posted_amount.amount_minor, h.state) for h in holds) == [
        (2_500, 2),
        (2_500, 2),
        (5_000, 2),
    ]


async def test_a_final_partial_capture_releases_the_rest(payments):
    await payments.route("alpha")
    payment = await payments.authorize(8_000)
    captured = await payments.capture(payment.name, 3_000, final_capture=True)
    assert captured.state == res.PAYMENT_STATE_CAPTURED
    assert captured.amount_captured == money(3_000)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert (clearing.debits_posted.amount_minor, clearing.debits_pending.amount_minor) == (
        3_000,
        0,
    )
    code, info = await payments.fails("CapturePayment", capture_request(payments, captured, 1))
    assert (code.name, info.reason, info.metadata["state"]) == (
        "FAILED_PRECONDITION",
        "INVALID_PAYMENT_STATE",
        "CAPTURED",
    )


def capture_request(payments, payment, amount=None, currency="USD"):

    request = pb.CapturePaymentRequest(name=payment.name, request_id=new_request_id())
    if amount is not None:
        request.amount.CopyFrom(money(amount, currency))
    return request


def void_request(payment):

    return pb.VoidPaymentRequest(
        name=payment.name, reason="order canceled", request_id=new_request_id()
    )


async def test_void_releases_the_hold(payments):
    await payments.route("alpha")
    payment = await payments.authorize(4_000)
    reply = await payments.call("VoidPayment", void_request(payment))
    assert reply.payment.state == res.PAYMENT_STATE_VOIDED
    (hold,) = await payments.holds()
    assert hold.state == 3  # HOLD_STATE_VOIDED
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert (clearing.debits_posted.amount_minor, clearing.debits_pending.amount_minor) == (0, 0)
    for method, request in (
        ("CapturePayment", capture_request(payments, payment)),
        ("VoidPayment", void_request(payment)),
        ("RefundPayment", payments.refund_request(payment.name)),
    ):
        code, info = await payments.fails(method, request)
        assert (code.name, info.reason, info.metadata["state"]) == (
            "FAILED_PRECONDITION",
            "INVALID_PAYMENT_STATE",
            "VOIDED",
        ), method


async def test_void_after_a_partial_capture_ends_captured(payments):
    await payments.route("alpha")
    payment = await payments.authorize(9_000)
    await payments.capture(payment.name, 1_000)
    reply = await payments.call("VoidPayment", void_request(payment))
    assert reply.payment.state == res.PAYMENT_STATE_CAPTURED
    assert reply.payment.amount_captured == money(1_000)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert (clearing.debits_posted.amount_minor, clearing.debits_pending.amount_minor) == (
        1_000,
        0,
    )


async def test_partial_refunds_sum_exactly_to_the_captured_amount(payments):
    await payments.route("alpha")
    payment = await payments.authorize(10_000)
    await payments.capture(payment.name, 7_001, final_capture=True)
    states = []
    for amount in (3_000, 4_000, 1):
        reply = await payments.call("RefundPayment", payments.refund_request(payment.name, amount))
        assert reply.refund.state == res.REFUND_STATE_SUCCEEDED
        assert reply.refund.amount == money(amount)
        states.append(reply.payment.state)
    assert states == [
        res.PAYMENT_STATE_PARTIALLY_REFUNDED,
        res.PAYMENT_STATE_PARTIALLY_REFUNDED,
        res.PAYMENT_STATE_REFUNDED,
    ]
    final = await payments.get(payment.name)
    assert final.amount_refunded == final.amount_captured == money(7_001)
    code, info = await payments.fails("RefundPayment", payments.refund_request(payment.name, 1))
    assert (code.name, info.reason) == ("FAILED_PRECONDITION", "INVALID_PAYMENT_STATE")
    funds = await payments.balance("payments-customer-funds-usd")
    assert (funds.credits_posted.amount_minor, funds.debits_posted.amount_minor) == (7_001, 7_001)
    listed = await payments.call("ListRefunds", pb.ListRefundsRequest(parent=payment.name))
    assert [r.amount.amount_minor for r in listed.refunds] == [3_000, 4_000, 1]
    got = await payments.call("GetRefund", pb.GetRefundRequest(name=listed.refunds[1].name))
    assert got.refund == listed.refunds[1]


async def test_refund_above_the_refundable_amount_is_refused(payments):
    await payments.route("alpha")
    payment = await payments.authorize(5_000)
    await payments.capture(payment.name, 5_000)
    await payments.call("RefundPayment", payments.refund_request(payment.name, 4_000))
    code, info = await payments.fails("RefundPayment", payments.refund_request(payment.name, 1_001))
    assert (code.name, info.reason) == ("INVALID_ARGUMENT", "REFUND_AMOUNT_EXCEEDED")
    assert info.metadata["refundable_minor"] == "1000"


async def test_amount_rules_on_capture(payments):
    await payments.route("alpha")
    payment = await payments.authorize(5_000)
    code, info = await payments.fails("CapturePayment", capture_request(payments, payment, 5_001))
    assert (code.name, info.reason) == ("INVALID_ARGUMENT", "CAPTURE_AMOUNT_EXCEEDED")
    code, info = await payments.fails(
        "CapturePayment", capture_request(payments, payment, 100, "EUR")
    )
    assert (code.name, info.reason) == ("INVALID_ARGUMENT", "CURRENCY_MISMATCH")
    code, info = await payments.fails("RefundPayment", payments.refund_request(payment.name, 100))
    assert (code.name, info.reason, info.metadata["state"]) == (
        "FAILED_PRECONDITION",
        "INVALID_PAYMENT_STATE",
        "AUTHORIZED",
    )
    unchanged = await payments.get(payment.name)
    assert unchanged.state == res.PAYMENT_STATE_AUTHORIZED
    assert unchanged.amount_captured == money(0)


async def test_a_decline_is_a_failed_payment_and_nothing_is_held(payments):
    await payments.route("alpha", "beta")
    payment = await payments.authorize(3_000, pm="pm_sandbox_insufficient_funds")
    assert payment.state == res.PAYMENT_STATE_FAILED
    assert payment.failure.code == res.PAYMENT_FAILURE_CODE_INSUFFICIENT_FUNDS
    assert payment.failure.psp == "alpha"
    assert [a.psp for a in payment.attempts] == ["alpha"]  # a decline never fails over
    assert await payments.holds() == []
    for method, request in (
        ("CapturePayment", capture_request(payments, payment)),
        ("VoidPayment", void_request(payment)),
    ):
        _code, info = await payments.fails(method, request)
        assert (info.reason, info.metadata["state"]) == ("INVALID_PAYMENT_STATE", "FAILED")


async def test_automatic_capture_posts_one_entry(payments):
    await payments.route("beta")
    payment = await payments.authorize(2_222, manual=False)
    assert payment.state == res.PAYMENT_STATE_CAPTURED
    assert payment.amount_captured == payment.amount_authorized == money(2_222)
    assert await payments.holds() == []
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert clearing.debits_posted.amount_minor == 2_222


async def test_without_a_route_the_payment_fails_with_no_route(payments):
    payment = await payments.authorize(1_000)  # the tenant has no routing config yet
    assert payment.state == res.PAYMENT_STATE_FAILED
    assert payment.failure.code == res.PAYMENT_FAILURE_CODE_NO_ROUTE
    assert list(payment.attempts) == []


async def test_unknown_payments_are_not_found(payments):
    code, info = await payments.fails(
        "GetPayment", pb.GetPaymentRequest(name=payments.name("nope"))
    )
    assert (code.name, info.reason) == ("NOT_FOUND", "PAYMENT_NOT_FOUND")
    fake = res.Payment(name=payments.name("nope"))
    code, info = await payments.fails("CapturePayment", capture_request(payments, fake))
    assert (code.name, info.reason) == ("NOT_FOUND", "PAYMENT_NOT_FOUND")


async def test_a_client_chosen_id_is_taken_once(payments):
    await payments.route("alpha")
    await payments.authorize(1_000, payment_id="order-42")
    code, info = await payments.fails(
        "AuthorizePayment", payments.authorize_request(1_000, payment_id="order-42")
    )
    assert (code.name, info.reason) == ("ALREADY_EXISTS", "PAYMENT_ALREADY_EXISTS")


async def test_every_transition_is_recorded_in_order(payments):
    await payments.route("alpha")
    payment = await payments.authorize(6_000, payment_id="hist")
    await payments.capture(payment.name, 1_000)
    await payments.capture(payment.name, 5_000)
    await payments.call("RefundPayment", payments.refund_request(payment.name, 6_000))
    async with payments.database.tenant_transaction(payments.tenant) as session:
        rows = (
            await session.execute(
                text(
                    "SELECT from_state, to_state, operation FROM payment_transitions"
                    " WHERE payment_id = 'hist' ORDER BY sequence"
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (None, "REQUIRES_AUTHORIZATION", "CREATE"),
        ("REQUIRES_AUTHORIZATION", "AUTHORIZED", "AUTHORIZE"),
        ("AUTHORIZED", "PARTIALLY_CAPTURED", "CAPTURE"),
        ("PARTIALLY_CAPTURED", "CAPTURED", "CAPTURE"),
        ("CAPTURED", "REFUNDED", "REFUND"),
    ]


async def test_list_payments_pages_newest_first(payments):
    await payments.route("alpha")
    created = [await payments.authorize(100 + i) for i in range(5)]
    seen, token = [], ""
    while True:
        reply = await payments.call(
            "ListPayments",
            pb.ListPaymentsRequest(parent=payments.parent, page_size=2, page_token=token),
        )
        seen += [p.name for p in reply.payments]
        token = reply.next_page_token
        if not token:
            break
    assert seen == [p.name for p in reversed(created)]
    code, info = await payments.fails(
        "ListPayments",
        pb.ListPaymentsRequest(parent=payments.parent, page_token="bm90LWEtdG9rZW4"),
    )
    assert (code.name, info.reason) == ("INVALID_ARGUMENT", "INVALID_PAGE_TOKEN")


async def lapse(payments, payment_id):
    """Move the authorization's expiry into the past (as if seven days went by)."""
    async with payments.database.tenant_transaction(payments.tenant) as session:
        await session.execute(
            text(
                "UPDATE payments SET expire_time = now() - interval '1 second'"
                " WHERE payment_id = :p"
            ),
            {"p": payment_id},
        )
    async with payments.database.transaction() as session:
        await session.execute(
            text(
                "UPDATE expiring_authorizations SET expire_time = now() - interval '1 second'"
                " WHERE payment_id = :p"
            ),
            {"p": payment_id},
        )


async def test_a_lapsed_authorization_expires_and_its_hold_is_released(payments):
    await payments.route("alpha")
    payment = await payments.authorize(3_000, payment_id="lapse-a")
    assert payment.HasField("expire_time")
    await lapse(payments, "lapse-a")
    code, info = await payments.fails("CapturePayment", capture_request(payments, payment))
    assert (code.name, info.reason) == ("FAILED_PRECONDITION", "AUTHORIZATION_EXPIRED")
    assert await payments.service.expire_due() >= 1
    expired = await payments.get(payment.name)
    assert expired.state == res.PAYMENT_STATE_EXPIRED
    assert not expired.HasField("expire_time")
    (hold,) = await payments.holds()
    assert hold.state == 3  # HOLD_STATE_VOIDED
    code, info = await payments.fails("VoidPayment", void_request(payment))
    assert (info.reason, info.metadata["state"]) == ("INVALID_PAYMENT_STATE", "EXPIRED")


async def test_a_lapse_after_a_partial_capture_keeps_what_was_captured(payments):
    await payments.route("alpha")
    payment = await payments.authorize(5_000, payment_id="lapse-b")
    await payments.capture(payment.name, 1_200)
    await lapse(payments, "lapse-b")
    assert await payments.service.expire_due() >= 1
    final = await payments.get(payment.name)
    assert final.state == res.PAYMENT_STATE_CAPTURED
    assert final.amount_captured == money(1_200)
    clearing = await payments.balance("payments-psp-clearing-usd")
    assert (clearing.debits_posted.amount_minor, clearing.debits_pending.amount_minor) == (
        1_200,
        0,
    )
    refunded = await payments.call("RefundPayment", payments.refund_request(payment.name))
    assert refunded.refund.amount == money(1_200)
    assert refunded.payment.state == res.PAYMENT_STATE_REFUNDED


async def payment_in(payments, state):
    """A payment brought to `state` through the RPCs (and the expiry sweep)."""
    if state == "FAILED":
        return await payments.authorize(1_000, pm="pm_sandbox_decline")
    payment = await payments.authorize(1_000)
    if state == "PARTIALLY_CAPTURED":
        return await payments.capture(payment.name, 400)
    if state in {"CAPTURED", "PARTIALLY_REFUNDED", "REFUNDED"}:
        payment = await payments.capture(payment.name)
    if state in {"PARTIALLY_REFUNDED", "REFUNDED"}:
        amount = 300 if state == "PARTIALLY_REFUNDED" else 1_000
        reply = await payments.call("RefundPayment", payments.refund_request(payment.name, amount))
        payment = reply.payment
    if state == "VOIDED":
        payment = (await payments.call("VoidPayment", void_request(payment))).payment
    if state == "EXPIRED":
        await lapse(payments, payment.name.rsplit("/", 1)[1])
        await payments.service.expire_due()
        payment = await payments.get(payment.name)
    return payment


LEGAL = {
    "capture": {"AUTHORIZED", "PARTIALLY_CAPTURED"},
    "void": {"AUTHORIZED", "PARTIALLY_CAPTURED"},
    "refund": {"CAPTURED", "PARTIALLY_REFUNDED"},
}
AFTER = {
    ("capture", "AUTHORIZED"): "CAPTURED",
    ("capture", "PARTIALLY_CAPTURED"): "CAPTURED",
    ("void", "AUTHORIZED"): "VOIDED",
    ("void", "PARTIALLY_CAPTURED"): "CAPTURED",
    ("refund", "CAPTURED"): "PARTIALLY_REFUNDED",
    ("refund", "PARTIALLY_REFUNDED"): "PARTIALLY_REFUNDED",
}
STATES = [
    "AUTHORIZED",
    "PARTIALLY_CAPTURED",
    "CAPTURED",
    "PARTIALLY_REFUNDED",
    "REFUNDED",
    "VOIDED",
    "FAILED",
    "EXPIRED",
]


@pytest.mark.parametrize("operation", ["capture", "void", "refund"])
@pytest.mark.parametrize("state", STATES)
async def test_each_operation_in_each_state(payments, state, operation):
    await payments.route("alpha")
    payment = await payment_in(payments, state)
    assert res.PaymentState.Name(payment.state) == f"PAYMENT_STATE_{state}"
    request = {
        "capture": lambda: capture_request(payments, payment),
        "void": lambda: void_request(payment),
        "refund": lambda: payments.refund_request(payment.name, 100),
    }[operation]()
    method = {"capture": "CapturePayment", "void": "VoidPayment", "refund": "RefundPayment"}
    if state in LEGAL[operation]:
        reply = await payments.call(method[operation], request)
        expected = AFTER[(operation, state)]
        assert res.PaymentState.Name(reply.payment.state) == f"PAYMENT_STATE_{expected}"
    else:
        code, info = await payments.fails(method[operation], request)
        assert (code.name, info.reason, info.metadata["state"]) == (
            "FAILED_PRECONDITION",
            "INVALID_PAYMENT_STATE",
            state,
        )
        assert (await payments.get(payment.name)) == payment  # nothing changed
