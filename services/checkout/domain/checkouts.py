"""The checkout aggregate: an editable cart while OPEN, then placed, completed or closed.

Lines, addresses and the customer change only while the checkout is OPEN; every change clears
the quote and bumps the version (the etag). An OPEN checkout expires after a period of
inactivity: each change slides its default expiry forward, an explicit `expire_time` given on
create stays where the caller put it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.checkout.domain import errors
from services.checkout.domain.cart import Address, Customer, Line
from services.checkout.domain.money import MAX_AMOUNT, exponent
from services.checkout.domain.quotes import Quote

DEFAULT_INACTIVITY = timedelta(hours=24)


class CheckoutState(enum.Enum):
    OPEN = "OPEN"
    PLACED = "PLACED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class CheckoutChanges:
    """What UpdateCheckout replaces; None leaves a field as it is."""

    lines: tuple[Line, ...] | None = None
    customer: Customer | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    clear_shipping_address: bool = False
    clear_billing_address: bool = False


@dataclass(frozen=True)
class Checkout:
    checkout_id: str
    tenant: str
    customer: Customer
    currency: str
    lines: tuple[Line, ...]
    state: CheckoutState
    create_time: datetime
    update_time: datetime
    expire_time: datetime
    shipping_address: Address | None = None
    billing_address: Address | None = None
    quote: Quote | None = None
    order: str = ""  # the latest order placed from it
    expire_explicit: bool = False
    version: int = 1

    @property
    def name(self) -> str:
        return f"tenants/{self.tenant}/checkouts/{self.checkout_id}"

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def tax_address(self) -> Address | None:
        return self.shipping_address or self.billing_address

    def effective_state(self, now: datetime) -> CheckoutState:
        """EXPIRED once an OPEN checkout passed its expiry, even before a write records it."""
        if self.state is CheckoutState.OPEN and now >= self.expire_time:
            return CheckoutState.EXPIRED
        return self.state

    def check_etag(self, etag: str) -> None:
        if etag and etag != self.etag:
            raise errors.etag_mismatch(self.etag)

    def require_open(self, now: datetime) -> None:
        state = self.effective_state(now)
        if state is not CheckoutState.OPEN:
            raise errors.checkout_not_open(state.value, self.order)

    def _changed(self, now: datetime, **fields: object) -> Checkout:
        expire = self.expire_time
        if not self.expire_explicit and fields.get("state", self.state) is CheckoutState.OPEN:
            expire = max(expire, now + DEFAULT_INACTIVITY)  # activity slides the expiry
        return replace(
            self,
            update_time=now,
            expire_time=expire,
            version=self.version + 1,
            **fields,  # type: ignore[arg-type]
        )

    def update(self, changes: CheckoutChanges, now: datetime) -> Checkout:
        self.require_open(now)
        if (
            self.order
            and changes.customer is not None
            and changes.customer.customer_id != self.customer.customer_id
        ):
            raise errors.customer_locked(self.order)
        lines = self.lines if changes.lines is None else number_lines(changes.lines)
        check_lines(lines)
        shipping = None if changes.clear_shipping_address else self.shipping_address
        billing = None if changes.clear_billing_address else self.billing_address
        return self._changed(
            now,
            lines=lines,
            customer=changes.customer or self.customer,
            shipping_address=changes.shipping_address or shipping,
            billing_address=changes.billing_address or billing,
            quote=None,
        )

    def cancel(self, now: datetime) -> Checkout:
        if self.state is CheckoutState.CANCELLED:
            return self
        self.require_open(now)
        return self._changed(now, state=CheckoutState.CANCELLED, quote=None)

    def quoted(self, quote: Quote, now: datetime) -> Checkout:
        self.require_open(now)
        return self._changed(now, quote=quote)

    def expire(self, now: datetime) -> Checkout:
        """Records the expiry of an OPEN checkout past its expire_time."""
        if self.effective_state(now) is not CheckoutState.EXPIRED or self.state is not (
            CheckoutState.OPEN
        ):
            return self
        return replace(self, state=CheckoutState.EXPIRED, update_time=now, version=self.version + 1)

    def placed(self, order: str, now: datetime) -> Checkout:
        self.require_open(now)
        return self._changed(now, state=CheckoutState.PLACED, order=order)

    def completed(self, now: datetime) -> Checkout:
        return self._changed(now, state=CheckoutState.COMPLETED)

    def reopened(self, now: datetime) -> Checkout:
        """After a failed order: OPEN again (or EXPIRED when past its expiry), quote kept."""
        state = CheckoutState.OPEN if now < self.expire_time else CheckoutState.EXPIRED
        return replace(self, state=state, update_time=now, version=self.version + 1)


def number_lines(lines: tuple[Line, ...]) -> tuple[Line, ...]:
    """Server-assigned ids ("1", "2", ...) for lines that came without one."""
    taken = {line.line_id for line in lines if line.line_id}
    numbered: list[Line] = []
    counter = 0
    for line in lines:
        if line.line_id:
            numbered.append(line)
            continue
        counter += 1
        while str(counter) in taken:
            counter += 1
        taken.add(str(counter))
        numbered.append(replace(line, line_id=str(counter)))
    return tuple(numbered)


def check_lines(lines: tuple[Line, ...]) -> None:
    """Invariants the contract's validation cannot see: the sum must fit in int64."""
    total = 0
    for line in lines:
        total += line.subtotal
        if total > MAX_AMOUNT:
            raise errors.amount_out_of_range("the checkout's subtotal")


@dataclass(frozen=True)
class NewCheckout:
    """What CreateCheckout asks for."""

    customer: Customer
    currency: str
    lines: tuple[Line, ...] = ()
    shipping_address: Address | None = None
    billing_address: Address | None = None
    expire_time: datetime | None = None


def create(checkout_id: str, tenant: str, spec: NewCheckout, now: datetime) -> Checkout:
    exponent(spec.currency)  # UNSUPPORTED_CURRENCY for codes outside ISO 4217's table
    lines = number_lines(spec.lines)
    check_lines(lines)
    return Checkout(
        checkout_id=checkout_id,
        tenant=tenant,
        customer=spec.customer,
        currency=spec.currency,
        lines=lines,
        state=CheckoutState.OPEN,
        create_time=now,
        update_time=now,
        expire_time=spec.expire_time or now + DEFAULT_INACTIVITY,
        expire_explicit=spec.expire_time is not None,
        shipping_address=spec.shipping_address,
        billing_address=spec.billing_address,
    )
