"""PlaceOrder against slow payments: it answers within the caller's deadline with the order as
it then is (never DEADLINE_EXCEEDED because a payments call outlived the budget), and the saga
goes on after the answer until the order is confirmed and charged once."""

from __future__ import annotations

import asyncio
import time

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import order_pb2 as opb
from tests.integration.checkout.test_place_order import assert_charged

DEADLINE = 1.5  # seconds the caller gives PlaceOrder
PSP_LATENCY_MS = 700  # per PSP call: authorize + capture cannot both finish in time


async def test_a_slow_payments_step_is_cut_at_the_budget_and_finished_after(shopper, mesh):
    quoted = await shopper.quoted(shopper.line("mug", 1, 1777))
    mesh.set_psp(latency_ms=PSP_LATENCY_MS)
    try:
        started = time.monotonic()
        reply = await shopper.call("PlaceOrder", shopper.place_request(quoted), timeout=DEADLINE)
        took = time.monotonic() - started
        # Still slow past the call's deadline: the drive after the answer must not be bound
        # by it (it would give up on the capture and void the authorization).
        await asyncio.sleep(DEADLINE)
    finally:
        mesh.set_psp(latency_ms=0)
    assert took < DEADLINE
    order = reply.order
    assert order.state in {opb.ORDER_STATE_AUTHORIZING, opb.ORDER_STATE_CAPTURING}, order
    # The call's own drive stopped at its budget; a driver of its own (not bound by the
    # finished call's deadline) takes the order to its end.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 20
    while loop.time() < give_up:
        status = await shopper.call("GetOrderStatus", pb.GetOrderStatusRequest(name=order.name))
        if status.done:
            break
        await asyncio.sleep(0.1)
    done = await shopper.order(order.name)
    assert done.state == opb.ORDER_STATE_CONFIRMED, done.saga_steps
    captures = [
        e
        for a in mesh.psp_authorizations(order.name)
        for e in mesh.sandbox.state.books.settlement
        if e.authorization == a.id and e.type == "capture"
    ]
    assert len(captures) == 1
    await assert_charged(shopper, done, quoted.quote.total.amount_minor)
