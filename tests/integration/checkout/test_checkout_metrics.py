"""Checkout's saga metrics through the real mesh (payments, sandbox PSP, ledger, PostgreSQL):
`checkout.saga.outcomes` counts each terminal order once under the right outcome, and
`checkout.sagas.stuck` counts in-flight orders that stopped advancing, from the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from sqlalchemy import text

from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from commerce.checkout.v1 import order_pb2 as opb
from services.chassis.server import start_server
from services.checkout import bootstrap as checkout_bootstrap
from services.checkout.config import ERROR_DOMAIN
from services.checkout.domain.orders import Order
from services.checkout.domain.ports import captured_amount_matches
from services.checkout.domain.saga import Saga
from services.checkout.metrics import SagaMetrics, StuckSagaMonitor
from tests.integration.checkout.conftest import Shopper, checkout_settings

REFUSED_PRICE = 4242  # confirmation fails for these lines: the saga refunds the capture


def refusing(order: Order) -> tuple[str, str] | None:
    if any(line.unit_price == REFUSED_PRICE for line in order.quote.lines):
        return ("STOCK_GONE", "sold out while the payment was captured")
    return captured_amount_matches(order)


@dataclass
class Metered:
    shopper: Shopper
    saga: Saga
    saga_metrics: SagaMetrics
    reader: InMemoryMetricReader

    def points(self, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
        data = self.reader.get_metrics_data()
        found: dict[tuple[tuple[str, Any], ...], float] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            assert isinstance(point, NumberDataPoint)
                            attributes = dict(point.attributes or {})
                            found[tuple(sorted(attributes.items()))] = point.value
        return found

    def outcomes(self) -> dict[str, float]:
        return {dict(k)["outcome"]: v for k, v in self.points("checkout.saga.outcomes").items()}


@pytest.fixture
async def metered(mesh, shopper) -> AsyncIterator[Metered]:
    """A checkout server whose saga reports to its own in-memory meter provider; a slow retry
    schedule and a short PlaceOrder budget let an order stay in flight when the PSP is down."""
    reader = InMemoryMetricReader()
    saga_metrics = SagaMetrics(MeterProvider(metric_readers=[reader]))
    settings = checkout_settings(
        mesh, base_delay_seconds=5.0, max_delay_seconds=5.0, place_order_budget_seconds=1.5
    )
    client, channel = checkout_bootstrap.payments_client(settings)
    runner, _leases, saga = checkout_bootstrap.build_saga(
        settings, mesh.checkout_database, client, refusing, saga_metrics=saga_metrics
    )
    api = checkout_bootstrap.build_api(settings, runner, saga)
    server = await start_server(
        settings, [checkout_bootstrap.registration(api)], error_domain=ERROR_DOMAIN
    )
    server.on_drain.append(api.drain)
    stub_channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Metered(
            shopper.with_stub(rpc.CheckoutServiceStub(stub_channel)), saga, saga_metrics, reader
        )
    finally:
        mesh.set_psp(error_rate=0.0)
        await stub_channel.close(None)
        await server.stop()
        await channel.close(None)


async def place(shopper: Shopper, price: int, token: str = "pm_sandbox_ok") -> Any:  # noqa: S107
    quoted = await shopper.quoted(shopper.line("mug", 1, price))
    try:
        return (await shopper.call("PlaceOrder", shopper.place_request(quoted, token))).order
    except grpc.aio.AioRpcError as error:
        return await shopper.order(shopper.error_info(error).metadata["order"])


async def test_each_terminal_saga_is_counted_once_by_outcome(metered):
    shopper = metered.shopper
    assert metered.outcomes() == {}
    confirmed = await place(shopper, 1250)
    declined = await place(shopper, 1250, token="pm_sandbox_insufficient_funds")
    refunded = await place(shopper, REFUSED_PRICE)
    assert (confirmed.state, declined.state, refunded.state) == (
        opb.ORDER_STATE_CONFIRMED,
        opb.ORDER_STATE_FAILED,
        opb.ORDER_STATE_REFUNDED,
    )
    assert metered.outcomes() == {"completed": 1, "declined": 1, "compensated": 1}
    # Reading a terminal order again (or driving it again) counts nothing more.
    tenant, order_id = shopper.tenant, confirmed.name.rsplit("/", 1)[-1]
    await metered.saga.drive(tenant, order_id, budget=1.0)
    assert metered.outcomes() == {"completed": 1, "declined": 1, "compensated": 1}


async def test_an_order_that_stops_advancing_is_stuck_until_it_finishes(metered, mesh):
    shopper = metered.shopper
    monitor = StuckSagaMonitor(
        mesh.checkout_database, metered.saga_metrics, after=900.0, interval=60.0
    )
    assert metered.points("checkout.sagas.stuck") == {}  # nothing read yet: no made-up zero
    before = await monitor.refresh()

    mesh.set_psp(error_rate=1.0)  # the PSP is down: the order waits for its next attempt
    waiting = await place(shopper, 1250)
    assert waiting.state == opb.ORDER_STATE_AUTHORIZING
    order_id = waiting.name.rsplit("/", 1)[-1]
    assert await monitor.refresh() == before  # in flight, but it advanced just now

    async with mesh.checkout_database.tenant_transaction(shopper.tenant) as session:
        await session.execute(
            text(
                "UPDATE orders SET update_time = update_time - interval '16 minutes'"
                " WHERE tenant_id = :tenant AND order_id = :id"
            ),
            {"tenant": shopper.tenant, "id": order_id},
        )
    assert await monitor.refresh() == before + 1
    assert metered.points("checkout.sagas.stuck") == {(): before + 1}

    mesh.set_psp(error_rate=0.0)
    done = await metered.saga.follow(shopper.tenant, order_id, budget=20.0)  # or whoever drives it
    assert done.done
    assert await monitor.refresh() == before
    assert metered.outcomes() == {"completed": 1}
