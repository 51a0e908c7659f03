"""The tenant's routing configuration: rules by currency, amount and method, hints, etags."""

import pytest
from google.protobuf import field_mask_pb2

from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import resources_pb2 as res
from commerce.payments.v1 import routing_pb2 as rt
from tests.integration.payments.conftest import new_request_id

pytestmark = pytest.mark.integration


async def test_rules_route_by_currency_and_amount_and_hints_reorder(payments):
    config = await payments.route(
        "alpha",
        rules=(
            rt.RoutingRule(
                rule_id="big-eur",
                currency_code="EUR",
                min_amount_minor=10_000,
                psps=["beta", "alpha"],
                description="large euro payments",
            ),
        ),
    )
    assert [r.rule_id for r in config.rules] == ["big-eur"]
    assert config.rules[0].description == "large euro payments"
    small = await payments.authorize(9_999, currency="EUR")
    big = await payments.authorize(10_000, currency="EUR")
    usd = await payments.authorize(10_000)
    assert (small.psp, big.psp, usd.psp) == ("alpha", "beta", "alpha")
    hinted = await payments.authorize(
        10_000, currency="EUR", routing_hints=res.RoutingHints(preferred_psps=["alpha"])
    )
    excluded = await payments.authorize(
        500, routing_hints=res.RoutingHints(excluded_psps=["alpha"])
    )
    assert hinted.psp == "alpha"
    assert excluded.state == res.PAYMENT_STATE_FAILED
    assert excluded.failure.code == res.PAYMENT_FAILURE_CODE_NO_ROUTE


async def test_updates_need_the_current_etag_and_known_psps(payments):
    name = f"{payments.parent}/routingConfig"
    current = await payments.call("GetRoutingConfig", pb.GetRoutingConfigRequest(name=name))
    empty = current.routing_config
    assert (list(empty.default_psps), list(empty.rules)) == ([], [])
    await payments.route("alpha")
    code, info = await payments.fails(
        "UpdateRoutingConfig",
        pb.UpdateRoutingConfigRequest(
            routing_config=rt.RoutingConfig(name=name, default_psps=["beta"], etag=empty.etag),
            request_id=new_request_id(),
        ),
    )
    assert (code.name, info.reason) == ("ABORTED", "ETAG_MISMATCH")
    fresh = await payments.call("GetRoutingConfig", pb.GetRoutingConfigRequest(name=name))
    code, info = await payments.fails(
        "UpdateRoutingConfig",
        pb.UpdateRoutingConfigRequest(
            routing_config=rt.RoutingConfig(
                name=name, default_psps=["nowhere"], etag=fresh.routing_config.etag
            ),
            request_id=new_request_id(),
        ),
    )
    assert (code.name, info.reason, info.metadata["psp"]) == (
        "INVALID_ARGUMENT",
        "ROUTING_CONFIG_INVALID",
        "nowhere",
    )
    masked = await payments.call(
        "UpdateRoutingConfig",
        pb.UpdateRoutingConfigRequest(
            routing_config=rt.RoutingConfig(
                name=name,
                default_psps=["beta"],
                rules=[rt.RoutingRule(rule_id="ignored", psps=["alpha"])],
                etag=fresh.routing_config.etag,
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["default_psps"]),
            request_id=new_request_id(),
        ),
    )
    assert list(masked.routing_config.default_psps) == ["beta"]
    assert list(masked.routing_config.rules) == []  # not in the mask: unchanged
    assert masked.routing_config.etag != fresh.routing_config.etag
