"""In-memory fakes of the checkout's ports (storage, leases, payments), served as fixtures.

The payments fake is a model of the payments contract's idempotency: a request id answers
with its first result, a payment id exists once, and it counts the money that moved.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from services.checkout.domain.checkouts import Checkout
from services.checkout.domain.events import CheckoutEvent
from services.checkout.domain.orders import Order
from services.checkout.domain.ports import (
    Authorization,
    OrderFilter,
    Outcome,
    PaymentResult,
    StoredKey,
    VersionConflictError,
)

T = TypeVar("T")


@dataclass
class World:
    """Everything the fake database holds."""

    checkouts: dict[tuple[str, str], Checkout] = field(default_factory=dict)
    orders: dict[tuple[str, str], Order] = field(default_factory=dict)
    keys: dict[tuple[str, str], StoredKey] = field(default_factory=dict)
    outbox: list[CheckoutEvent] = field(default_factory=list)
    leases: dict[tuple[str, str], str] = field(default_factory=dict)
    now: datetime = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


class FakeUnitOfWork:
    def __init__(self, world: World, tenant: str) -> None:
        self.world = world
        self.tenant = tenant

    def now(self) -> datetime:
        return self.world.now

    async def claim_request(self, request_id, method, fingerprint, result):
        stored = self.world.keys.get((self.tenant, request_id))
        if stored is None:
            self.world.keys[self.tenant, request_id] = StoredKey(method, fingerprint, result)
        return stored

    async def get_checkout(self, checkout_id, *, lock=False):
        return self.world.checkouts.get((self.tenant, checkout_id))

    async def add_checkout(self, checkout):
        self.world.checkouts[self.tenant, checkout.checkout_id] = checkout

    async def save_checkout(self, checkout):
        self.world.checkouts[self.tenant, checkout.checkout_id] = checkout

    async def get_order(self, order_id, *, lock=False):
        return self.world.orders.get((self.tenant, order_id))

    async def add_order(self, order, lease=None, checkout=None):
        self.world.orders[self.tenant, order.order_id] = order
        if lease is not None:
            self.world.leases[self.tenant, order.order_id] = lease.owner
        if checkout is not None:
            await self.save_checkout(checkout)

    async def save_order(self, order, expected_version, checkout=None):
        current = self.world.orders[self.tenant, order.order_id]
        if current.version != expected_version:
            raise VersionConflictError(order.name)
        self.world.orders[self.tenant, order.order_id] = order
        if checkout is not None:
            await self.save_checkout(checkout)
        if order.done:  # a terminal order's lease goes with the write that ends it
            self.world.leases.pop((self.tenant, order.order_id), None)

    async def list_orders(self, where: OrderFilter, after, limit):
        found = sorted(
            (o for (t, _), o in self.world.orders.items() if t == self.tenant),
            key=lambda o: (o.create_time, o.order_id),
            reverse=True,
        )
        return found[:limit]

    async def stage(self, events: Sequence[CheckoutEvent]):
        self.world.outbox.extend(events)


class FakeRunner:
    """Runs work against a copy of the world and keeps it only when the work returns."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def run(self, tenant: str, work: Callable[[Any], Awaitable[T]]) -> T:
        draft = copy.copy(self.world)
        for name in ("checkouts", "orders", "keys", "outbox", "leases"):
            setattr(draft, name, copy.copy(getattr(self.world, name)))
        result = await work(FakeUnitOfWork(draft, tenant))
        for name in ("checkouts", "orders", "keys", "outbox", "leases"):
            setattr(self.world, name, getattr(draft, name))
        return result


class FakeLeases:
    def __init__(self, world: World) -> None:
        self.world = world

    async def acquire(self, tenant, order_id, owner, seconds):
        holder = self.world.leases.get((tenant, order_id))
        if holder not in (None, owner):
            return False
        self.world.leases[tenant, order_id] = owner
        return True

    async def take(self, tenant, order_id, lease):
        order = self.world.orders.get((tenant, order_id))
        if order is None or order.done:
            return False, order
        return await self.acquire(tenant, order_id, lease.owner, lease.seconds), order

    async def release(self, tenant, order_id, owner):
        if self.world.leases.get((tenant, order_id)) == owner:
            del self.world.leases[tenant, order_id]

    async def stalled(self, limit):
        return [
            key for key, order in self.world.orders.items()
            if not order.done and key not in self.world.leases
        ][:limit]  # fmt: skip

    def lapse_all(self) -> None:
        """Every holder died: their leases run out."""
        self.world.leases.clear()


@dataclass
class FakePayment:
    name: str
    amount: int
    state: str = "AUTHORIZED"
    captured: int = 0
    refunded: int = 0


class FakePayments:
    """A payments service that honours request ids, with switches for failures."""

    def __init__(self) -> None:
        self.payments: dict[str, FakePayment] = {}
        self.answers: dict[str, PaymentResult] = {}
        self.calls: list[tuple[str, str]] = []
        self.decline_tokens = {"pm_card_declined"}
        self.capture_declines = False
        self.unavailable_first: dict[str, int] = {}  # method -> answers of RETRY first
        self.void_declines = False
        self.budgets: list[float | None] = []  # what each call was given of its caller's time

    def _transient(self, method: str) -> bool:
        left = self.unavailable_first.get(method, 0)
        if left > 0:
            self.unavailable_first[method] = left - 1
            return True
        return False

    def _once(
        self, request_id: str, method: str, act: Callable[[], PaymentResult]
    ) -> PaymentResult:
        self.calls.append((method, request_id))
        if request_id in self.answers:
            return self.answers[request_id]
        if self._transient(method):
            return PaymentResult(Outcome.RETRY, reason="PSP_UNAVAILABLE", message="try later")
        answer = act()
        self.answers[request_id] = answer
        return answer

    async def authorize(self, request: Authorization, *, budget=None) -> PaymentResult:
        self.budgets.append(budget)
        name = f"tenants/{request.tenant}/payments/{request.payment_id}"

        def act() -> PaymentResult:
            if request.payment_method_token in self.decline_tokens:
                self.payments[name] = FakePayment(name, request.amount, state="FAILED")
                return PaymentResult(
                    Outcome.DECLINED, name, reason="PAYMENT_DECLINED", decline_code="card_declined"
                )
            assert name not in self.payments, "a second authorization of one payment"
            self.payments[name] = FakePayment(name, request.amount)
            return PaymentResult(Outcome.SUCCEEDED, name, amount=request.amount)

        return self._once(request.request_id, "authorize", act)

    async def capture(self, payment, amount, currency, request_id, *, budget=None):
        self.budgets.append(budget)

        def act() -> PaymentResult:
            held = self.payments[payment]
            if self.capture_declines:
                return PaymentResult(Outcome.DECLINED, payment, reason="PSP_DECLINED")
            assert held.state == "AUTHORIZED", f"capture of a {held.state} payment"
            held.state, held.captured = "CAPTURED", amount
            return PaymentResult(Outcome.SUCCEEDED, payment, f"ch_{payment[-6:]}", amount)

        return self._once(request_id, "capture", act)

    async def void(self, payment, request_id, *, budget=None):
        self.budgets.append(budget)

        def act() -> PaymentResult:
            if self.void_declines:
                return PaymentResult(Outcome.DECLINED, payment, reason="PSP_DECLINED")
            held = self.payments.get(payment)
            if held is not None:
                assert held.state in {"AUTHORIZED", "FAILED"}, f"void of a {held.state} payment"
                held.state = "VOIDED" if held.state == "AUTHORIZED" else held.state
            return PaymentResult(Outcome.SUCCEEDED, payment)

        return self._once(request_id, "void", act)

    async def refund(self, payment, refund_id, amount, currency, request_id, *, budget=None):
        self.budgets.append(budget)

        def act() -> PaymentResult:
            held = self.payments[payment]
            assert held.refunded + amount <= held.captured, "refund above the capture"
            held.refunded += amount
            return PaymentResult(Outcome.SUCCEEDED, f"{payment}/refunds/{refund_id}", amount=amount)

        return self._once(request_id, "refund", act)

    def charged(self, payment: str) -> int:
        held = self.payments.get(payment)
        return 0 if held is None else held.captured - held.refunded

    def held(self, payment: str) -> int:
        held = self.payments.get(payment)
        return held.amount if held is not None and held.state == "AUTHORIZED" else 0


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def runner(world) -> FakeRunner:
    return FakeRunner(world)


@pytest.fixture
def leases(world) -> FakeLeases:
    return FakeLeases(world)


@pytest.fixture
def payments() -> FakePayments:
    return FakePayments()


def later(world: World, seconds: float) -> None:
    world.now += timedelta(seconds=seconds)
