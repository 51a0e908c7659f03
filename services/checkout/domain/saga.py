"""The payment saga: authorize -> capture -> confirm, with void / refund to compensate.

Before every downstream call the attempt is persisted (state, step, attempt count); after it,
the outcome is persisted together with its effects on the checkout and its events (one
transaction). Every call carries the step's deterministic request id, so resuming a step after
a crash repeats the same call and payments answers it with the first result: a resumed saga
never charges twice. One driver holds an order's lease at a time; a lapsed lease (its holder
died) lets the recovery worker take over from the last persisted step.
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

    async def load(self, tenant: str, order_id: str) -> Order:
        async def work(uow: UnitOfWork) -> Order:
            order = await uow.get_order(order_id)
            if order is None:
                raise errors.order_not_found(f"tenants/{tenant}/orders/{order_id}")
            return order

        return await self._runner.run(tenant, work)

    async def drive(self, tenant: str, order_id: str, budget: float | None = None) -> Order:
        """Advances the order until it is done, the budget (seconds) runs out, or another
        driver holds it; returns the order as it then is."""
        loop = asyncio.get_running_loop()
        deadline = None if budget is None else loop.time() + budget
        seconds = self._policy.lease_seconds
        owner = f"{self.owner}/{uuid.uuid4().hex[:12]}"  # one per call: calls share a process
        if not await self._leases.acquire(tenant, order_id, owner, seconds):
            return await self.load(tenant, order_id)
        try:
            order = await self.load(tenant, order_id)
            renewed = loop.time()
            while not order.done:
                if loop.time() - renewed > seconds / 3:  # renew well before it lapses
                    if not await self._leases.acquire(tenant, order_id, owner, seconds):
                        return await self.load(tenant, order_id)
                    renewed = loop.time()
                wait = self._wait(order)
                if wait > 0:
                    if deadline is not None and loop.time() + wait > deadline:
                        return order
                    await self._sleep(wait)
                    continue
                if deadline is not None and loop.time() > deadline:
                    return order
                try:
                    order = await self._advance(order)
                except VersionConflictError:
                    # Another driver moved it (our lease lapsed): stand back.
                    return await self.load(tenant, order_id)
            return order
        finally:
            await self._leases.release(tenant, order_id, owner)

    async def follow(self, tenant: str, order_id: str, budget: float, poll: float = 0.05) -> Order:
        """Drives the order, or waits for whoever drives it, until it is done or `budget`
        seconds have passed; returns the order as it then is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        while True:
            order = await self.drive(tenant, order_id, max(0.0, deadline - loop.time()))
            if order.done or loop.time() + poll >= deadline:
                return order
            await self._sleep(poll)

    def _wait(self, order: Order) -> float:
        step = order.current_step
        if step is None or step.next_attempt_time is None:
            return 0.0
        return max(0.0, (step.next_attempt_time - self._clock()).total_seconds())

    async def _advance(self, order: Order) -> Order:
        """One step forward; returns the order as persisted."""
        now = self._clock()
        step = order.current_step
        if order.state is OrderState.PENDING or step is None:
            return await self._save(
                order, order.begin(StepType.AUTHORIZE_PAYMENT, OrderState.AUTHORIZING, now)
            )
        if step.type is StepType.CONFIRM_ORDER:
            return await self._confirm(order)
        attempted = await self._save(order, order.attempt(now))
        name = STEP_NAMES[step.type]
        self._checkpoint(f"{name}.before")
        result = await self._call(attempted, step.type)
        self._checkpoint(f"{name}.after")
        return await self._apply(attempted, step.type, result)

    async def _call(self, order: Order, kind: StepType) -> PaymentResult:
        step = order.current_step
        assert step is not None
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
                    )
                )
            case StepType.CAPTURE_PAYMENT:
                return await self._payments.capture(
                    payment, quote.total, quote.currency, step.request_id
                )
            case StepType.VOID_AUTHORIZATION:
                return await self._payments.void(payment, step.request_id)
            case StepType.REFUND_PAYMENT:
                amount = order.captured_amount or quote.total
                return await self._payments.refund(
                    payment, order.refund_id, amount, quote.currency, step.request_id
                )
            case StepType.CONFIRM_ORDER:
                raise ValueError("confirmation is local, not a payments call")

    async def _apply(self, order: Order, kind: StepType, result: PaymentResult) -> Order:
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
                return await self._save(
                    order, order.retry_later(result.reason, result.message, due, now)
                )
            return await self._exhausted(order, kind, result, now)
        if result.outcome is Outcome.DECLINED:
            return await self._declined(order, kind, result, now)
        return await self._succeeded(order, kind, result, now)

    async def _succeeded(
        self, order: Order, kind: StepType, result: PaymentResult, now: datetime
    ) -> Order:
        match kind:
            case StepType.AUTHORIZE_PAYMENT:
                done = order.succeed(now, result.resource, payment=result.resource)
                return await self._save(
                    order, done.begin(StepType.CAPTURE_PAYMENT, OrderState.CAPTURING, now)
                )
            case StepType.CAPTURE_PAYMENT:
                done = order.succeed(
                    now,
                    result.resource,
                    capture_reference=result.reference,
                    captured_amount=result.amount,
                )
                return await self._save(
                    order, done.begin(StepType.CONFIRM_ORDER, OrderState.CAPTURING, now)
                )
            case StepType.VOID_AUTHORIZATION:
                done = order.succeed(now, result.resource, state=OrderState.VOIDED)
                return await self._save(
                    order,
                    done,
                    CheckoutEffect.REOPEN,
                    [OrderCompensated(done, order.quote.total)],
                )
            case StepType.REFUND_PAYMENT:
                done = order.succeed(
                    now, result.resource, state=OrderState.REFUNDED, refund=result.resource
                )
                return await self._save(
                    order, done, CheckoutEffect.REOPEN, [OrderCompensated(done, result.amount)]
                )
            case StepType.CONFIRM_ORDER:
                raise ValueError("confirmation is local, not a payments call")

    async def _declined(
        self, order: Order, kind: StepType, result: PaymentResult, now: datetime
    ) -> Order:
        failed = order.fail_step(result.reason, result.message, now)
        match kind:
            case StepType.AUTHORIZE_PAYMENT:
                failure = OrderFailure(
                    result.reason or "PAYMENT_DECLINED",
                    result.message or "the payment was declined",
                    kind,
                    result.decline_code,
                )
                return await self._fail(order, failed, failure, now)
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
                return await self._save(order, failed)

    async def _exhausted(
        self, order: Order, kind: StepType, result: PaymentResult, now: datetime
    ) -> Order:
        """The retry budget ran out. Before authorization nothing may be held only if the
        last answer said so (PSP_UNAVAILABLE); otherwise void to be safe."""
        if kind is StepType.AUTHORIZE_PAYMENT and result.reason == "PSP_UNAVAILABLE":
            failed = order.fail_step(result.reason, result.message, now)
            failure = OrderFailure(result.reason, "payments are unavailable; try again", kind)
            return await self._fail(order, failed, failure, now)
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
    ) -> Order:
        compensating = failed.failed(failure, OrderState.COMPENSATING, now)
        return await self._save(
            order,
            compensating.begin(kind, OrderState.COMPENSATING, now),
            events=[OrderFailed(compensating, compensation_required=True, event_time=now)],
        )

    async def _confirm(self, order: Order) -> Order:
        self._checkpoint("confirm.before")
        now = self._clock()
        attempted = order.attempt(now)
        problem = self._confirmation(attempted)
        if problem is None:
            done = attempted.succeed(now, order.name, state=OrderState.CONFIRMED, confirm_time=now)
            saved = await self._save(
                order,
                done,
                CheckoutEffect.COMPLETE,
                [CheckoutCompleted(done, done.captured_amount)],
            )
        else:
            reason, message = problem
            failed = attempted.fail_step(reason, message, now)
            failure = OrderFailure(reason, message, StepType.CONFIRM_ORDER)
            saved = await self._compensate(order, failed, failure, StepType.REFUND_PAYMENT, now)
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
            await uow.save_order(after, before.version)
            if effect is not CheckoutEffect.NONE:
                checkout = await uow.get_checkout(after.checkout_id, lock=True)
                if checkout is not None and checkout.order == after.name:
                    now = uow.now()
                    changed = (
                        checkout.completed(now)
                        if effect is CheckoutEffect.COMPLETE
                        else checkout.reopened(now)
                    )
                    await uow.save_checkout(changed)
            if events:
                await uow.stage(events)

        await self._runner.run(after.tenant, work)
        if after.done and not before.done:  # committed: only the driver that saved it tells
            self._on_done(after)
        return after
