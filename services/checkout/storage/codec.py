"""Domain documents as jsonb and back: the checkout and the order, validated on the way in."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from services.checkout.domain.checkouts import Checkout
from services.checkout.domain.orders import Order


@cache
def _checkouts() -> TypeAdapter[Checkout]:
    return TypeAdapter(Checkout)


@cache
def _orders() -> TypeAdapter[Order]:
    return TypeAdapter(Order)


def dump_checkout(checkout: Checkout) -> str:
    return json.dumps(_checkouts().dump_python(checkout, mode="json"), separators=(",", ":"))


def load_checkout(body: Any) -> Checkout:
    return _checkouts().validate_python(body)


def dump_order(order: Order) -> str:
    # The payment method is a PSP token (`pm_...`), never card data: safe to keep for resumes.
    return json.dumps(_orders().dump_python(order, mode="json"), separators=(",", ":"))


def load_order(body: Any) -> Order:
    return _orders().validate_python(body)
