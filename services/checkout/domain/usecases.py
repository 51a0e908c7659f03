"""The checkout use cases: each opens a tenant transaction, loads, calls the domain, saves.

Mutations claim their request_id in the same transaction as their effect: a replay returns the
resource the first call produced (as it is now), a reuse with another request is
IDEMPOTENCY_KEY_REUSED, and concurrent duplicates wait on the key's primary key.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.chassis.errors import IdempotencyKeyReused
from services.checkout.domain import errors, quotes
from services.checkout.domain.checkouts import Checkout, CheckoutChanges, NewCheckout, create
from services.checkout.domain.events import CheckoutCreated, OrderPlaced
from services.checkout.domain.orders import Order, OrderState
from services.checkout.domain.ports import Lease, OrderFilter, TransactionRunner, UnitOfWork
from services.checkout.domain.tax import TaxCalculator, TaxRequest


@dataclass(frozen=True)
class Key:
    """A mutation's idempotency key and the fingerprint of its request (without the key)."""

    request_id: str
    method: str
    fingerprint: bytes


async def _replayed(uow: UnitOfWork, key: Key, result: dict[str, str]) -> dict[str, str] | None:
    stored = await uow.claim_request(key.request_id, key.method, key.fingerprint, result)
    if stored is None:
        return None
    if stored.method != key.method or stored.fingerprint != key.fingerprint:
        raise IdempotencyKeyReused(key.request_id)
    return stored.result


_DIGIT_RUN = re.compile(r"\d{13}")


def new_id() -> str:
    """A resource id: 26 base32 characters of a random UUID (a-z, 2-7).

    Not hex: ids travel in names through every service, and a hex id holds a 13+ digit run
    that passes Luhn about once in 250 ids, which the chassis rightly refuses as a possible
    card number. Base32 makes such a run vanishingly rare, and it is excluded outright.
    """
    while True:
        candidate = base64.b32encode(uuid.uuid4().bytes).decode().rstrip("=").lower()
        if not _DIGIT_RUN.search(candidate):
            return candidate


async def _checkout(uow: UnitOfWork, checkout_id: str, *, lock: bool = False) -> Checkout:
    found = await uow.get_checkout(checkout_id, lock=lock)
    if found is None:
        raise errors.checkout_not_found(f"tenants/{uow.tenant}/checkouts/{checkout_id}")
    return found


async def _expired_recorded(uow: UnitOfWork, checkout: Checkout) -> Checkout:
    expired = checkout.expire(uow.now())
    if expired is not checkout:
        await uow.save_checkout(expired)
    return expired


async def create_checkout(uow: UnitOfWork, key: Key, spec: NewCheckout) -> Checkout:
    checkout_id = new_id()
    replay = await _replayed(uow, key, {"checkout": checkout_id})
    if replay is not None:
        return await _checkout(uow, replay["checkout"])
    checkout = create(checkout_id, uow.tenant, spec, uow.now())
    await uow.add_checkout(checkout)
    await uow.stage([CheckoutCreated(checkout)])
    return checkout


async def get_checkout(uow: UnitOfWork, checkout_id: str) -> Checkout:
    checkout = await _checkout(uow, checkout_id)
    return checkout.expire(uow.now())  # shown EXPIRED at once; recorded by the next write


async def _mutate(
    uow: UnitOfWork, key: Key, checkout_id: str, change: Callable[[Checkout], Checkout]
) -> Checkout:
    if await _replayed(uow, key, {"checkout": checkout_id}) is not None:
        return await _checkout(uow, checkout_id)
    checkout = await _expired_recorded(uow, await _checkout(uow, checkout_id, lock=True))
    changed = change(checkout)
    if changed is not checkout:
        await uow.save_checkout(changed)
    return changed


async def update_checkout(
    uow: UnitOfWork,
    key: Key,
    checkout_id: str,
    etag: str,
    changes: Callable[[Checkout], CheckoutChanges],
) -> Checkout:
    """`changes` reads the current checkout: sub-field masks merge into its values."""

    def change(checkout: Checkout) -> Checkout:
        checkout.check_etag(etag)
        return checkout.update(changes(checkout), uow.now())

    return await _mutate(uow, key, checkout_id, change)


async def cancel_checkout(uow: UnitOfWork, key: Key, checkout_id: str, etag: str) -> Checkout:
    def change(checkout: Checkout) -> Checkout:
        checkout.check_etag(etag)
        return checkout.cancel(uow.now())

    return await _mutate(uow, key, checkout_id, change)


async def quote_checkout(
    runner: TransactionRunner,
    tax: TaxCalculator,
    *,
    tenant: str,
    key: Key,
    checkout_id: str,
    etag: str,
) -> Checkout:
    """Reads the cart, asks the tax hook outside any transaction, then stores the quote if
    the cart did not change meanwhile (ETAG_MISMATCH otherwise)."""

    async def read(uow: UnitOfWork) -> tuple[Checkout, bool]:
        checkout = await _checkout(uow, checkout_id)
        stored = await uow.claim_request(key.request_id, key.method, key.fingerprint, {})
        if stored is not None:  # only looked: the claim rolls back with this read
            if stored.method != key.method or stored.fingerprint != key.fingerprint:
                raise IdempotencyKeyReused(key.request_id)
            return checkout, True
        checkout.check_etag(etag)
        checkout.require_open(uow.now())
        if not checkout.lines:
            raise errors.checkout_empty()
        if checkout.tax_address is None:
            raise errors.address_required()
        raise _Fresh(checkout)

    try:
        replayed, _ = await runner.run(tenant, read)
    except _Fresh as fresh:
        seen = fresh.checkout
    else:
        return replayed
    address = seen.tax_address
    assert address is not None
    assessment = await tax.assess(
        TaxRequest(seen.currency, address, quotes.taxable_lines(seen.lines, seen.currency))
    )

    async def store(uow: UnitOfWork) -> Checkout:
        now = uow.now()
        quote = quotes.price(new_id(), seen.currency, seen.lines, assessment, now)
        return await _mutate(uow, key, checkout_id, lambda c: _requote(c, seen, quote, now))

    return await runner.run(tenant, store)


class _Fresh(Exception):
    """A new QuoteCheckout: leave the read transaction without keeping the claim."""

    def __init__(self, checkout: Checkout) -> None:
        super().__init__("fresh quote")
        self.checkout = checkout


def _requote(current: Checkout, seen: Checkout, quote: quotes.Quote, now: datetime) -> Checkout:
    if current.version != seen.version:
        raise errors.etag_mismatch(current.etag)
    return current.quoted(quote, now)


@dataclass(frozen=True)
class PlaceOrder:
    key: Key
    checkout_id: str
    etag: str
    quote_id: str
    payment_method_token: str


async def place_order(uow: UnitOfWork, command: PlaceOrder) -> Order:
    """Creates the PENDING order, marks the checkout PLACED and stages OrderPlaced, in one
    transaction; a replay returns the order the first call created."""
    order, _ = await _place(uow, command, None)
    return order


async def open_order(uow: UnitOfWork, command: PlaceOrder, lease: Lease) -> tuple[Order, bool]:
    """`place_order`, and in the same transaction the saga's first write: the order is
    stored already authorizing with its first attempt counted (`Order.opened`) and leased to
    the caller, who makes the authorize call next. Returns the order and whether this call
    created it (False: a replay, the order as the first call left it, lease not held)."""
    return await _place(uow, command, lease)


async def _place(uow: UnitOfWork, command: PlaceOrder, lease: Lease | None) -> tuple[Order, bool]:
    order_id = new_id()
    replay = await _replayed(uow, command.key, {"order": order_id})
    if replay is not None:
        return await get_order(uow, replay["order"]), False
    now = uow.now()
    checkout = await _expired_recorded(uow, await _checkout(uow, command.checkout_id, lock=True))
    checkout.require_open(now)  # first: a double click learns which order is in flight
    checkout.check_etag(command.etag)
    quote = checkout.quote
    if quote is None or quote.quote_id != command.quote_id:
        raise errors.quote_stale("it is not the checkout's current quote")
    if quote.is_expired(now):
        raise errors.quote_stale("it expired")
    placed = Order(
        order_id=order_id,
        tenant=uow.tenant,
        checkout_id=checkout.checkout_id,
        customer=checkout.customer,
        quote=quote,
        payment_method_token=command.payment_method_token,
        request_id=command.key.request_id,
        state=OrderState.PENDING,
        create_time=now,
        update_time=now,
        shipping_address=checkout.shipping_address,
        billing_address=checkout.billing_address,
    )
    order = placed if lease is None else placed.opened(now)
    await uow.add_order(order, lease, checkout.placed(order.name, now))  # one write
    await uow.stage([OrderPlaced(placed)])
    return order, True


async def get_order(uow: UnitOfWork, order_id: str) -> Order:
    order = await uow.get_order(order_id)
    if order is None:
        raise errors.order_not_found(f"tenants/{uow.tenant}/orders/{order_id}")
    return order


async def list_orders(
    uow: UnitOfWork, where: OrderFilter, after: tuple[datetime, str] | None, limit: int
) -> list[Order]:
    return await uow.list_orders(where, after, limit)
