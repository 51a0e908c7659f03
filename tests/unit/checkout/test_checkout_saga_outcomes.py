"""The saga tells `on_done` once per order reaching a terminal state, and `outcome` names it."""

from __future__ import annotations

import dataclasses

import pytest

from services.checkout.domain.orders import Order, OrderFailure, OrderState, StepType
from services.checkout.metrics import outcome
from tests.unit.checkout.test_checkout_saga import TENANT, make_saga, placed_order


async def test_on_done_is_told_once_when_the_order_becomes_terminal(
    world, runner, payments, leases
):
    told: list[Order] = []
    saga = make_saga(world, runner, payments, leases, on_done=told.append)
    order = await placed_order(runner)
    done = await saga.drive(TENANT, order.order_id)
    assert [o.state for o in told] == [OrderState.CONFIRMED]
    assert told[0].version == done.version
    await saga.drive(TENANT, order.order_id)  # already terminal: nothing new
    assert len(told) == 1
    declined = await placed_order(runner, token="pm_card_declined")
    await saga.drive(TENANT, declined.order_id)
    assert [outcome(o) for o in told] == ["completed", "declined"]


async def test_every_terminal_state_has_an_outcome_and_in_flight_ones_have_none(
    world, runner, payments, leases
):
    order = await placed_order(runner)
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)

    def as_(state, reason=""):
        failure = OrderFailure(reason, "", StepType.AUTHORIZE_PAYMENT) if reason else None
        return dataclasses.replace(done, state=state, failure=failure)

    assert outcome(as_(OrderState.CONFIRMED)) == "completed"
    assert outcome(as_(OrderState.FAILED, "PAYMENT_DECLINED")) == "declined"
    assert outcome(as_(OrderState.FAILED, "PSP_UNAVAILABLE")) == "failed"
    assert outcome(as_(OrderState.VOIDED, "CAPTURE_FAILED")) == "compensated"
    assert outcome(as_(OrderState.REFUNDED, "STOCK_GONE")) == "compensated"
    assert outcome(as_(OrderState.ATTENTION_REQUIRED, "REFUND_FAILED")) == "failed"
    for state in (OrderState.PENDING, OrderState.AUTHORIZING, OrderState.COMPENSATING):
        with pytest.raises(ValueError, match="not terminal"):
            outcome(as_(state))
