"""The chassis starts each call's server span itself (services/chassis/tracing.py) instead of
OpenTelemetry's gRPC server interceptor: the spans must be the instrumentation's, field for
field. Differential: the same calls against a real chassis server and against a server built
the old way (the instrumentation's interceptor in front of ChassisInterceptor), both serving
the real CheckoutService contract; every span's name, kind, scope, parent, attributes, status
and events compared."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from services.chassis.access import access_rules
from services.chassis.auth import RbacPolicy, TokenVerifier
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.errors import NotFound
from services.chassis.interceptors import ChassisInterceptor
from services.chassis.server import RunningServer, ServiceRegistration, start_server
from services.chassis.telemetry import RpcMetrics, Telemetry
from services.chassis.tracing import ServerSpans
from services.chassis.validation import RequestValidator

pytestmark = pytest.mark.integration

SECRET = "integration-test-hmac-secret-0123456789abcdef"
DOMAIN = "checkout.commerce-mesh"
POLICY = '[roles]\nstorefront = ["checkout.checkouts.*"]\n'
SERVICE = pb.DESCRIPTOR.services_by_name["CheckoutService"]


class ProbeCheckout(rpc.CheckoutServiceServicer):
    async def CreateCheckout(self, request: Any, context: Any) -> pb.CreateCheckoutResponse:
        return pb.CreateCheckoutResponse(checkout=request.checkout)

    async def GetCheckout(self, request: Any, context: Any) -> pb.GetCheckoutResponse:
        if request.name.endswith("/boom"):
            raise RuntimeError("a bug")
        if request.name.endswith("/aborts"):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the handler's own abort")
        raise NotFound("CHECKOUT_NOT_FOUND", "no such checkout")


def _token() -> str:
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
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _settings(policy: Path) -> ServerSettings:
    return ServerSettings(
        port=0,
        grace_period_seconds=1,
        auth=AuthSettings(key=SECRET, algorithms=["HS256"], rbac_policy_file=policy),
    )


def _registration() -> ServiceRegistration:
    return ServiceRegistration(
        descriptor=SERVICE,
        servicer=ProbeCheckout(),  # type: ignore[abstract]
        add_to_server=rpc.add_CheckoutServiceServicer_to_server,
    )


async def _instrumented_server(settings: ServerSettings, provider: TracerProvider) -> Any:
    """What start_server built before: the instrumentation's interceptor, outermost."""
    registration = _registration()
    chassis = ChassisInterceptor(
        rules=access_rules([SERVICE]),
        verifier=TokenVerifier(
            key=settings.auth.verification_key(),
            algorithms=settings.auth.algorithms,
            issuer=settings.auth.issuer,
            audience=settings.auth.audience,
            leeway_seconds=settings.auth.leeway_seconds,
        ),
        policy=RbacPolicy.from_toml(settings.auth.rbac_policy_file),
        validator=RequestValidator(),
        error_domain=DOMAIN,
        metrics=RpcMetrics(NoOpMeterProvider()),
        spans=ServerSpans(NoOpTracerProvider()),  # no span of its own here
    )
    tracing = aio_server_interceptor(tracer_provider=provider)
    server = grpc.aio.server(interceptors=[tracing, chassis])
    registration.add_to_server(registration.servicer, server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture(scope="module")
async def servers(tmp_path_factory) -> AsyncIterator[dict[str, Any]]:
    policy = Path(tmp_path_factory.mktemp("rbac")) / "rbac.toml"
    policy.write_text(POLICY)
    exporters = {"chassis": InMemorySpanExporter(), "instrumentation": InMemorySpanExporter()}
    providers = {}
    for name, exporter in exporters.items():
        providers[name] = TracerProvider()
        providers[name].add_span_processor(SimpleSpanProcessor(exporter))
    ours: RunningServer = await start_server(
        _settings(policy),
        [_registration()],
        error_domain=DOMAIN,
        telemetry=Telemetry(providers["chassis"], NoOpMeterProvider()),
    )
    theirs, port = await _instrumented_server(_settings(policy), providers["instrumentation"])
    yield {"ports": {"chassis": ours.port, "instrumentation": port}, "spans": exporters}
    await ours.stop()
    await theirs.stop(None)


def _create(request_id: str) -> pb.CreateCheckoutRequest:
    request = pb.CreateCheckoutRequest(parent="tenants/acme", request_id=request_id)
    request.checkout.currency_code = "USD"
    request.checkout.customer.customer_id = "shopper-1"
    return request


Call = Callable[[Any, Any], Any]
CALLS: dict[str, tuple[Call, bool]] = {  # name → (call, with a token)
    "ok": (
        lambda c, md: rpc.CheckoutServiceStub(c).CreateCheckout(_create(_uuid()), metadata=md),
        True,
    ),
    "invalid": (
        lambda c, md: rpc.CheckoutServiceStub(c).CreateCheckout(_create("nope"), metadata=md),
        True,
    ),
    "no token": (
        lambda c, md: rpc.CheckoutServiceStub(c).CreateCheckout(_create(_uuid()), metadata=md),
        False,
    ),
    "domain error": (
        lambda c, md: rpc.CheckoutServiceStub(c).GetCheckout(
            pb.GetCheckoutRequest(name="tenants/acme/checkouts/gone"), metadata=md
        ),
        True,
    ),
    "handler's abort": (
        lambda c, md: rpc.CheckoutServiceStub(c).GetCheckout(
            pb.GetCheckoutRequest(name="tenants/acme/checkouts/aborts"), metadata=md
        ),
        True,
    ),
    "bug": (
        lambda c, md: rpc.CheckoutServiceStub(c).GetCheckout(
            pb.GetCheckoutRequest(name="tenants/acme/checkouts/boom"), metadata=md
        ),
        True,
    ),
    "health": (
        lambda c, md: health_pb2_grpc.HealthStub(c).Check(
            health_pb2.HealthCheckRequest(service=""), metadata=md
        ),
        False,
    ),
}


async def _finished(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    """The finished spans; a call that aborts sends its status before its span ends (grpc's
    abort sends, then raises), so wait a little for one."""
    for _ in range(200):
        found = exporter.get_finished_spans()
        if found:
            return found
        await asyncio.sleep(0.01)
    return ()


def _uuid() -> str:
    return "6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f"


def _shape(span: ReadableSpan) -> dict[str, Any]:
    attributes = dict(span.attributes or {})
    attributes.pop("net.peer.port")  # each connection's own
    status = span.status
    return {
        "name": span.name,
        "kind": span.kind,
        "scope": (
            span.instrumentation_scope.name,
            span.instrumentation_scope.version,
            span.instrumentation_scope.schema_url,
        )
        if span.instrumentation_scope
        else None,
        "parent": span.parent.span_id if span.parent else None,
        "trace": span.context.trace_id if span.context else None,
        "attributes": attributes,
        "status": (status.status_code, status.description),
        "events": [
            (
                e.name,
                (e.attributes or {}).get("exception.type"),
                (e.attributes or {}).get("exception.message"),
            )
            for e in span.events
        ],
    }


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_the_chassis_records_the_span_the_instrumentation_recorded(servers, call):
    invoke, with_token = CALLS[call]
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    metadata: list[tuple[str, str]] = [("traceparent", f"00-{trace_id}-{parent_id}-01")]
    if with_token:
        metadata.append(("authorization", f"Bearer {_token()}"))
    shapes = {}
    for name, port in servers["ports"].items():
        exporter: InMemorySpanExporter = servers["spans"][name]
        exporter.clear()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with contextlib.suppress(grpc.aio.AioRpcError):  # some calls fail: their spans too
                await invoke(channel, tuple(metadata))
        (span,) = await _finished(exporter)
        shapes[name] = _shape(span)
    assert shapes["chassis"] == shapes["instrumentation"]
    assert shapes["chassis"]["trace"] == int(trace_id, 16)
    assert shapes["chassis"]["parent"] == int(parent_id, 16)
