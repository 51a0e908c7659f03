"""The CheckoutService servicer: proto → command, run the use case, domain → proto. Nothing else."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from datetime import UTC, datetime
from typing import Any

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from services.chassis import context as request_context
from services.chassis import pages
from services.checkout import messages
from services.checkout.domain import errors, usecases
from services.checkout.domain.checkouts import NewCheckout
from services.checkout.domain.orders import OrderState
from services.checkout.domain.ports import (
    Checkpoint,
    OrderFilter,
    TransactionRunner,
    no_checkpoint,
)
from services.checkout.domain.saga import Held, Saga
from services.checkout.domain.tax import TaxCalculator

Context = Any  # grpc.aio.ServicerContext; the interceptor owns status handling
log = logging.getLogger(__name__)


def _tenant() -> str:
    tenant = request_context.current().tenant
    if tenant is None:  # the interceptor always derives one from the resource names
        raise LookupError("no tenant for this call")
    return tenant


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _filter(text: str, parent: str) -> OrderFilter:
    """The AIP-160 subset of ListOrders (its syntax is validated by the contract)."""
    customer_id: str | None = None
    state: OrderState | None = None
    checkout_id: str | None = None
    for term in text.split(" AND ") if text else []:
        field, _, value = term.partition(" = ")
        if field == "customer_id":
            customer_id = value.strip('"')
        elif field == "state":
            if value not in messages.ORDER_STATES_BY_NAME:
                raise errors.invalid_filter(f"unknown order state {value}")
            state = messages.ORDER_STATES_BY_NAME[value]
        elif field == "checkout":
            name = value.strip('"')
            if not name.startswith(parent + "/checkouts/"):
                raise errors.invalid_filter("checkout must belong to the parent tenant")
            checkout_id = _id(name)
        else:
            raise errors.invalid_filter(f"unknown field {field!r}")
    return OrderFilter(customer_id=customer_id, state=state, checkout_id=checkout_id)


class CheckoutApi(rpc.CheckoutServiceServicer):
    """Every RPC of commerce.checkout.v1.CheckoutService."""

    def __init__(
        self,
        runner: TransactionRunner,
        tax: TaxCalculator,
        saga: Saga,
        *,
        place_order_budget: float = 10.0,
        checkpoint: Checkpoint = no_checkpoint,
    ) -> None:
        self._runner = runner
        self._tax = tax
        self._saga = saga
        self._budget = place_order_budget
        self._checkpoint = checkpoint
        self._background: set[asyncio.Task[Any]] = set()

    # --- checkouts ------------------------------------------------------------------------

    async def CreateCheckout(
        self, request: pb.CreateCheckoutRequest, _context: Context
    ) -> pb.CreateCheckoutResponse:
        key = messages.idempotency_key("CreateCheckout", request)
        given = request.checkout
        spec = NewCheckout(
            customer=messages.customer(given.customer),
            currency=given.currency_code,
            lines=messages.lines(given.lines, given.currency_code),
            shipping_address=(
                messages.address(given.shipping_address)
                if given.HasField("shipping_address")
                else None
            ),
            billing_address=(
                messages.address(given.billing_address)
                if given.HasField("billing_address")
                else None
            ),
            expire_time=messages.time_or_none(given, "expire_time"),
        )
        checkout = await self._runner.run(
            _tenant(), lambda uow: usecases.create_checkout(uow, key, spec)
        )
        return pb.CreateCheckoutResponse(checkout=messages.checkout(checkout, _now()))

    async def GetCheckout(
        self, request: pb.GetCheckoutRequest, _context: Context
    ) -> pb.GetCheckoutResponse:
        checkout_id = _id(request.name)
        checkout = await self._runner.run(
            _tenant(), lambda uow: usecases.get_checkout(uow, checkout_id)
        )
        return pb.GetCheckoutResponse(checkout=messages.checkout(checkout, _now()))

    async def UpdateCheckout(
        self, request: pb.UpdateCheckoutRequest, _context: Context
    ) -> pb.UpdateCheckoutResponse:
        key = messages.idempotency_key("UpdateCheckout", request)
        paths = [p for p in request.update_mask.paths if p not in {"name", "etag"}]
        given = request.checkout
        checkout = await self._runner.run(
            _tenant(),
            lambda uow: usecases.update_checkout(
                uow,
                key,
                _id(given.name),
                given.etag,
                lambda current: messages.changes(given, paths, current),
            ),
        )
        return pb.UpdateCheckoutResponse(checkout=messages.checkout(checkout, _now()))

    async def CancelCheckout(
        self, request: pb.CancelCheckoutRequest, _context: Context
    ) -> pb.CancelCheckoutResponse:
        key = messages.idempotency_key("CancelCheckout", request)
        checkout = await self._runner.run(
            _tenant(),
            lambda uow: usecases.cancel_checkout(uow, key, _id(request.name), request.etag),
        )
        return pb.CancelCheckoutResponse(checkout=messages.checkout(checkout, _now()))

    async def QuoteCheckout(
        self, request: pb.QuoteCheckoutRequest, _context: Context
    ) -> pb.QuoteCheckoutResponse:
        checkout = await usecases.quote_checkout(
            self._runner,
            self._tax,
            tenant=_tenant(),
            key=messages.idempotency_key("QuoteCheckout", request),
            checkout_id=_id(request.name),
            etag=request.etag,
        )
        return pb.QuoteCheckoutResponse(checkout=messages.checkout(checkout, _now()))

    # --- orders ---------------------------------------------------------------------------

    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: Context
    ) -> pb.PlaceOrderResponse:
        tenant = _tenant()
        command = usecases.PlaceOrder(
            key=messages.idempotency_key("PlaceOrder", request),
            checkout_id=_id(request.name),
            etag=request.etag,
            quote_id=request.quote_id,
            payment_method_token=request.payment_method_token,
        )
        lease = self._saga.lease()
        placed, fresh = await self._runner.run(
            tenant, lambda uow: usecases.open_order(uow, command, lease)
        )
        self._checkpoint("placed")
        held = Held(placed, lease) if fresh else None
        budget = self._call_budget(context)
        order = await self._saga.follow(tenant, placed.order_id, budget, held=held)
        if not order.done:
            self._continue(tenant, order.order_id)
        failure = order.failure
        if order.state is OrderState.FAILED and failure and failure.reason == "PAYMENT_DECLINED":
            raise errors.payment_declined(order.name, failure.decline_code)
        return pb.PlaceOrderResponse(order=messages.order(order))

    def _call_budget(self, context: Context) -> float:
        remaining: float | None = context.time_remaining() if context is not None else None
        if remaining is None:
            return self._budget
        return max(0.0, min(self._budget, remaining - 0.25))  # leave time to answer

    def _continue(self, tenant: str, order_id: str) -> None:
        """The saga goes on after the call returns; the recovery worker is the safety net.

        In a context of its own: the request's would bound every payments call of the drive
        by the request's deadline (the ambient one of clients.deadline), long past."""
        task = asyncio.get_running_loop().create_task(
            self._saga.drive(tenant, order_id), context=contextvars.Context()
        )
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background saga stopped; recovery resumes it", exc_info=task.exception())

    async def drain(self) -> None:
        """At shutdown: stop background drivers (their leases lapse; recovery resumes)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def GetOrder(self, request: pb.GetOrderRequest, _context: Context) -> pb.GetOrderResponse:
        order_id = _id(request.name)
        order = await self._runner.run(_tenant(), lambda uow: usecases.get_order(uow, order_id))
        return pb.GetOrderResponse(order=messages.order(order))

    async def GetOrderStatus(
        self, request: pb.GetOrderStatusRequest, _context: Context
    ) -> pb.GetOrderStatusResponse:
        order_id = _id(request.name)
        order = await self._runner.run(_tenant(), lambda uow: usecases.get_order(uow, order_id))
        return messages.order_status(order)

    async def ListOrders(
        self, request: pb.ListOrdersRequest, _context: Context
    ) -> pb.ListOrdersResponse:
        where = _filter(request.filter, request.parent)
        params = {"m": "ListOrders", "parent": request.parent, "filter": request.filter}
        cursor = pages.decode(request.page_token, params)
        after = None
        if cursor is not None:
            try:
                after = (datetime.fromisoformat(str(cursor["t"])), str(cursor["id"]))
            except (KeyError, ValueError):
                raise errors.invalid_page_token() from None
        size = pages.page_size(request.page_size)
        found = await self._runner.run(
            _tenant(), lambda uow: usecases.list_orders(uow, where, after, size + 1)
        )
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = pages.encode(params, {"t": last.create_time.isoformat(), "id": last.order_id})
        return pb.ListOrdersResponse(
            orders=[messages.order(o, with_steps=False) for o in found[:size]],
            next_page_token=token,
        )


def _now() -> datetime:
    return datetime.now(UTC)
