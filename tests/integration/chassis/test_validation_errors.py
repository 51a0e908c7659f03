"""A real chassis server serving the real CheckoutService contract: a request whose custom
rule CEL cannot evaluate (an int64 overflow in `unit_price * quantity`, a timestamp past year
9999) is the client's error — INVALID_ARGUMENT naming the field and the rule — not INTERNAL.

protovalidate itself raises for these values; the server must not turn that into a 500."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.server import RunningServer, ServiceRegistration, start_server

pytestmark = pytest.mark.integration

SECRET = "integration-test-hmac-secret-0123456789abcdef"
DOMAIN = "checkout.commerce-mesh"
POLICY = """
[roles]
storefront = ["checkout.checkouts.*"]
"""
REQUEST_ID = "6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f"
YEAR_10000 = 253_402_300_800  # seconds: the first instant CEL cannot represent


class ProbeCheckout(rpc.CheckoutServiceServicer):
    """Answers a valid CreateCheckout with the checkout it was sent."""

    async def CreateCheckout(self, request: Any, context: Any) -> pb.CreateCheckoutResponse:
        return pb.CreateCheckoutResponse(checkout=request.checkout)


@pytest.fixture(scope="module")
async def server(tmp_path_factory) -> AsyncIterator[RunningServer]:
    policy = Path(tmp_path_factory.mktemp("rbac")) / "rbac.toml"
    policy.write_text(POLICY)
    settings = ServerSettings(
        port=0,
        grace_period_seconds=1,
        auth=AuthSettings(key=SECRET, algorithms=["HS256"], rbac_policy_file=policy),
    )
    running = await start_server(
        settings,
        [
            ServiceRegistration(
                descriptor=pb.DESCRIPTOR.services_by_name["CheckoutService"],
                servicer=ProbeCheckout(),  # type: ignore[abstract]
                add_to_server=rpc.add_CheckoutServiceServicer_to_server,
            )
        ],
        error_domain=DOMAIN,
    )
    yield running
    await running.stop()


@pytest.fixture
async def stub(server) -> AsyncIterator[rpc.CheckoutServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield rpc.CheckoutServiceStub(channel)


def metadata() -> tuple[tuple[str, str]]:
    now = int(time.time())
    claims = {
        "sub": "storefront",
        "tenant": "acme",
        "roles": ["storefront"],
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 300,
    }
    return (("authorization", f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"),)


def create_request(*, unit_price: int, quantity: int, discount: int) -> pb.CreateCheckoutRequest:
    request = pb.CreateCheckoutRequest(parent="tenants/acme", request_id=REQUEST_ID)
    request.checkout.currency_code = "USD"
    request.checkout.customer.customer_id = "shopper-1"
    line = request.checkout.lines.add(line_id="a", sku="sku-1", quantity=quantity)
    line.unit_price.currency_code = "USD"
    line.unit_price.amount_minor = unit_price
    line.discount.amount_off.currency_code = "USD"
    line.discount.amount_off.amount_minor = discount
    return request


async def rejected(stub: Any, request: Any) -> tuple[Any, list[Any]]:
    """The ErrorInfo and the BadRequest violations of a call that must be INVALID_ARGUMENT."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateCheckout(request, metadata=metadata())
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    bad_request = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            detail.Unpack(bad_request)
    return info, list(bad_request.field_violations)


async def test_a_valid_checkout_reaches_the_servicer(stub):
    request = create_request(unit_price=1_000, quantity=3, discount=500)
    reply = await stub.CreateCheckout(request, metadata=metadata())
    assert reply.checkout.lines[0].discount.amount_off.amount_minor == 500


async def test_a_line_whose_discount_check_overflows_int64_is_invalid_argument(stub):
    # unit_price * quantity = 2**62 * 1000 does not fit in int64: CEL's `*` errors.
    request = create_request(unit_price=2**62, quantity=1000, discount=5)
    info, violations = await rejected(stub, request)
    assert (info.reason, info.domain) == ("VALIDATION_FAILED", DOMAIN)
    assert info.metadata["field"] == "checkout.lines[0]"
    reported = {(v.field, v.reason): v.description for v in violations}
    # The range rule fails as usual; the overflowing rule is reported, not raised.
    assert ("checkout.lines[0]", "checkout_line.unit_price_range") in reported
    overflow = reported[("checkout.lines[0]", "checkout_line.discount_not_above_line")]
    assert "overflow" in overflow


async def test_a_discount_above_the_line_near_int64s_limit_is_a_plain_violation(stub):
    # unit_price * quantity = 10**18 still fits in int64: the rule is evaluated, and fails.
    request = create_request(unit_price=10**12, quantity=1_000_000, discount=10**18 + 1)
    info, violations = await rejected(stub, request)
    assert info.metadata["rule"] == "checkout_line.discount_not_above_line"
    assert [(v.field, v.reason) for v in violations] == [
        ("checkout.lines[0]", "checkout_line.discount_not_above_line")
    ]


async def test_a_timestamp_cel_cannot_represent_is_invalid_argument(stub):
    request = create_request(unit_price=1_000, quantity=1, discount=1)
    request.checkout.expire_time.seconds = YEAR_10000 + 60
    info, violations = await rejected(stub, request)
    assert info.reason == "VALIDATION_FAILED"
    assert info.metadata["rule"] == "create_checkout.expire_time_range"
    assert [v.reason for v in violations] == ["create_checkout.expire_time_range"]
    assert "out of range" in violations[0].description
