"""Realistic, valid requests of the hot paths of ledger, payments and checkout: what the
chassis validates on every call of those services' benchmarks."""

from __future__ import annotations

import time
import uuid

from google.protobuf.message import Message

from commerce.checkout.v1 import checkout_service_pb2 as checkout_pb
from commerce.checkout.v1 import resources_pb2 as checkout_res
from commerce.ledger.v1 import ledger_service_pb2 as ledger_pb
from commerce.ledger.v1 import resources_pb2 as ledger_res
from commerce.payments.v1 import payments_service_pb2 as payments_pb
from commerce.payments.v1 import resources_pb2 as payments_res
from commerce.type.v1.address_pb2 import Address
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money

TENANT = "tenants/acme"
PSP_TOKEN = "pm_card_visa_tok_1f3a"  # noqa: S105 - a PSP payment method token, not a secret


def _usd(amount: int) -> Money:
    return Money(currency_code="USD", amount_minor=amount)


def journal_entry_request(index: int = 0) -> ledger_pb.CreateJournalEntryRequest:
    """One two-posting entry, as payments posts a capture."""
    return ledger_pb.CreateJournalEntryRequest(
        parent=TENANT,
        journal_entry=ledger_res.JournalEntry(
            description="capture of tenants/acme/payments/p-0001",
            postings=[
                ledger_res.Posting(account=f"{TENANT}/accounts/cash", amount=_usd(index + 1250)),
                ledger_res.Posting(
                    account=f"{TENANT}/accounts/sales", amount=_usd(-(index + 1250))
                ),
            ],
            metadata={"payment": "p-0001", "order": "o-0001"},
        ),
        entry_id=f"e{index}",
        request_id=str(uuid.uuid4()),
    )


def batch_request(size: int = 100) -> ledger_pb.BatchCreateJournalEntriesRequest:
    """A batch of `size` entries (the ledger's batch benchmark)."""
    return ledger_pb.BatchCreateJournalEntriesRequest(
        parent=TENANT,
        requests=[journal_entry_request(i) for i in range(size)],
        request_id=str(uuid.uuid4()),
    )


def hold_request() -> ledger_pb.CreateHoldRequest:
    """An authorization hold with an expiry, as payments places one."""
    request = ledger_pb.CreateHoldRequest(
        parent=TENANT,
        hold=ledger_res.Hold(
            debit_account=f"{TENANT}/accounts/customer-funds",
            credit_account=f"{TENANT}/accounts/psp-clearing",
            amount=_usd(4999),
            description="authorization of tenants/acme/payments/p-0001",
        ),
        hold_id="h-0001",
        request_id=str(uuid.uuid4()),
    )
    request.hold.expire_time.FromSeconds(int(time.time()) + 7 * 86_400)
    return request


def authorize_request() -> payments_pb.AuthorizePaymentRequest:
    """AuthorizePayment as checkout's saga sends it."""
    return payments_pb.AuthorizePaymentRequest(
        parent=TENANT,
        payment_id="p-0001",
        order=f"{TENANT}/orders/o-0001",
        customer=CustomerRef(
            customer_id="c-42", email="shopper@example.com", display_name="Ada Shopper"
        ),
        amount=_usd(4999),
        payment_method=payments_res.PaymentMethod(
            token=PSP_TOKEN, type=payments_res.PAYMENT_METHOD_TYPE_CARD
        ),
        capture_method=payments_res.CAPTURE_METHOD_MANUAL,
        routing_hints=payments_res.RoutingHints(preferred_psps=["stripe"]),
        description="order o-0001",
        metadata={"order": "o-0001"},
        request_id=str(uuid.uuid4()),
    )


def capture_request() -> payments_pb.CapturePaymentRequest:
    """CapturePayment of the whole authorized amount."""
    return payments_pb.CapturePaymentRequest(
        name=f"{TENANT}/payments/p-0001",
        amount=_usd(4999),
        final_capture=True,
        request_id=str(uuid.uuid4()),
    )


def create_checkout_request(lines: int = 3) -> checkout_pb.CreateCheckoutRequest:
    """A cart of `lines` lines with addresses and a customer."""
    address = Address(
        region_code="US",
        administrative_area="CA",
        locality="San Francisco",
        postal_code="94103",
        address_lines=["1 Market St"],
        recipient="Ada Shopper",
    )
    checkout = checkout_res.Checkout(
        customer=CustomerRef(customer_id="c-42", email="shopper@example.com"),
        currency_code="USD",
        lines=[
            checkout_res.CheckoutLine(
                line_id=f"l{i}",
                sku=f"SKU-{i:04d}",
                description="a thing",
                quantity=i + 1,
                unit_price=_usd(1999),
                product_tax_code="P0000000",
            )
            for i in range(lines)
        ],
        shipping_address=address,
        billing_address=address,
    )
    return checkout_pb.CreateCheckoutRequest(
        parent=TENANT, checkout=checkout, request_id=str(uuid.uuid4())
    )


def place_order_request() -> checkout_pb.PlaceOrderRequest:
    """PlaceOrder of a quoted checkout."""
    return checkout_pb.PlaceOrderRequest(
        name=f"{TENANT}/checkouts/c-0001",
        request_id=str(uuid.uuid4()),
        etag="W/1",
        quote_id="q-0001",
        payment_method_token=PSP_TOKEN,
    )


def hot_requests() -> dict[str, Message]:
    """The requests whose validation cost the services' benchmarks pay, by a short label."""
    return {
        "ledger CreateJournalEntry": journal_entry_request(),
        "ledger BatchCreateJournalEntries (100)": batch_request(),
        "ledger CreateHold": hold_request(),
        "payments AuthorizePayment": authorize_request(),
        "payments CapturePayment": capture_request(),
        "checkout CreateCheckout (3 lines)": create_checkout_request(),
        "checkout PlaceOrder": place_order_request(),
    }
