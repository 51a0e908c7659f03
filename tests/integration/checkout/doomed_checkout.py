"""The checkout server process of the crash matrix, with one substitution for some runs.

`serve(environment, refused_prices)` is `python -m services.checkout serve` in a forked child
(COMMERCE_CHECKOUT_CRASH_AT names where it dies), except that confirmation fails for orders
whose lines are priced at one of `refused_prices` — a failure after capture, so the saga must
refund. The refusal is the saga's own confirmation hook (ConfirmationCheck); everything else
is the real process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.checkout import bootstrap
from services.checkout.__main__ import run
from services.checkout.domain.orders import Order
from services.checkout.domain.ports import ConfirmationCheck, captured_amount_matches


def refusing(prices: frozenset[int]) -> ConfirmationCheck:
    def check(order: Order) -> tuple[str, str] | None:
        if any(line.unit_price in prices for line in order.quote.lines):
            return ("STOCK_GONE", "the goods sold out while the payment was captured")
        return captured_amount_matches(order)

    return check


def serve(environment: Mapping[str, str], refused_prices: frozenset[int]) -> None:
    build_saga = bootstrap.build_saga

    def build_refusing_saga(*args: Any, **kwargs: Any) -> Any:
        kwargs["confirmation"] = refusing(refused_prices)
        return build_saga(*args, **kwargs)

    bootstrap.build_saga = build_refusing_saga
    run("serve", environment)
