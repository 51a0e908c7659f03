"""The order and its saga record: states, steps, failures, and the deterministic request ids.

Every transition returns a new Order with its version bumped; storage persists it only if the
version it loaded is still current, so two drivers can never both advance one order.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from services.checkout.domain.cart import Address, Customer
from services.checkout.domain.quotes import Quote

# Fixed namespace: a step's downstream request id is uuid5(namespace, "<order name>/<step>"),
# the same after every crash and in every process.
REQUEST_ID_NAMESPACE = uuid.UUID("6f1d3c52-4b0e-5a57-9c43-0d1f5e0c4a11")


class OrderState(enum.Enum):
    PENDING = "PENDING"
    AUTHORIZING = "AUTHORIZING"
    CAPTURING = "CAPTURING"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    COMPENSATING = "COMPENSATING"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"
    ATTENTION_REQUIRED = "ATTENTION_REQUIRED"


DONE_STATES = frozenset(
    {
        OrderState.CONFIRMED,
        OrderState.FAILED,
        OrderState.VOIDED,
        OrderState.REFUNDED,
        OrderState.ATTENTION_REQUIRED,
    }
)


class StepType(enum.Enum):
    AUTHORIZE_PAYMENT = "AUTHORIZE_PAYMENT"
    CAPTURE_PAYMENT = "CAPTURE_PAYMENT"
    CONFIRM_ORDER = "CONFIRM_ORDER"
    VOID_AUTHORIZATION = "VOID_AUTHORIZATION"
    REFUND_PAYMENT = "REFUND_PAYMENT"


class StepState(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class SagaStep:
    type: StepType
    state: StepState
    request_id: str
    start_time: datetime
    attempt_count: int = 0
    resource: str = ""
    finish_time: datetime | None = None
    next_attempt_time: datetime | None = None
    error_reason: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class OrderFailure:
    reason: str
    message: str
    step: StepType
    decline_code: str = ""


def step_request_id(order_name: str, step: StepType) -> str:
    """The idempotency key every attempt of `step` sends downstream."""
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{order_name}/{step.value}"))


@dataclass(frozen=True)
class Order:
    order_id: str
    tenant: str
    checkout_id: str
    customer: Customer
    quote: Quote
    payment_method_token: str
    request_id: str
    state: OrderState
    create_time: datetime
    update_time: datetime
    shipping_address: Address | None = None
    billing_address: Address | None = None
    payment: str = ""
    capture_reference: str = ""
    captured_amount: int = 0
    refund: str = ""
    steps: tuple[SagaStep, ...] = ()
    failure: OrderFailure | None = None
    confirm_time: datetime | None = None
    version: int = 1

    @property
    def name(self) -> str:
        return f"tenants/{self.tenant}/orders/{self.order_id}"

    @property
    def checkout(self) -> str:
        return f"tenants/{self.tenant}/checkouts/{self.checkout_id}"

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES

    @property
    def payment_id(self) -> str:
        """The payment's client-chosen id: the order's, so a resumed authorize finds it."""
        return self.order_id

    @property
    def refund_id(self) -> str:
        return f"{self.order_id}-refund"

    @property
    def current_step(self) -> SagaStep | None:
        return self.steps[-1] if self.steps else None

    def step(self, kind: StepType) -> SagaStep | None:
        return next((s for s in self.steps if s.type is kind), None)

    def _with(self, now: datetime, **fields: object) -> Order:
        return replace(self, update_time=now, version=self.version + 1, **fields)  # type: ignore[arg-type]

    def _replace_current(self, step: SagaStep) -> tuple[SagaStep, ...]:
        return (*self.steps[:-1], step)

    def begin(self, kind: StepType, state: OrderState, now: datetime) -> Order:
        """Records a new step (RUNNING, no attempt yet) and the state it belongs to."""
        step = SagaStep(
            type=kind,
            state=StepState.RUNNING,
            request_id=step_request_id(self.name, kind),
            start_time=now,
        )
        return self._with(now, state=state, steps=(*self.steps, step))

    def opened(self, now: datetime) -> Order:
        """A PENDING order's first saga transition: authorizing, its first attempt counted
        (persisted in one write before the authorize call)."""
        return self.begin(StepType.AUTHORIZE_PAYMENT, OrderState.AUTHORIZING, now).attempt(now)

    def attempt(self, now: datetime) -> Order:
        """Counts an attempt of the current step; persisted before the downstream call."""
        step = self._require_current()
        return self._with(
            now,
            steps=self._replace_current(
                replace(step, attempt_count=step.attempt_count + 1, next_attempt_time=None)
            ),
        )

    def retry_later(self, reason: str, message: str, due: datetime, now: datetime) -> Order:
        step = self._require_current()
        return self._with(
            now,
            steps=self._replace_current(
                replace(step, next_attempt_time=due, error_reason=reason, error_message=message)
            ),
        )

    def succeed(self, now: datetime, resource: str = "", **fields: object) -> Order:
        step = self._require_current()
        done = replace(
            step,
            state=StepState.SUCCEEDED,
            finish_time=now,
            next_attempt_time=None,
            resource=resource or step.resource,
        )
        return self._with(now, steps=self._replace_current(done), **fields)

    def fail_step(self, reason: str, message: str, now: datetime) -> Order:
        step = self._require_current()
        failed = replace(
            step,
            state=StepState.FAILED,
            finish_time=now,
            next_attempt_time=None,
            error_reason=reason,
            error_message=message,
        )
        return self._with(now, steps=self._replace_current(failed))

    def failed(self, failure: OrderFailure, state: OrderState, now: datetime) -> Order:
        return self._with(now, state=state, failure=failure)

    def _require_current(self) -> SagaStep:
        step = self.current_step
        if step is None or step.state is not StepState.RUNNING:
            raise ValueError(f"order {self.name} has no running step")
        return step
