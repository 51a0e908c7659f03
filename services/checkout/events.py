"""What checkout publishes: each domain event as its contract message, subject and source.

The subject (Pub/Sub ordering key) is the checkout for CheckoutCreated and the order for every
order event, so a consumer (invoicing) sees one order's events in the order they happened.
"""

from __future__ import annotations

from google.protobuf.message import Message

from commerce.checkout.v1 import events_pb2 as ev
from services.checkout import messages
from services.checkout.domain import events
from services.checkout.domain.orders import Order

SOURCE = "//commerce-mesh/checkout"


def completed(order: Order, captured: int) -> ev.CheckoutCompleted:
    quote = order.quote
    currency = quote.currency
    return ev.CheckoutCompleted(
        order=order.name,
        checkout=order.checkout,
        customer=messages.customer_message(order.customer),
        currency_code=currency,
        lines=[messages.quote_line(line, currency) for line in quote.lines],
        tax_breakdown=[messages.tax_line(t, currency) for t in quote.tax_breakdown],
        subtotal=messages.money(quote.subtotal, currency),
        discount_total=messages.money(quote.discount_total, currency),
        tax_total=messages.money(quote.tax_total, currency),
        total=messages.money(quote.total, currency),
        payment=order.payment,
        capture_reference=order.capture_reference,
        captured_amount=messages.money(captured, currency),
        billing_address=messages.address_message(order.billing_address),
        shipping_address=messages.address_message(order.shipping_address),
        quote_id=quote.quote_id,
        complete_time=messages.timestamp(order.confirm_time),
        event_time=messages.timestamp(order.confirm_time),
    )


def outgoing(event: events.CheckoutEvent) -> tuple[Message, str]:
    """The event's proto message and its subject (the aggregate's resource name)."""
    match event:
        case events.CheckoutCreated(checkout=checkout):
            return ev.CheckoutCreated(
                checkout=checkout.name,
                customer=messages.customer_message(checkout.customer),
                currency_code=checkout.currency,
                lines=[messages.line_message(line, checkout.currency) for line in checkout.lines],
                expire_time=messages.timestamp(checkout.expire_time),
                event_time=messages.timestamp(checkout.create_time),
            ), checkout.name
        case events.OrderPlaced(order=order):
            currency = order.quote.currency
            return ev.OrderPlaced(
                order=order.name,
                checkout=order.checkout,
                customer=messages.customer_message(order.customer),
                quote_id=order.quote.quote_id,
                lines=[messages.quote_line(line, currency) for line in order.quote.lines],
                total=messages.money(order.quote.total, currency),
                shipping_address=messages.address_message(order.shipping_address),
                event_time=messages.timestamp(order.create_time),
            ), order.name
        case events.CheckoutCompleted(order=order, captured_amount=captured):
            return completed(order, captured), order.name
        case events.OrderFailed(order=order, compensation_required=required, event_time=event_time):
            return ev.OrderFailed(
                order=order.name,
                checkout=order.checkout,
                customer=messages.customer_message(order.customer),
                total=messages.money(order.quote.total, order.quote.currency),
                payment=order.payment,
                failure=messages.failure(order.failure),
                state=messages.ORDER_STATES[order.state],
                compensation_required=required,
                event_time=messages.timestamp(event_time),
            ), order.name
        case events.OrderCompensated(order=order, amount=amount):
            return ev.OrderCompensated(
                order=order.name,
                checkout=order.checkout,
                customer=messages.customer_message(order.customer),
                payment=order.payment,
                state=messages.ORDER_STATES[order.state],
                amount=messages.money(amount, order.quote.currency),
                refund=order.refund,
                failure=messages.failure(order.failure),
                event_time=messages.timestamp(order.update_time),
            ), order.name
