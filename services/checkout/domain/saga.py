"""The payment saga: authorize -> capture -> confirm, with void / refund to compensate.

Before every downstream call the attempt is persisted (state, step, attempt count); after it,
the outcome is persisted together with its effects on the checkout, its events and the next
step's first attempt (one transaction; a capture's outcome with the confirmation, which is
local). PlaceOrder persists the first attempt with the order itself (ADR 0022). Every call
carries the step's deterministic request id, so resuming a step after a crash repeats the
same call and payments answers it with the first result: a resumed saga never charges twice.
One driver holds an order's lease at a time; a lapsed lease (its holder died) lets the
recovery worker take over from the last persisted step.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.checkout.domain import errors
from services.checkout.domain.events import (
    CheckoutCompleted,
    CheckoutEvent,
    OrderCompensated,
    OrderFailed,
)
from services.checkout.domain.orders import Order, OrderFailure, OrderState, StepType
from services.checkout.domain.ports import (
    Authorization,
    CheckoutEffect,
    Checkpoint,
    ConfirmationCheck,
    Lease,
    Leases,
    Outcome,
    PaymentResult,
    PaymentsPort,
    TransactionRunner,
    UnitOfWork,
    VersionConflictError,
    captured_amount_matches,
    no_checkpoint,
)

# Checkpoint names per step: "<name>.before" once the attempt is persisted and before the
# call, "<name>.after" once the call answered and before its outcome is persisted.
STEP_NAMES = {
    StepType.AUTHORIZE_PAYMENT: "authorize",
    StepType.CAPTURE_PAYMENT: "capture",
    StepType.CONFIRM_ORDER: "confirm",
    StepType.VOID_AUTHORIZATION: "void",
    StepType.REFUND_PAYMENT: "refund",
}
COMPENSATIONS = frozenset({StepType.VOID_AUTHORIZATION, StepType.REFUND_PAYMENT})
CHECKPOINTS = (
    "placed",
    *(f"{name}.{when}" for name in STEP_NAMES.values() for when in ("before", "after")),
)


# A payments call given less than this is not made: it would only time out.
MIN_CALL_SECONDS = 0.05


@dataclass(frozen=True)
class Held:
    """An order its caller just opened under `lease` (PlaceOrder's own transaction)."""

    order: Order
    lease: Lease


@dataclass(frozen=True)
class SagaPolicy:
    max_attempts: int = 8  # per forward step; then it fails and the saga compensates
    base_delay: float = 0.05  # seconds; exponential backoff with full jitter
    max_delay: float = 30.0
    lease_seconds: float = 30.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Saga:
    """Drives orders through the saga; safe to run in many processes at once."""

    def __init__(
        self,
        runner: TransactionRunner,
        payments: PaymentsPort,
        leases: Leases,
        *,
        checkpoint: Checkpoint = no_checkpoint,
        confirmation: ConfirmationCheck = captured_amount_matches,
        policy: SagaPolicy | None = None,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
        on_done: Callable[[Order], None] = lambda _order: None,
    ) -> None:
        self._runner = runner
        self._on_done = on_done  # told once per order reaching a terminal state (metrics)
        self._payments = payments
        self._leases = leases
        self._checkpoint = checkpoint
        self._confirmation = confirmation
        self._policy = policy or SagaPolicy()
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self.owner = uuid.uuid4().hex

    def lease(self) -> Lease:
        """A new drive's lease: one owner per drive, since drives share a process."""
        return Lease(f"{self.owner}/{uuid.uuid4().hex[:12]}", self._policy.lease_seconds)

    async def load(self, tenant: str, order_id: str) -> Order:
        async def work(uow: UnitOfWork) -> Order:
            order = await uow.get_order(order_id)
            if order is None:
                raise errors.order_not_found(f"tenants/{tenant}/orders/{order_id}")
            return order

        return await self._runner.run(tenant, work)

    async def drive(
        self,
        tenant: str,
        order_id: str,
        budget: float | None = None,
        *,
        held: Held | None = None,
    ) -> Order:
        """Advances the order until it is done, the budget (seconds) runs out, or another
        driver holds it; returns the order as it then is. `held`: an order this caller just
        opened (`Order.opened`) under its lease, whose first attempt is persisted but not made.

        Every payments call is given at most what is left of the budget, so a drive never
        outlives it by more than the writes that record where it stopped."""
        loop = asyncio.get_running_loop()
        deadline = None if budget is None else loop.time() + budget
        if held is None:
            lease = self.lease()
            taken, order = await self._take(tenant, order_id, lease)
            if not taken:
                return order
        else:
            lease, order = held.lease, held.order
        try:
            order = await self._run(order, lease, deadline, ready=held is not None)
        finally:
            if not order.done:  # a terminal save released the lease with it
                await self._leases.release(tenant, order_id, lease.owner)
        return order

    async def _run(
        self, order: Order, lease: Lease, deadline: float | None, *, ready: bool
    ) -> Order:
        """`drive`'s loop, under `lease`; `ready`: the current attempt is recorded."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while not order.done:
            if loop.time() - renewed > lease.seconds / 3:  # renew well before it lapses
                if not await self._leases.acquire(
                    order.tenant, order.order_id, lease.owner, lease.seconds
                ):
                    return await self.load(order.tenant, order.order_id)
                renewed = loop.time()
            wait = self._wait(order)
            if wait > 0:
                if deadline is not None and loop.time() + wait > deadline:
                    return order
                await self._sleep(wait)
                continue
            if deadline is not None and deadline - loop.time() < MIN_CALL_SECONDS:
                return order  # no time for a step: the next driver takes it from here
            try:
                order, ready = await self._advance(order, ready=ready, deadline=deadline)
            except VersionConflictError:
                # Another driver moved it (our lease lapsed): stand back.
                return await self.load(order.tenant, order.order_id)
        return order

    async def _take(self, tenant: str, order_id: str, lease: Lease) -> tuple[bool, Order]:
        taken, order = await self._leases.take(tenant, order_id, lease)
        if order is None:
            raise errors.order_not_found(f"tenants/{tenant}/orders/{order_id}")
        return taken, order

    async def follow(
        self,
        tenant: str,
        order_id: str,
        budget: float,
        poll: float = 0.05,
        *,
        held: Held | None = None,
    ) -> Order:
        """Drives the order, or waits for whoever drives it, until it is done or `budget`
        seconds have passed; returns the order as it then is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while True:
            order = await self.drive(tenant, order_id, max(0.0, deadline - loop.time()), held=held)
            held = None
            if order.done or loop.time() + poll >= deadline:
                return order
            await self._sleep(poll)

    def _wait(self, order: Order) -> float:
        step = order.current_step
        if step is None or step.next_attempt_time is None:
            return 0.0
        return max(0.0, (step.next_attempt_time - self._clock()).total_seconds())

    async def _advance(
        self, order: Order, *, ready: bool, deadline: float | None
    ) -> tuple[Order, bool]:
        """One step forward; returns the order as persisted, and whether its current step's
        attempt is already recorded (then the next `_advance` makes the call at once)."""
        now = self._clock()
        step = order.current_step
        if order.state is OrderState.PENDING or step is None:
            return await self._save(order, order.opened(now)), True
        if step.type is StepType.CONFIRM_ORDER:
            return await self._confirm(order, order)
        attempted = order if ready else await self._save(order, order.attempt(now))
        name = STEP_NAMES[step.type]
        self._checkpoint(f"{name}.before")
        result = await self._call(attempted, step.type, self._left(deadline))
        self._checkpoint(f"{name}.after")
        return await self._apply(attempted, step.type, result)

    @staticmethod
    def _left(deadline: float | None) -> float | None:
        """What is left of the drive's budget for one call (None: no budget)."""
        if deadline is None:
            return None
        return max(0.0, deadline - asyncio.get_running_loop().time())

    async def _call(self, order: Order, kind: StepType, budget: float | None) -> PaymentResult:
        step = order.current_step
        assert step is not None
        if budget is not None and budget < MIN_CALL_SECONDS:
            # No time left to make the call: it is retried (same request id) after the drive.
            return PaymentResult(
                Outcome.RETRY, reason="BUDGET_EXHAUSTED", message="the call's budget ran out"
            )
        payment = order.payment or f"tenants/{order.tenant}/payments/{order.payment_id}"
        quote = order.quote
        match kind:
            case StepType.AUTHORIZE_PAYMENT:
                return await self._payments.authorize(
                    Authorization(
                        tenant=order.tenant,
                        order=order.name,
                        payment_id=order.payment_id,
                        customer_id=order.customer.customer_id,
                        currency=quote.currency,
                        amount=quote.total,
                        payment_method_token=order.payment_method_token,
                        request_id=step.request_id,
                    ),
                    budget=budget,
                )
            case StepType.CAPTURE_PAYMENT:
                return await self._payments.capture(
                    payment, quote.total, quote.currency, step.request_id, budget=budget
                )
            case StepType.VOID_AUTHORIZATION:
                return await self._payments.void(payment, step.request_id, budget=budget)
            case StepType.REFUND_PAYMENT:
                amount = order.captured_amount or quote.total
                return await self._payments.refund(
                    payment, order.refund_id, amount, quote.currency, step.request_id,
                    budget=budget,
                )  # fmt: skip
            case StepType.CONFIRM_ORDER:
                raise ValueError("confirmation is local, not a payments call")

    async def _apply(
        self, order: Order, kind: StepType, result: PaymentResult
    ) -> tuple[Order, bool]:
        now = self._clock()
        step = order.current_step
        assert step is not None
        if result.outcome is Outcome.RETRY:
            # A compensation is never given up on a "not now": money may be held until it
            # succeeds. Forward steps give up after max_attempts and compensate (safe either way).
            if kind in COMPENSATIONS or step.attempt_count < self._policy.max_attempts:
                backoff = self._policy.base_delay * 2 ** min(step.attempt_count, 30)
                delay = self._jitter(0, min(self._policy.max_delay, backoff))  # full jitter
                due = now + timedelta(seconds=delay)
                retry = order.retry_later(result.reason, result.message, due, now)
                return await self._save(order, retry), False
            return await self._exhausted(order, kind, result, now)
        if result.outcome is Outcome.DECLINED:
            return await self._declined(order, kind, result, now)
        return await self._succeeded(order, kind, result, now)

    async def _succeeded(
        self, order: Order, kind: StepType, result: PaymentResult, now: datetime
    ) -> tuple[Order, bool]:
        """A success is persisted with the next step's first attempt (one write); a capture's
        with the confirmation itself, which is local."""
        match kind:
            case StepType.AUTHORIZE_PAYMENT:
                done = order.succeed(now, result.resource, payment=result.resource)
                capturing = done.begin(StepType.CAPTURE_PAYMENT, OrderState.CAPTURING, now)
                return await self._save(order, capturing.attempt(now)), True
            case StepType.CAPTURE_PAYMENT:
                done = order.succeed(
                    now,
                    result.resource,
                    capture_reference=result.reference,
                    captured_amount=result.amount,
                )
                return await self._confirm(
                    order, done.begin(StepType.CONFIRM_ORDER, OrderState.CAPTURING, now)
                )
            case StepType.VOID_AUTHORIZATION:
                done = order.succeed(now, result.resource, state=OrderState.VOIDED)
                saved = await self._save(
                    order,
                    done,
                    CheckoutEffect.REOPEN,
                    [OrderCompensated(done, order.quote.total)],
                )
                return saved, False
            case StepType.REFUND_PAYMENT:
                done = order.succeed(
                    now, result.resource, state=OrderState.REFUNDED, refund=result.resource
                )
                saved = await self._save(
                    order, done, CheckoutEffect.REOPEN, [OrderCompensated(done, result.amount)]
                )
                return saved, False
            case StepType.CONFIRM_ORDER:
                raise ValueError("confirmation is local, not a payments call")

    async def _declined(
        self, order: Order, kind: StepType, result: PaymentResult, now: datetime
    ) -> tuple[Order, bool]:
        failed = order.fail_step(result.reason, result.message, now)
        match kind:
            case StepType.AUTHORIZE_PAYMENT:
                failure = OrderFailure(
                    result.reason or "PAYMENT_DECLINED",
                    result.message or "the payment was declined",
                    kind,
                    result.decline_code,
                )
                return await self._fail(order, failed, failure, now), False
            case StepType.CAPTURE_PAYMENT:
                failure = OrderFailure(
                    "CAPTURE_FAILED", result.message or "the capture failed", kind, ""
                )
                return await self._compensate(
                    order, failed, failure, StepType.VOID_AUTHORIZATION, now
                )
            case _:
                failed = failed.failed(
                    order.failure or OrderFailure(result.reason, result.message, kind),
                    OrderState.ATTENTION_REQUIRED,
                    now,
                )
                return await self._save(order, failed), False

    async def _exhausted(
        self, order: Order, kind: StepType, result: PaymentResult, now: datetime
    ) -> tuple[Order, bool]:
        """The retry budget ran out. Before authorization nothing may be held only if the
        last answer said so (PSP_UNAVAILABLE); otherwise void to be safe."""
        if kind is StepType.AUTHORIZE_PAYMENT and result.reason == "PSP_UNAVAILABLE":
            failed = order.fail_step(result.reason, result.message, now)
            failure = OrderFailure(result.reason, "payments are unavailable; try again", kind)
            return await self._fail(order, failed, failure, now), False
        if kind in {StepType.AUTHORIZE_PAYMENT, StepType.CAPTURE_PAYMENT}:
            failed = order.fail_step(result.reason, result.message, now)
            failure = OrderFailure(
                result.reason or "PAYMENT_UNAVAILABLE", "the payment did not complete", kind
            )
            return await self._compensate(order, failed, failure, StepType.VOID_AUTHORIZATION, now)
        return await self._declined(order, kind, result, now)

    async def _fail(
        self, order: Order, failed: Order, failure: OrderFailure, now: datetime
    ) -> Order:
        final = failed.failed(failure, OrderState.FAILED, now)
        return await self._save(
            order,
            final,
            CheckoutEffect.REOPEN,
            [OrderFailed(final, compensation_required=False, event_time=now)],
        )

    async def _compensate(
        self, order: Order, failed: Order, failure: OrderFailure, kind: StepType, now: datetime
    ) -> tuple[Order, bool]:
        """Records the failure and the compensation's first attempt (one write)."""
        compensating = failed.failed(failure, OrderState.COMPENSATING, now)
        saved = await self._save(
            order,
            compensating.begin(kind, OrderState.COMPENSATING, now).attempt(now),
            events=[OrderFailed(compensating, compensation_required=True, event_time=now)],
        )
        return saved, True

    async def _confirm(self, before: Order, order: Order) -> tuple[Order, bool]:
        """Confirms `order` (at its CONFIRM_ORDER step), saved over `before` (the version as
        persisted: the order itself when resuming, the pre-capture one after a capture)."""
        self._checkpoint("confirm.before")
        now = self._clock()
        attempted = order.attempt(now)
        problem = self._confirmation(attempted)
        if problem is None:
            done = attempted.succeed(now, order.name, state=OrderState.CONFIRMED, confirm_time=now)
            saved: tuple[Order, bool] = (
                await self._save(
                    before,
                    done,
                    CheckoutEffect.COMPLETE,
                    [CheckoutCompleted(done, done.captured_amount)],
                ),
                False,
            )
        else:
            reason, message = problem
            failed = attempted.fail_step(reason, message, now)
            failure = OrderFailure(reason, message, StepType.CONFIRM_ORDER)
            saved = await self._compensate(before, failed, failure, StepType.REFUND_PAYMENT, now)
        self._checkpoint("confirm.after")
        return saved

    async def _save(
        self,
        before: Order,
        after: Order,
        effect: CheckoutEffect = CheckoutEffect.NONE,
        events: Sequence[CheckoutEvent] = (),
    ) -> Order:
        async def work(uow: UnitOfWork) -> None:
            changed = None
            if effect is not CheckoutEffect.NONE:
                checkout = await uow.get_checkout(after.checkout_id, lock=True)
                if checkout is not None and checkout.order == after.name:
                    now = uow.now()
                    changed = (
                        checkout.completed(now)
                        if effect is CheckoutEffect.COMPLETE
                        else checkout.reopened(now)
                    )
            await uow.save_order(after, before.version, changed)  # and the checkout's change
            if events:
                await uow.stage(events)

        await self._runner.run(after.tenant, work)
        if after.done and not before.done:  # committed: only the driver that saved it tells
            self._on_done(after)
        return after
