"""Proto ⇄ domain: the only place that knows both the wire messages and the domain types."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import order_pb2 as opb
from commerce.checkout.v1 import quote_pb2 as qpb
from commerce.checkout.v1 import resources_pb2 as res
from commerce.type.v1.address_pb2 import Address as AddressPb
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money
from services.checkout.domain import errors
from services.checkout.domain.cart import Address, Customer, Discount, Line
from services.checkout.domain.checkouts import Checkout, CheckoutChanges, CheckoutState
from services.checkout.domain.money import RoundingMode
from services.checkout.domain.orders import (
    Order,
    OrderFailure,
    OrderState,
    SagaStep,
    StepState,
    StepType,
)
from services.checkout.domain.quotes import Quote, QuoteLine, TaxLine
from services.checkout.domain.usecases import Key

_CHECKOUT_STATES = {
    CheckoutState.OPEN: res.CHECKOUT_STATE_OPEN,
    CheckoutState.PLACED: res.CHECKOUT_STATE_PLACED,
    CheckoutState.EXPIRED: res.CHECKOUT_STATE_EXPIRED,
    CheckoutState.CANCELLED: res.CHECKOUT_STATE_CANCELLED,
    CheckoutState.COMPLETED: res.CHECKOUT_STATE_COMPLETED,
}
ORDER_STATES = {state: opb.OrderState.Value(f"ORDER_STATE_{state.value}") for state in OrderState}
ORDER_STATES_BY_NAME = {f"ORDER_STATE_{state.value}": state for state in OrderState}
_STEP_TYPES = {kind: opb.SagaStepType.Value(f"SAGA_STEP_TYPE_{kind.value}") for kind in StepType}
_STEP_STATES = {s: opb.SagaStepState.Value(f"SAGA_STEP_STATE_{s.value}") for s in StepState}
_ROUNDING = {
    RoundingMode.HALF_UP: qpb.ROUNDING_MODE_HALF_UP,
    RoundingMode.HALF_EVEN: qpb.ROUNDING_MODE_HALF_EVEN,
}


# --- proto → domain -------------------------------------------------------------------------


def idempotency_key(method: str, request: Message) -> Key:
    """The request id and a digest of the request without it (deterministic serialization)."""
    copy = type(request)()
    copy.CopyFrom(request)
    request_id = str(getattr(copy, "request_id", "")).lower()
    copy.ClearField("request_id")
    digest = hashlib.sha256(method.encode() + b"\0" + copy.SerializeToString(deterministic=True))
    return Key(request_id, method, digest.digest())


def time_or_none(message: Message, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    stamp: Timestamp = getattr(message, field)
    return stamp.ToDatetime(tzinfo=UTC)


def customer(ref: CustomerRef) -> Customer:
    return Customer(ref.customer_id, ref.email, ref.display_name)


def address(message: AddressPb) -> Address:
    return Address(
        region_code=message.region_code,
        administrative_area=message.administrative_area,
        locality=message.locality,
        postal_code=message.postal_code,
        address_lines=tuple(message.address_lines),
        recipient=message.recipient,
    )


def _amount(money: Money, currency: str, field: str) -> int:
    if money.currency_code != currency:
        raise errors.currency_mismatch(currency, money.currency_code, field)
    return money.amount_minor


def lines(items: Iterable[res.CheckoutLine], currency: str) -> tuple[Line, ...]:
    found: list[Line] = []
    for index, item in enumerate(items):
        discount = None
        if item.HasField("discount"):
            which = item.discount.WhichOneof("value")
            discount = Discount(
                code=item.discount.code,
                amount_off=(
                    _amount(item.discount.amount_off, currency, f"lines[{index}].discount")
                    if which == "amount_off"
                    else None
                ),
                percent_off_bps=(
                    item.discount.percent_off_bps if which == "percent_off_bps" else None
                ),
            )
        found.append(
            Line(
                line_id=item.line_id,
                sku=item.sku,
                quantity=item.quantity,
                unit_price=_amount(item.unit_price, currency, f"lines[{index}].unit_price"),
                description=item.description,
                product_tax_code=item.product_tax_code,
                discount=discount,
            )
        )
    return tuple(found)


def changes(checkout: res.Checkout, paths: list[str], current: Checkout) -> CheckoutChanges:
    """The fields named in the update mask; sub-field paths merge into the current value."""
    roots = {path.split(".", 1)[0] for path in paths}
    new_lines = lines(checkout.lines, current.currency) if "lines" in roots else None
    return CheckoutChanges(
        lines=new_lines,
        customer=_merged_customer(checkout, paths, current) if "customer" in roots else None,
        shipping_address=_merged_address(checkout, paths, "shipping_address", current),
        billing_address=_merged_address(checkout, paths, "billing_address", current),
        clear_shipping_address="shipping_address" in paths
        and not checkout.HasField("shipping_address"),
        clear_billing_address="billing_address" in paths
        and not checkout.HasField("billing_address"),
    )


def _merged_customer(checkout: res.Checkout, paths: list[str], current: Checkout) -> Customer:
    if "customer" in paths:
        return customer(checkout.customer)
    merged = CustomerRef(
        customer_id=current.customer.customer_id,
        email=current.customer.email,
        display_name=current.customer.display_name,
    )
    for path in paths:
        if path.startswith("customer."):
            name = path.split(".", 1)[1]
            setattr(merged, name, getattr(checkout.customer, name))
    return customer(merged)


def _merged_address(
    checkout: res.Checkout,
    paths: list[str],
    field: Literal["shipping_address", "billing_address"],
    current: Checkout,
) -> Address | None:
    given: AddressPb = getattr(checkout, field)
    if field in paths:
        return address(given) if checkout.HasField(field) else None
    subs = [p.split(".", 1)[1] for p in paths if p.startswith(field + ".")]
    if not subs:
        return None
    merged = AddressPb()
    existing = address_message(getattr(current, field))
    if existing is not None:
        merged.CopyFrom(existing)
    for name in subs:
        if name == "address_lines":
            del merged.address_lines[:]
            merged.address_lines.extend(given.address_lines)
        else:
            setattr(merged, name, getattr(given, name))
    return address(merged)


# --- domain → proto -------------------------------------------------------------------------


def timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def money(amount: int, currency: str) -> Money:
    return Money(currency_code=currency, amount_minor=amount)


def customer_message(value: Customer) -> CustomerRef:
    return CustomerRef(
        customer_id=value.customer_id, email=value.email, display_name=value.display_name
    )


def address_message(value: Address | None) -> AddressPb | None:
    if value is None:
        return None
    return AddressPb(
        region_code=value.region_code,
        administrative_area=value.administrative_area,
        locality=value.locality,
        postal_code=value.postal_code,
        address_lines=list(value.address_lines),
        recipient=value.recipient,
    )


def line_message(line: Line, currency: str) -> res.CheckoutLine:
    message = res.CheckoutLine(
        line_id=line.line_id,
        sku=line.sku,
        description=line.description,
        quantity=line.quantity,
        unit_price=money(line.unit_price, currency),
        product_tax_code=line.product_tax_code,
    )
    if line.discount is not None:
        message.discount.code = line.discount.code
        if line.discount.amount_off is not None:
            message.discount.amount_off.CopyFrom(money(line.discount.amount_off, currency))
        else:
            message.discount.percent_off_bps = line.discount.percent_off_bps or 0
    return message


def tax_line(tax: TaxLine, currency: str) -> qpb.TaxLine:
    return qpb.TaxLine(
        jurisdiction=tax.jurisdiction,
        tax_name=tax.tax_name,
        rate_ppm=tax.rate_ppm,
        taxable_amount=money(tax.taxable_amount, currency),
        tax_amount=money(tax.tax_amount, currency),
    )


def quote_line(line: QuoteLine, currency: str) -> qpb.QuoteLine:
    return qpb.QuoteLine(
        line_id=line.line_id,
        sku=line.sku,
        description=line.description,
        quantity=line.quantity,
        unit_price=money(line.unit_price, currency),
        product_tax_code=line.product_tax_code,
        subtotal=money(line.subtotal, currency),
        discount_amount=money(line.discount_amount, currency),
        discount_code=line.discount_code,
        net_amount=money(line.net_amount, currency),
        tax_amount=money(line.tax_amount, currency),
        total=money(line.total, currency),
        taxes=[tax_line(t, currency) for t in line.taxes],
    )


def quote(value: Quote) -> qpb.Quote:
    currency = value.currency
    return qpb.Quote(
        quote_id=value.quote_id,
        lines=[quote_line(line, currency) for line in value.lines],
        tax_breakdown=[tax_line(t, currency) for t in value.tax_breakdown],
        subtotal=money(value.subtotal, currency),
        discount_total=money(value.discount_total, currency),
        tax_total=money(value.tax_total, currency),
        total=money(value.total, currency),
        currency_exponent=value.currency_exponent,
        rounding_mode=_ROUNDING[value.rounding_mode],
        tax_provider=value.tax_provider,
        tax_fallback_used=value.tax_fallback_used,
        tax_fallback_reason=value.tax_fallback_reason,
        create_time=timestamp(value.create_time),
        expire_time=timestamp(value.expire_time),
    )


def checkout(value: Checkout, now: datetime | None = None) -> res.Checkout:
    state = value.effective_state(now) if now is not None else value.state
    return res.Checkout(
        name=value.name,
        customer=customer_message(value.customer),
        currency_code=value.currency,
        lines=[line_message(line, value.currency) for line in value.lines],
        shipping_address=address_message(value.shipping_address),
        billing_address=address_message(value.billing_address),
        state=_CHECKOUT_STATES[state],
        quote=quote(value.quote) if value.quote is not None else None,
        order=value.order,
        expire_time=timestamp(value.expire_time),
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        etag=value.etag,
    )


def saga_step(step: SagaStep) -> opb.SagaStep:
    return opb.SagaStep(
        type=_STEP_TYPES[step.type],
        state=_STEP_STATES[step.state],
        attempt_count=step.attempt_count,
        request_id=step.request_id,
        resource=step.resource,
        start_time=timestamp(step.start_time),
        finish_time=timestamp(step.finish_time),
        next_attempt_time=timestamp(step.next_attempt_time),
        error_reason=step.error_reason,
        error_message=step.error_message,
    )


def failure(value: OrderFailure | None) -> opb.OrderFailure | None:
    if value is None:
        return None
    return opb.OrderFailure(
        reason=value.reason,
        message=value.message,
        step=_STEP_TYPES[value.step],
        decline_code=value.decline_code,
    )


def order(value: Order, *, with_steps: bool = True) -> opb.Order:
    return opb.Order(
        name=value.name,
        checkout=value.checkout,
        customer=customer_message(value.customer),
        quote=quote(value.quote),
        shipping_address=address_message(value.shipping_address),
        billing_address=address_message(value.billing_address),
        state=ORDER_STATES[value.state],
        payment=value.payment,
        capture_reference=value.capture_reference,
        saga_steps=[saga_step(s) for s in value.steps] if with_steps else [],
        failure=failure(value.failure),
        request_id=value.request_id,
        create_time=timestamp(value.create_time),
        update_time=timestamp(value.update_time),
        confirm_time=timestamp(value.confirm_time),
        etag=value.etag,
    )


def order_status(value: Order) -> pb.GetOrderStatusResponse:
    return pb.GetOrderStatusResponse(
        name=value.name,
        checkout=value.checkout,
        state=ORDER_STATES[value.state],
        done=value.done,
        total=money(value.quote.total, value.quote.currency),
        payment=value.payment,
        failure=failure(value.failure),
        update_time=timestamp(value.update_time),
        etag=value.etag,
    )
