"""The payment saga against in-memory ports: happy path, compensation, idempotent resume, and
a crash at every checkpoint followed by recovery (the unit-level crash matrix).

The acceptance versions of these run against the real payments service (see the report of
issue #6); these pin the engine's logic.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.chassis.errors import DomainError
from services.checkout.domain import usecases
from services.checkout.domain.cart import Address, Customer, Line
from services.checkout.domain.checkouts import CheckoutState, NewCheckout
from services.checkout.domain.events import (
    CheckoutCompleted,
    OrderCompensated,
    OrderFailed,
    OrderPlaced,
)
from services.checkout.domain.orders import OrderState, StepState, StepType, step_request_id
from services.checkout.domain.saga import CHECKPOINTS, Saga, SagaPolicy
from services.checkout.domain.tax import DEFAULT_RULES, RuleBasedTaxProvider, TaxCalculator

TENANT = "acme"


class Crash(BaseException):
    """The process died here (BaseException: nothing in the saga may swallow it)."""


def key(method: str, request_id: str | None = None, body: str = "") -> usecases.Key:
    return usecases.Key(
        request_id or str(uuid.uuid4()), method, hashlib.sha256(body.encode()).digest()
    )


async def quoted_checkout(runner):
    spec = NewCheckout(
        customer=Customer("c-1"),
        currency="USD",
        lines=(Line("", "mug", 2, 1250),),
        shipping_address=Address("US", "CA"),
    )
    checkout = await runner.run(
        TENANT, lambda uow: usecases.create_checkout(uow, key("CreateCheckout"), spec)
    )
    tax = TaxCalculator(RuleBasedTaxProvider(DEFAULT_RULES))
    return await usecases.quote_checkout(
        runner,
        tax,
        tenant=TENANT,
        key=key("QuoteCheckout"),
        checkout_id=checkout.checkout_id,
        etag=checkout.etag,
    )


async def placed_order(runner, token="pm_card_visa", request_id=None):  # noqa: S107 - PSP token
    checkout = await quoted_checkout(runner)
    assert checkout.quote is not None
    command = usecases.PlaceOrder(
        key("PlaceOrder", request_id, checkout.checkout_id),
        checkout.checkout_id,
        checkout.etag,
        checkout.quote.quote_id,
        token,
    )
    return await runner.run(TENANT, lambda uow: usecases.place_order(uow, command))


def make_saga(world, runner, payments, leases, **kwargs):
    async def sleep(seconds: float) -> None:
        world.now += timedelta(seconds=seconds)

    return Saga(
        runner,
        payments,
        leases,
        clock=lambda: world.now,
        sleep=sleep,
        policy=kwargs.pop("policy", SagaPolicy(max_attempts=4)),
        **kwargs,
    )


def events_of(world, kind):
    return [e for e in world.outbox if isinstance(e, kind)]


async def test_happy_path_authorizes_captures_confirms_and_completes_the_checkout(
    world, runner, payments, leases
):
    order = await placed_order(runner)
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert done.state is OrderState.CONFIRMED
    assert [s.type for s in done.steps] == [
        StepType.AUTHORIZE_PAYMENT,
        StepType.CAPTURE_PAYMENT,
        StepType.CONFIRM_ORDER,
    ]
    assert all(s.state is StepState.SUCCEEDED and s.attempt_count == 1 for s in done.steps)
    assert done.steps[0].request_id == step_request_id(done.name, StepType.AUTHORIZE_PAYMENT)
    # 2500 + 181 (7.25 % of 2500 = 181.25) + 56 (2.25 % = 56.25)
    assert payments.charged(done.payment) == done.quote.total == 2737
    assert world.checkouts[TENANT, done.checkout_id].state is CheckoutState.COMPLETED
    (completed,) = events_of(world, CheckoutCompleted)
    assert completed.captured_amount == done.quote.total
    assert len(events_of(world, OrderPlaced)) == 1


async def test_decline_fails_the_order_without_moving_money_and_reopens_the_checkout(
    world, runner, payments, leases
):
    order = await placed_order(runner, token="pm_card_declined")
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert done.state is OrderState.FAILED
    assert done.failure is not None
    assert (done.failure.reason, done.failure.decline_code) == ("PAYMENT_DECLINED", "card_declined")
    assert payments.charged(done.payment) == payments.held(done.payment) == 0
    assert world.checkouts[TENANT, done.checkout_id].state is CheckoutState.OPEN
    (failed,) = events_of(world, OrderFailed)
    assert failed.compensation_required is False


async def test_a_failed_capture_voids_the_authorization(world, runner, payments, leases):
    payments.capture_declines = True
    order = await placed_order(runner)
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert done.state is OrderState.VOIDED
    assert [s.type for s in done.steps][-1] is StepType.VOID_AUTHORIZATION
    assert done.failure is not None
    assert done.failure.reason == "CAPTURE_FAILED"
    assert payments.payments[done.payment].state == "VOIDED"
    assert payments.charged(done.payment) == 0
    assert [e.order.state for e in events_of(world, OrderCompensated)] == [OrderState.VOIDED]


async def test_a_failure_after_capture_refunds_it(world, runner, payments, leases):
    order = await placed_order(runner)
    saga = make_saga(
        world, runner, payments, leases, confirmation=lambda o: ("STOCK_GONE", "sold out")
    )
    done = await saga.drive(TENANT, order.order_id)
    assert done.state is OrderState.REFUNDED
    assert done.refund.endswith(f"/refunds/{order.order_id}-refund")
    assert payments.charged(done.payment) == 0
    assert payments.payments[done.payment].captured == done.quote.total
    assert world.checkouts[TENANT, done.checkout_id].state is CheckoutState.OPEN
    assert [e.compensation_required for e in events_of(world, OrderFailed)] == [True]


async def test_a_failing_compensation_ends_in_attention_required(world, runner, payments, leases):
    payments.capture_declines = True
    payments.void_declines = True
    order = await placed_order(runner)
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert done.state is OrderState.ATTENTION_REQUIRED
    assert world.checkouts[TENANT, done.checkout_id].state is CheckoutState.PLACED


async def test_transient_failures_are_retried_with_the_same_request_id(
    world, runner, payments, leases
):
    payments.unavailable_first = {"authorize": 2, "capture": 1}
    order = await placed_order(runner)
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert done.state is OrderState.CONFIRMED
    assert [s.attempt_count for s in done.steps] == [3, 2, 1]
    authorize_ids = {rid for method, rid in payments.calls if method == "authorize"}
    assert authorize_ids == {done.steps[0].request_id}


async def test_an_exhausted_authorize_on_unavailable_payments_fails_without_money(
    world, runner, payments, leases
):
    payments.unavailable_first = {"authorize": 99}
    order = await placed_order(runner)
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert done.state is OrderState.FAILED
    assert done.steps[0].attempt_count == 4
    assert payments.payments == {}


async def test_a_budget_returns_the_order_mid_saga(world, runner, payments, leases):
    payments.unavailable_first = {"authorize": 99}
    order = await placed_order(runner)
    saga = make_saga(
        world, runner, payments, leases, policy=SagaPolicy(base_delay=60), jitter=lambda a, b: b
    )
    partial = await saga.drive(TENANT, order.order_id, budget=0.5)
    assert partial.state is OrderState.AUTHORIZING
    assert partial.steps[0].next_attempt_time is not None


async def test_a_second_driver_does_not_advance_a_leased_order(world, runner, payments, leases):
    order = await placed_order(runner)
    assert await leases.acquire(TENANT, order.order_id, "someone-else", 30)
    seen = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert seen.state is OrderState.PENDING
    assert payments.calls == []


async def test_place_order_replay_returns_the_same_order_and_a_changed_request_is_refused(
    world, runner, payments, leases
):
    request_id = str(uuid.uuid4())
    first = await placed_order(runner, request_id=request_id)
    replay = await runner.run(
        TENANT,
        lambda uow: usecases.place_order(
            uow,
            usecases.PlaceOrder(
                key("PlaceOrder", request_id, first.checkout_id), first.checkout_id, "", "", ""
            ),
        ),
    )
    assert replay.order_id == first.order_id
    with pytest.raises(DomainError) as caught:
        await placed_order(runner, request_id=request_id)  # another checkout, same id
    assert caught.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.orders) == 1


def crashing_at(point: str, times: int = 1):
    left = [times]

    def checkpoint(name: str) -> None:
        if name == point and left[0] > 0:
            left[0] -= 1
            raise Crash(name)

    return checkpoint


SCENARIOS: dict[str, dict[str, Any]] = {
    "confirmed": {},
    "declined": {"token": "pm_card_declined"},
    "capture_fails": {"capture_declines": True},
    "refunded": {"confirmation": lambda o: ("STOCK_GONE", "sold out")},
}


@pytest.mark.parametrize("point", [p for p in CHECKPOINTS if p != "placed"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_a_crash_at_any_checkpoint_resumes_without_a_second_charge(  # noqa: PLR0917
    world, runner, payments, leases, point, scenario
):
    setup: dict[str, Any] = dict(SCENARIOS[scenario])
    payments.capture_declines = setup.pop("capture_declines", False)
    confirmation = setup.pop("confirmation", None)
    extra = {"confirmation": confirmation} if confirmation else {}
    order = await placed_order(runner, token=setup.pop("token", "pm_card_visa"))
    first = make_saga(world, runner, payments, leases, checkpoint=crashing_at(point), **extra)
    try:
        await first.drive(TENANT, order.order_id)
    except Crash:
        leases.lapse_all()  # the dead process's lease runs out
    # The recovery worker's pass: every stalled order, driven by a fresh process.
    recovery = make_saga(world, runner, payments, leases, **extra)
    for tenant, order_id in await leases.stalled(100):
        await recovery.drive(tenant, order_id)
    done = world.orders[TENANT, order.order_id]
    assert done.done
    charged = payments.charged(done.payment) if done.payment else 0
    if done.state is OrderState.CONFIRMED:
        assert charged == done.quote.total
        assert payments.payments[done.payment].captured == done.quote.total
        assert len(events_of(world, CheckoutCompleted)) == 1
    else:
        assert done.state in {OrderState.FAILED, OrderState.VOIDED, OrderState.REFUNDED}
        assert charged == 0
        assert payments.held(done.payment) == 0
        assert events_of(world, CheckoutCompleted) == []
    authorizations = [rid for m, rid in payments.calls if m == "authorize"]
    assert len(set(authorizations)) == 1


async def test_concurrent_drives_in_one_process_advance_the_order_once(
    world, runner, payments, leases
):
    order = await placed_order(runner)
    saga = make_saga(world, runner, payments, leases)
    results = await asyncio.gather(*(saga.drive(TENANT, order.order_id) for _ in range(10)))
    done = world.orders[TENANT, order.order_id]
    assert done.state is OrderState.CONFIRMED
    assert [s.attempt_count for s in done.steps] == [1, 1, 1]
    assert len([m for m, _ in payments.calls if m == "authorize"]) == 1
    assert any(r.state is OrderState.CONFIRMED for r in results)


async def test_a_compensation_is_retried_past_the_forward_attempt_budget(
    world, runner, payments, leases
):
    payments.capture_declines = True
    payments.unavailable_first = {"void": 10}  # max_attempts is 4 in these tests
    order = await placed_order(runner)
    done = await make_saga(world, runner, payments, leases).drive(TENANT, order.order_id)
    assert done.state is OrderState.VOIDED
    assert done.steps[-1].attempt_count == 11
    assert payments.payments[done.payment].state == "VOIDED"
