"""PlaceOrder through the real payments service, the sandbox PSP and the ledger: the saga's
happy path, 50 concurrent duplicates, and the compensations (decline, capture failure,
failure after capture). Every test checks money where it lives: payments, the PSP's books
and the ledger."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from sqlalchemy import text

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import order_pb2 as opb
from commerce.checkout.v1 import resources_pb2 as res
from commerce.payments.v1 import resources_pb2 as pres

CUSTOMER_FUNDS = "payments-customer-funds-usd"


async def outbox_types(mesh, tenant: str, subject: str) -> list[str]:
    async with mesh.checkout_database.tenant_transaction(tenant) as session:
        rows = await session.execute(
            text("SELECT type FROM outbox WHERE subject = :s ORDER BY position"), {"s": subject}
        )
        return [row.type for row in rows]


async def assert_charged(shopper, order, amount: int) -> None:
    """Payments, the PSP's books and the ledger all say `amount` stayed with the merchant."""
    (payment,) = await shopper.payments_for(order.name)
    assert payment.amount_captured.amount_minor - payment.amount_refunded.amount_minor == amount
    (authorization,) = shopper.mesh.psp_authorizations(order.name)
    assert authorization.amount_captured_minor - authorization.amount_refunded_minor == amount
    balance = await shopper.ledger_balance(CUSTOMER_FUNDS)
    posted = balance.posted.amount_minor if balance is not None else 0
    pending = balance.pending.amount_minor if balance is not None else 0
    assert (posted, pending) == (amount, 0)


async def test_place_order_authorizes_captures_confirms_and_publishes(shopper, mesh):
    quoted = await shopper.quoted(shopper.line("mug", 2, 1999))
    order = (await shopper.call("PlaceOrder", shopper.place_request(quoted))).order
    assert order.state == opb.ORDER_STATE_CONFIRMED
    assert [(s.type, s.state, s.attempt_count) for s in order.saga_steps] == [
        (opb.SAGA_STEP_TYPE_AUTHORIZE_PAYMENT, opb.SAGA_STEP_STATE_SUCCEEDED, 1),
        (opb.SAGA_STEP_TYPE_CAPTURE_PAYMENT, opb.SAGA_STEP_STATE_SUCCEEDED, 1),
        (opb.SAGA_STEP_TYPE_CONFIRM_ORDER, opb.SAGA_STEP_STATE_SUCCEEDED, 1),
    ]
    assert order.payment.endswith("/payments/" + order.name.rsplit("/", 1)[-1])
    assert order.capture_reference
    assert order.HasField("confirm_time")
    assert order.quote == quoted.quote
    await assert_charged(shopper, order, quoted.quote.total.amount_minor)
    got = (await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=quoted.name))).checkout
    assert (got.state, got.order) == (res.CHECKOUT_STATE_COMPLETED, order.name)
    assert await outbox_types(mesh, shopper.tenant, order.name) == [
        "commerce.checkout.v1.OrderPlaced",
        "commerce.checkout.v1.CheckoutCompleted",
    ]
    status = await shopper.call("GetOrderStatus", pb.GetOrderStatusRequest(name=order.name))
    assert (status.done, status.state, status.etag) == (True, order.state, order.etag)


async def test_fifty_concurrent_place_orders_make_one_order_and_one_charge(shopper):
    quoted = await shopper.quoted()
    request = shopper.place_request(quoted)
    replies = await asyncio.gather(*(shopper.call("PlaceOrder", request) for _ in range(50)))
    names = {reply.order.name for reply in replies}
    assert len(names) == 1
    (name,) = names
    order = await shopper.order(name)
    assert order.state == opb.ORDER_STATE_CONFIRMED, order.saga_steps
    assert len(await shopper.payments_for(name)) == 1
    (authorization,) = shopper.mesh.psp_authorizations(name)
    assert authorization.amount_captured_minor == quoted.quote.total.amount_minor
    captures = [
        e
        for e in shopper.mesh.sandbox.state.books.settlement
        if e.authorization == authorization.id and e.type == "capture"
    ]
    assert len(captures) == 1
    await assert_charged(shopper, order, quoted.quote.total.amount_minor)
    listed = await shopper.call("ListOrders", pb.ListOrdersRequest(parent=shopper.parent))
    assert [o.name for o in listed.orders] == [name]


async def test_a_changed_cart_under_the_same_request_id_is_refused(shopper):
    first = await shopper.quoted()
    request = shopper.place_request(first, token="pm_sandbox_decline")
    code, _ = await shopper.fails("PlaceOrder", request)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    reopened = (await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=first.name))).checkout
    changed = await shopper.quote(reopened)  # a new quote: another cart as far as we know
    request = shopper.place_request(changed, request_id=request.request_id)
    code, info = await shopper.fails("PlaceOrder", request)
    assert (code, info.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


async def test_a_decline_fails_the_order_without_money_and_reopens_the_checkout(shopper):
    quoted = await shopper.quoted()
    code, info = await shopper.fails(
        "PlaceOrder", shopper.place_request(quoted, token="pm_sandbox_insufficient_funds")
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_DECLINED")
    assert info.metadata["decline_code"] == "insufficient_funds"
    order = await shopper.order(info.metadata["order"])
    assert order.state == opb.ORDER_STATE_FAILED
    assert order.failure.step == opb.SAGA_STEP_TYPE_AUTHORIZE_PAYMENT
    (payment,) = await shopper.payments_for(order.name)
    assert payment.state == pres.PAYMENT_STATE_FAILED
    await assert_charged(shopper, order, 0)
    checkout = (await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=quoted.name))).checkout
    assert (checkout.state, checkout.order) == (res.CHECKOUT_STATE_OPEN, order.name)
    retried = await shopper.call("PlaceOrder", shopper.place_request(checkout))
    assert retried.order.state == opb.ORDER_STATE_CONFIRMED


async def test_a_failed_capture_voids_the_authorization(shopper, mesh, start_checkout):
    def psp_outage(point: str) -> None:
        if point == "capture.before":
            mesh.set_psp(error_rate=1.0)  # the PSP goes down right after authorizing
        elif point == "void.before":
            mesh.set_psp(error_rate=0.0)  # and is back for the compensation

    server = await start_checkout(checkpoint=psp_outage, max_attempts=2)
    try:
        quoted = await shopper.quoted()
        order = (
            await shopper.with_stub(server.stub).call("PlaceOrder", shopper.place_request(quoted))
        ).order
    finally:
        mesh.set_psp(error_rate=0.0)
    assert order.state == opb.ORDER_STATE_VOIDED
    assert (order.failure.reason, order.failure.step) == (
        "PSP_UNAVAILABLE",
        opb.SAGA_STEP_TYPE_CAPTURE_PAYMENT,
    )
    types = [s.type for s in order.saga_steps]
    assert types[-1] == opb.SAGA_STEP_TYPE_VOID_AUTHORIZATION
    assert order.saga_steps[1].state == opb.SAGA_STEP_STATE_FAILED
    assert order.saga_steps[1].attempt_count == 2
    (payment,) = await shopper.payments_for(order.name)
    assert payment.state == pres.PAYMENT_STATE_VOIDED
    assert [a.status for a in mesh.psp_authorizations(order.name)] == ["voided"]
    await assert_charged(shopper, order, 0)
    assert await outbox_types(mesh, shopper.tenant, order.name) == [
        "commerce.checkout.v1.OrderPlaced",
        "commerce.checkout.v1.OrderFailed",
        "commerce.checkout.v1.OrderCompensated",
    ]


async def test_a_failure_after_capture_refunds_it(shopper, mesh, start_checkout):
    server = await start_checkout(confirmation=lambda order: ("STOCK_GONE", "sold out"))
    quoted = await shopper.quoted()
    order = (
        await shopper.with_stub(server.stub).call("PlaceOrder", shopper.place_request(quoted))
    ).order
    assert order.state == opb.ORDER_STATE_REFUNDED
    assert (order.failure.reason, order.failure.step) == (
        "STOCK_GONE",
        opb.SAGA_STEP_TYPE_CONFIRM_ORDER,
    )
    refund_step = order.saga_steps[-1]
    assert refund_step.type == opb.SAGA_STEP_TYPE_REFUND_PAYMENT
    assert refund_step.resource.startswith(order.payment + "/refunds/")
    (payment,) = await shopper.payments_for(order.name)
    assert payment.amount_refunded.amount_minor == quoted.quote.total.amount_minor
    await assert_charged(shopper, order, 0)
    checkout = (await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=quoted.name))).checkout
    assert checkout.state == res.CHECKOUT_STATE_OPEN


async def test_stale_quotes_etags_and_placed_checkouts_are_refused(shopper):
    quoted = await shopper.quoted()
    wrong_quote = shopper.place_request(quoted)
    wrong_quote.quote_id = "not-the-quote"
    code, info = await shopper.fails("PlaceOrder", wrong_quote)
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "QUOTE_STALE")
    stale = shopper.place_request(quoted)
    stale.etag = "v1"
    code, info = await shopper.fails("PlaceOrder", stale)
    assert (code, info.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    order = (await shopper.call("PlaceOrder", shopper.place_request(quoted))).order
    double_click = shopper.place_request(quoted)  # a new request id, the etag it had
    code, info = await shopper.fails("PlaceOrder", double_click)
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHECKOUT_NOT_OPEN")
    assert (info.metadata["state"], info.metadata["order"]) == ("COMPLETED", order.name)
    current = (await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=quoted.name))).checkout
    code, info = await shopper.fails(
        "PlaceOrder",
        pb.PlaceOrderRequest(
            name=quoted.name,
            request_id=str(uuid.uuid4()),
            etag=current.etag,
            quote_id=quoted.quote.quote_id,
            payment_method_token="pm_sandbox_ok",
        ),
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHECKOUT_NOT_OPEN")
