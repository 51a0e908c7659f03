"""Checkouts over gRPC on real PostgreSQL: create, read, update, cancel, quote, and every
refusal with its status and ErrorInfo reason."""

from __future__ import annotations

import uuid

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import text

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import quote_pb2 as qpb
from commerce.checkout.v1 import resources_pb2 as res
from commerce.type.v1.address_pb2 import Address
from commerce.type.v1.ids_pb2 import CustomerRef


async def test_create_assigns_name_line_ids_state_and_etag(shopper):
    checkout = await shopper.create(shopper.line("a"), shopper.line("b", line_id="b-1"))
    assert checkout.name.startswith(f"{shopper.parent}/checkouts/")
    assert [line.line_id for line in checkout.lines] == ["1", "b-1"]
    assert checkout.state == res.CHECKOUT_STATE_OPEN
    assert checkout.etag
    assert checkout.HasField("expire_time")
    got = await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=checkout.name))
    assert got.checkout == checkout


async def test_create_replays_the_same_request_and_refuses_a_changed_one(shopper):
    request = shopper.create_request()
    first = await shopper.call("CreateCheckout", request)
    again = await shopper.call("CreateCheckout", request)
    assert again.checkout.name == first.checkout.name
    request.checkout.currency_code = "EUR"
    request.checkout.lines[0].unit_price.currency_code = "EUR"
    code, info = await shopper.fails("CreateCheckout", request)
    assert (code, info.reason) == (grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED")


async def test_quote_prices_lines_with_tax_and_rounding(shopper):
    checkout = await shopper.quoted(
        shopper.line("mug", 2, 1999), shopper.line("bread", 1, 350, product_tax_code="food")
    )
    quote = checkout.quote
    # CA: 7.25 % + 2.25 % on 39.98 -> 289.855 -> 290 and 89.955 -> 90; food exempt.
    assert [line.tax_amount.amount_minor for line in quote.lines] == [380, 0]
    assert (quote.subtotal.amount_minor, quote.tax_total.amount_minor) == (4348, 380)
    assert quote.total.amount_minor == 4728
    assert (quote.currency_exponent, quote.rounding_mode) == (2, qpb.ROUNDING_MODE_HALF_UP)
    assert quote.tax_provider == "static-rates"
    assert sum(t.tax_amount.amount_minor for t in quote.tax_breakdown) == 380


async def test_jpy_and_kwd_quotes_use_their_exponents(shopper):
    jpy = await shopper.quoted(
        shopper.line("tea", 1, 1005, currency="JPY"),
        currency="JPY",
        shipping_address=Address(region_code="JP"),
    )
    assert (jpy.quote.total.amount_minor, jpy.quote.currency_exponent) == (1106, 0)
    kwd = await shopper.quoted(
        shopper.line("dates", 3, 411, currency="KWD"),
        currency="KWD",
        shipping_address=Address(region_code="KW"),
    )
    assert (kwd.quote.total.amount_minor, kwd.quote.currency_exponent) == (1233, 3)


async def test_update_replaces_lines_clears_the_quote_and_needs_the_current_etag(shopper):
    quoted = await shopper.quoted()
    request = pb.UpdateCheckoutRequest(
        checkout=res.Checkout(name=quoted.name, etag=quoted.etag, lines=[shopper.line("z", 3)]),
        update_mask=FieldMask(paths=["lines"]),
        request_id=str(uuid.uuid4()),
    )
    updated = (await shopper.call("UpdateCheckout", request)).checkout
    assert [line.sku for line in updated.lines] == ["z"]
    assert not updated.HasField("quote")
    assert updated.etag != quoted.etag
    request.request_id = str(uuid.uuid4())  # the same edit on the stale etag
    code, info = await shopper.fails("UpdateCheckout", request)
    assert (code, info.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert info.metadata["etag"] == updated.etag


async def test_update_merges_address_sub_fields(shopper):
    created = await shopper.create()
    request = pb.UpdateCheckoutRequest(
        checkout=res.Checkout(
            name=created.name,
            etag=created.etag,
            shipping_address=Address(region_code="US", postal_code="94103"),
            customer=CustomerRef(customer_id="c-1", email="a@example.com"),
        ),
        update_mask=FieldMask(paths=["shipping_address.postal_code", "customer.email"]),
        request_id=str(uuid.uuid4()),
    )
    updated = (await shopper.call("UpdateCheckout", request)).checkout
    assert updated.shipping_address.region_code == "US"
    assert updated.shipping_address.administrative_area == "CA"
    assert updated.shipping_address.postal_code == "94103"
    assert (updated.customer.customer_id, updated.customer.email) == ("c-1", "a@example.com")


async def test_update_refuses_lines_in_another_currency(shopper):
    created = await shopper.create()
    request = pb.UpdateCheckoutRequest(
        checkout=res.Checkout(
            name=created.name, etag=created.etag, lines=[shopper.line(currency="EUR")]
        ),
        update_mask=FieldMask(paths=["lines"]),
        request_id=str(uuid.uuid4()),
    )
    code, info = await shopper.fails("UpdateCheckout", request)
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "CURRENCY_MISMATCH")


async def test_cancel_is_terminal_and_repeatable(shopper):
    created = await shopper.create()
    cancel = pb.CancelCheckoutRequest(name=created.name, request_id=str(uuid.uuid4()))
    cancelled = (await shopper.call("CancelCheckout", cancel)).checkout
    assert cancelled.state == res.CHECKOUT_STATE_CANCELLED
    cancel.request_id = str(uuid.uuid4())
    assert (await shopper.call("CancelCheckout", cancel)).checkout.etag == cancelled.etag
    code, info = await shopper.fails(
        "QuoteCheckout", pb.QuoteCheckoutRequest(name=created.name, request_id=str(uuid.uuid4()))
    )
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHECKOUT_NOT_OPEN")
    assert info.metadata["state"] == "CANCELLED"


async def test_quote_needs_lines_and_an_address(shopper):
    empty = await shopper.create()
    request = pb.UpdateCheckoutRequest(
        checkout=res.Checkout(name=empty.name, etag=empty.etag),
        update_mask=FieldMask(paths=["lines", "shipping_address"]),
        request_id=str(uuid.uuid4()),
    )
    cleared = (await shopper.call("UpdateCheckout", request)).checkout
    quote = pb.QuoteCheckoutRequest(name=cleared.name, request_id=str(uuid.uuid4()))
    code, info = await shopper.fails("QuoteCheckout", quote)
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHECKOUT_EMPTY")
    no_address = await shopper.create(shopper.line(), billing_address=None)
    request = pb.UpdateCheckoutRequest(
        checkout=res.Checkout(name=no_address.name, etag=no_address.etag),
        update_mask=FieldMask(paths=["shipping_address"]),
        request_id=str(uuid.uuid4()),
    )
    bare = (await shopper.call("UpdateCheckout", request)).checkout
    quote = pb.QuoteCheckoutRequest(name=bare.name, request_id=str(uuid.uuid4()))
    code, info = await shopper.fails("QuoteCheckout", quote)
    assert (code, info.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ADDRESS_REQUIRED")


async def test_unknown_and_foreign_checkouts_are_not_found(shopper, another_shopper):
    mine = await shopper.create()
    other = another_shopper
    foreign = mine.name.replace(shopper.parent, other.parent)
    for caller, name in ((other, foreign), (shopper, f"{shopper.parent}/checkouts/nope")):
        code, info = await caller.fails("GetCheckout", pb.GetCheckoutRequest(name=name))
        assert (code, info.reason) == (grpc.StatusCode.NOT_FOUND, "CHECKOUT_NOT_FOUND")


async def test_an_unknown_currency_and_a_bad_request_are_invalid(shopper):
    request = shopper.create_request(shopper.line(currency="XXX"), currency="XXX")
    code, info = await shopper.fails("CreateCheckout", request)
    assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_CURRENCY")
    bad = shopper.create_request(shopper.line(quantity=0))
    code, info = await shopper.fails("CreateCheckout", bad)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert info.reason == "VALIDATION_FAILED"


async def test_an_expired_checkout_reads_expired_and_refuses_quotes(shopper, mesh):
    created = await shopper.create()
    checkout_id = created.name.rsplit("/", 1)[-1]
    async with mesh.checkout_database.tenant_transaction(shopper.tenant) as session:
        await session.execute(
            text(
                "UPDATE checkouts SET body = jsonb_set(body, '{expire_time}',"
                " to_jsonb('2020-01-01T00:00:00Z'::text)) WHERE checkout_id = :id"
            ),
            {"id": checkout_id},
        )
    got = (await shopper.call("GetCheckout", pb.GetCheckoutRequest(name=created.name))).checkout
    assert got.state == res.CHECKOUT_STATE_EXPIRED
    code, info = await shopper.fails(
        "QuoteCheckout", pb.QuoteCheckoutRequest(name=created.name, request_id=str(uuid.uuid4()))
    )
    assert (code, info.reason, info.metadata["state"]) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "CHECKOUT_NOT_OPEN",
        "EXPIRED",
    )


async def test_amounts_travel_as_integer_minor_units(shopper):
    checkout = await shopper.quoted(shopper.line("big", 1_000_000, 1_000_000_000))
    assert checkout.quote.subtotal == shopper.money(1_000_000_000_000_000)
