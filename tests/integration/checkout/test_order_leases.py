"""Order leases in PostgreSQL (ADR 0022): PlaceOrder's transaction stores the order already
opened and leased to its caller; another driver's take reads it without taking it; the
terminal write releases the lease; a finished order is never leased again."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from commerce.checkout.v1 import order_pb2 as opb
from services.checkout import messages
from services.checkout.domain import usecases
from services.checkout.domain.orders import OrderState
from services.checkout.domain.ports import Lease
from services.checkout.storage.unit_of_work import SqlLeases, SqlTransactionRunner


async def lease_columns(mesh, tenant: str, order_id: str) -> tuple[str | None, bool]:
    async with mesh.checkout_database.tenant_transaction(tenant) as session:
        row = (
            await session.execute(
                text(
                    "SELECT lease_owner, lease_until > clock_timestamp() AS live FROM orders"
                    " WHERE tenant_id = :t AND order_id = :id"
                ),
                {"t": tenant, "id": order_id},
            )
        ).one()
    return row.lease_owner, bool(row.live)


async def test_an_opened_order_is_leased_to_its_placer_until_its_terminal_write(shopper, mesh):
    quoted = await shopper.quoted(shopper.line("mug", 1, 1333))
    runner = SqlTransactionRunner(mesh.checkout_database)
    leases = SqlLeases(mesh.checkout_database)
    placer = Lease(f"placer/{uuid.uuid4().hex}", 30.0)
    request = shopper.place_request(quoted)
    command = usecases.PlaceOrder(
        messages.idempotency_key("PlaceOrder", request),  # as the servicer makes it
        quoted.name.rsplit("/", 1)[-1],
        quoted.etag,
        quoted.quote.quote_id,
        "pm_sandbox_ok",
    )
    order, fresh = await runner.run(
        shopper.tenant, lambda uow: usecases.open_order(uow, command, placer)
    )
    assert fresh
    assert order.state is OrderState.AUTHORIZING
    assert order.steps[0].attempt_count == 1
    assert await lease_columns(mesh, shopper.tenant, order.order_id) == (placer.owner, True)
    other = Lease(f"other/{uuid.uuid4().hex}", 30.0)
    assert await leases.take(shopper.tenant, order.order_id, other) == (False, order)
    assert await leases.take(shopper.tenant, "no-such-order", other) == (False, None)
    # The placer lets go (as a drive that stopped early does); the order is driven to its end
    # over the real payments service, and the terminal write leaves no lease behind.
    await leases.release(shopper.tenant, order.order_id, placer.owner)
    taken, found = await leases.take(shopper.tenant, order.order_id, other)
    assert (taken, found) == (True, order)
    await leases.release(shopper.tenant, order.order_id, other.owner)
    done = await shopper.call("PlaceOrder", request)  # the placer's call, retried
    assert done.order.state == opb.ORDER_STATE_CONFIRMED
    assert done.order.name == order.name
    assert await lease_columns(mesh, shopper.tenant, order.order_id) == (None, False)
    taken, found = await leases.take(shopper.tenant, order.order_id, other)
    assert not taken
    assert found is not None
    assert found.state is OrderState.CONFIRMED
