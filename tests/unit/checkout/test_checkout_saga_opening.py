"""PlaceOrder's own drive (ADR 0022): the order is opened and leased in the transaction that
places it, the first call follows without another write, a terminal write releases the lease,
and every payments call gets at most what is left of the drive's budget."""

from __future__ import annotations

import pytest

from services.checkout.domain import usecases
from services.checkout.domain.events import OrderPlaced
from services.checkout.domain.orders import OrderState, StepState, StepType
from services.checkout.domain.saga import MIN_CALL_SECONDS, Held
from tests.unit.checkout.test_checkout_saga import (
    TENANT,
    events_of,
    key,
    make_saga,
    quoted_checkout,
)


async def opened_order(runner, saga, token="pm_card_visa", request_id=None):  # noqa: S107
    checkout = await quoted_checkout(runner)
    assert checkout.quote is not None
    command = usecases.PlaceOrder(
        key("PlaceOrder", request_id, checkout.checkout_id),
        checkout.checkout_id,
        checkout.etag,
        checkout.quote.quote_id,
        token,
    )
    lease = saga.lease()
    order, fresh = await runner.run(TENANT, lambda uow: usecases.open_order(uow, command, lease))
    return order, fresh, lease, command


async def test_the_placing_transaction_opens_and_leases_the_order(world, runner, payments, leases):
    saga = make_saga(world, runner, payments, leases)
    order, fresh, lease, command = await opened_order(runner, saga)
    assert fresh
    assert order.state is OrderState.AUTHORIZING
    (step,) = order.steps
    assert (step.type, step.state, step.attempt_count) == (
        StepType.AUTHORIZE_PAYMENT,
        StepState.RUNNING,
        1,
    )
    assert world.orders[TENANT, order.order_id] == order
    assert world.leases[TENANT, order.order_id] == lease.owner
    (placed,) = events_of(world, OrderPlaced)
    assert placed.order.order_id == order.order_id
    # A second driver stands back while the placing call holds it.
    seen = await saga.drive(TENANT, order.order_id)
    assert seen == order
    assert payments.calls == []
    # A replay returns the order as it is, not leased to the replaying call.
    replay, fresh_again = await runner.run(
        TENANT, lambda uow: usecases.open_order(uow, command, saga.lease())
    )
    assert (replay.order_id, fresh_again) == (order.order_id, False)
    assert world.leases[TENANT, order.order_id] == lease.owner


async def test_the_held_drive_calls_at_once_and_its_terminal_write_frees_the_lease(
    world, runner, payments, leases
):
    saga = make_saga(world, runner, payments, leases)
    order, _, lease, _ = await opened_order(runner, saga)
    done = await saga.drive(TENANT, order.order_id, held=Held(order, lease))
    assert done.state is OrderState.CONFIRMED
    assert [s.attempt_count for s in done.steps] == [1, 1, 1]
    assert [m for m, _ in payments.calls] == ["authorize", "capture"]
    assert (TENANT, order.order_id) not in world.leases
    # A terminal order is never leased again.
    assert await leases.take(TENANT, order.order_id, saga.lease()) == (False, done)


async def test_every_call_gets_at_most_what_is_left_of_the_budget(world, runner, payments, leases):
    saga = make_saga(world, runner, payments, leases)
    order, _, lease, _ = await opened_order(runner, saga)
    done = await saga.drive(TENANT, order.order_id, budget=5.0, held=Held(order, lease))
    assert done.state is OrderState.CONFIRMED
    assert len(payments.budgets) == 2
    assert all(b is not None and MIN_CALL_SECONDS <= b <= 5.0 for b in payments.budgets)
    unbounded, _, lease, _ = await opened_order(runner, saga)
    await saga.drive(TENANT, unbounded.order_id, held=Held(unbounded, lease))
    assert payments.budgets[2:] == [None, None]  # no budget: the adapter's own timeout


@pytest.mark.parametrize("budget", [0.0, MIN_CALL_SECONDS / 2])
async def test_no_call_is_made_without_time_for_it(world, runner, payments, leases, budget):
    saga = make_saga(world, runner, payments, leases)
    order, _, lease, _ = await opened_order(runner, saga)
    partial = await saga.drive(TENANT, order.order_id, budget=budget, held=Held(order, lease))
    assert not partial.done
    assert payments.calls == []
    assert (TENANT, order.order_id) not in world.leases  # released for the next driver
    done = await saga.drive(TENANT, order.order_id)
    assert done.state is OrderState.CONFIRMED
    assert len([m for m, _ in payments.calls if m == "authorize"]) == 1
