"""Order reads: GetOrder with saga history, GetOrderStatus for pollers, ListOrders per
customer with pages and filters, and tenants that never see each other's orders."""

from __future__ import annotations

import grpc

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import order_pb2 as opb


async def place(shopper, customer_id: str, token: str = "pm_sandbox_ok") -> str:  # noqa: S107
    quoted = await shopper.quoted(customer_id=customer_id)
    try:
        reply = await shopper.call("PlaceOrder", shopper.place_request(quoted, token=token))
    except grpc.aio.AioRpcError as error:
        name: str = shopper.error_info(error).metadata["order"]
        return name
    placed: str = reply.order.name
    return placed


async def test_list_orders_pages_newest_first_per_customer_and_state(shopper):
    names = [await place(shopper, "alice") for _ in range(3)]
    declined = await place(shopper, "alice", token="pm_sandbox_decline")
    bob = await place(shopper, "bob")
    alice = 'customer_id = "alice"'
    seen: list[str] = []
    token = ""
    while True:
        reply = await shopper.call(
            "ListOrders",
            pb.ListOrdersRequest(
                parent=shopper.parent, page_size=2, filter=alice, page_token=token
            ),
        )
        assert all(not o.saga_steps for o in reply.orders)  # history only in GetOrder
        seen += [o.name for o in reply.orders]
        token = reply.next_page_token
        if not token:
            break
    assert seen == [declined, *reversed(names)]
    confirmed = await shopper.call(
        "ListOrders",
        pb.ListOrdersRequest(
            parent=shopper.parent, filter=f"{alice} AND state = ORDER_STATE_CONFIRMED"
        ),
    )
    assert [o.name for o in confirmed.orders] == list(reversed(names))
    everyone = await shopper.call("ListOrders", pb.ListOrdersRequest(parent=shopper.parent))
    assert everyone.orders[0].name == bob
    assert len(everyone.orders) == 5


async def test_a_page_token_is_bound_to_its_listing(shopper):
    for _ in range(2):
        await place(shopper, "carol")
    first = await shopper.call(
        "ListOrders", pb.ListOrdersRequest(parent=shopper.parent, page_size=1)
    )
    assert first.next_page_token
    other_filter = pb.ListOrdersRequest(
        parent=shopper.parent,
        page_size=1,
        filter='customer_id = "carol"',
        page_token=first.next_page_token,
    )
    code, info = await shopper.fails("ListOrders", other_filter)
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
    garbage = pb.ListOrdersRequest(parent=shopper.parent, page_token="not-a-token")
    code, info = await shopper.fails("ListOrders", garbage)
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


async def test_an_unknown_state_in_the_filter_is_invalid_filter(shopper):
    request = pb.ListOrdersRequest(parent=shopper.parent, filter="state = ORDER_STATE_LOST")
    code, info = await shopper.fails("ListOrders", request)
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER")


async def test_get_order_has_saga_history_and_status_is_cheap(shopper):
    name = await place(shopper, "dave", token="pm_sandbox_decline")
    order = await shopper.order(name)
    (step,) = order.saga_steps
    assert (step.type, step.state, step.error_reason) == (
        opb.SAGA_STEP_TYPE_AUTHORIZE_PAYMENT,
        opb.SAGA_STEP_STATE_FAILED,
        "PAYMENT_DECLINED",
    )
    assert step.request_id
    assert step.HasField("finish_time")
    status = await shopper.call("GetOrderStatus", pb.GetOrderStatusRequest(name=name))
    assert (status.state, status.done, status.failure.decline_code) == (
        opb.ORDER_STATE_FAILED,
        True,
        "do_not_honor",
    )
    assert status.total == order.quote.total


async def test_orders_of_another_tenant_are_not_found(shopper, another_shopper):
    name = await place(shopper, "erin")
    foreign = name.replace(shopper.parent, another_shopper.parent)
    for method, request in (
        ("GetOrder", pb.GetOrderRequest(name=foreign)),
        ("GetOrderStatus", pb.GetOrderStatusRequest(name=foreign)),
    ):
        code, info = await another_shopper.fails(method, request)
        assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "ORDER_NOT_FOUND")
    listed = await another_shopper.call(
        "ListOrders", pb.ListOrdersRequest(parent=another_shopper.parent)
    )
    assert list(listed.orders) == []
