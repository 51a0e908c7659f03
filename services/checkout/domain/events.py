"""What the checkout domain announces; written to the outbox with the change they describe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.checkout.domain.checkouts import Checkout
from services.checkout.domain.orders import Order


@dataclass(frozen=True)
class CheckoutCreated:
    checkout: Checkout


@dataclass(frozen=True)
class OrderPlaced:
    order: Order


@dataclass(frozen=True)
class CheckoutCompleted:
    order: Order
    captured_amount: int


@dataclass(frozen=True)
class OrderFailed:
    order: Order
    compensation_required: bool
    event_time: datetime


@dataclass(frozen=True)
class OrderCompensated:
    order: Order
    amount: int


CheckoutEvent = CheckoutCreated | OrderPlaced | CheckoutCompleted | OrderFailed | OrderCompensated
