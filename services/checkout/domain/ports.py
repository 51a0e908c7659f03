"""What the checkout domain needs from the outside: payments, storage, the clock, hooks."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from services.checkout.domain.checkouts import Checkout
from services.checkout.domain.events import CheckoutEvent
from services.checkout.domain.orders import Order, OrderState

T = TypeVar("T")


# --- payments ---------------------------------------------------------------------------


class Outcome(enum.Enum):
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"  # a permanent answer: the PSP or payments said no
    RETRY = "RETRY"  # nothing known to have happened, or the outcome is still unknown


@dataclass(frozen=True)
class PaymentResult:
    outcome: Outcome
    resource: str = ""  # the payment (or refund) the call created or acted on
    reference: str = ""  # the PSP's reference (of the capture)
    amount: int = 0  # the amount authorized / captured / refunded, minor units
    reason: str = ""  # ErrorInfo-style reason when not SUCCEEDED
    message: str = ""
    decline_code: str = ""


@dataclass(frozen=True)
class Authorization:
    tenant: str
    order: str
    payment_id: str
    customer_id: str
    currency: str
    amount: int
    payment_method_token: str
    request_id: str


class PaymentsPort(Protocol):
    """The payments service as the saga sees it; every call is idempotent by request_id.

    `budget` (seconds) is what is left of the caller's time: the call gives up by then, or
    at the adapter's own timeout if that comes first (None: the adapter's own timeout)."""

    async def authorize(
        self, request: Authorization, *, budget: float | None = None
    ) -> PaymentResult: ...

    async def capture(
        self,
        payment: str,
        amount: int,
        currency: str,
        request_id: str,
        *,
        budget: float | None = None,
    ) -> PaymentResult: ...

    async def void(
        self, payment: str, request_id: str, *, budget: float | None = None
    ) -> PaymentResult: ...

    async def refund(
        self,
        payment: str,
        refund_id: str,
        amount: int,
        currency: str,
        request_id: str,
        *,
        budget: float | None = None,
    ) -> PaymentResult: ...


# --- storage ----------------------------------------------------------------------------


class CheckoutEffect(enum.Enum):
    """What an order transition does to its checkout, in the same transaction."""

    NONE = "NONE"
    COMPLETE = "COMPLETE"
    REOPEN = "REOPEN"


class VersionConflictError(Exception):
    """The order changed since it was loaded: another driver advanced it."""


@dataclass(frozen=True)
class OrderPage:
    orders: Sequence[Order]
    cursor: tuple[datetime, str] | None


@dataclass(frozen=True)
class OrderFilter:
    customer_id: str | None = None
    state: OrderState | None = None
    checkout_id: str | None = None


@dataclass(frozen=True)
class Lease:
    """Who drives an order (one owner per drive) and for how long without renewing."""

    owner: str
    seconds: float


@dataclass(frozen=True)
class StoredKey:
    method: str
    fingerprint: bytes
    result: dict[str, str]


class UnitOfWork(Protocol):
    """One tenant transaction: commit on success, roll back when the work raises."""

    tenant: str

    def now(self) -> datetime: ...

    async def claim_request(
        self, request_id: str, method: str, fingerprint: bytes, result: dict[str, str]
    ) -> StoredKey | None: ...

    async def get_checkout(self, checkout_id: str, *, lock: bool = False) -> Checkout | None: ...

    async def add_checkout(self, checkout: Checkout) -> None: ...

    async def save_checkout(self, checkout: Checkout) -> None: ...

    async def get_order(self, order_id: str, *, lock: bool = False) -> Order | None: ...

    async def add_order(
        self, order: Order, lease: Lease | None = None, checkout: Checkout | None = None
    ) -> None:
        """Inserts the order; with `lease`, already held by that driver; with `checkout`,
        that checkout's new state is saved in the same write."""

    async def save_order(
        self, order: Order, expected_version: int, checkout: Checkout | None = None
    ) -> None:
        """Saves the order if it is still at `expected_version` (VersionConflictError
        otherwise, and nothing is written); a terminal order's lease is released in the same
        write; with `checkout`, that checkout's new state is saved in it too."""

    async def list_orders(
        self, where: OrderFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[Order]: ...

    async def stage(self, events: Sequence[CheckoutEvent]) -> None: ...


class TransactionRunner(Protocol):
    async def run(self, tenant: str, work: Callable[[UnitOfWork], Awaitable[T]]) -> T: ...


class Leases(Protocol):
    """At most one driver per order at a time (a lease that lapses if its holder dies)."""

    async def acquire(self, tenant: str, order_id: str, owner: str, seconds: float) -> bool: ...

    async def take(self, tenant: str, order_id: str, lease: Lease) -> tuple[bool, Order | None]:
        """Acquires an in-flight order's lease and reads the order, in one round trip:
        (whether the lease is now held, the order or None if there is none)."""
        ...

    async def release(self, tenant: str, order_id: str, owner: str) -> None: ...

    async def stalled(self, limit: int) -> list[tuple[str, str]]: ...


# Called with a step's checkpoint name ("authorize.before", "capture.after", ...); the crash
# test hook exits the process there.
Checkpoint = Callable[[str], None]


def no_checkpoint(_: str) -> None:
    return None


class ConfirmationCheck(Protocol):
    """The last check before an order is confirmed; a failure here is a failure after
    capture, so the capture is refunded. Returns None when the order may be confirmed, or the
    (reason, message) of the failure."""

    def __call__(self, order: Order) -> tuple[str, str] | None: ...


def captured_amount_matches(order: Order) -> tuple[str, str] | None:
    """The default check: the payment captured exactly the quote's total."""
    if order.captured_amount != order.quote.total:
        return (
            "CAPTURE_AMOUNT_MISMATCH",
            f"captured {order.captured_amount}, the order total is {order.quote.total}",
        )
    return None
