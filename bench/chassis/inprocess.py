"""The Python the interceptors run per unary call, measured in-process (no network, no gRPC
core): CPU µs per call for the echo handler alone; through ChassisInterceptor without tracing;
through ChassisInterceptor starting the server span itself (what a server runs, ADR 0020),
sampled and not sampled; and, for comparison, the OpenTelemetry server interceptor in front
of an untraced ChassisInterceptor (what servers ran before). The shared machine disturbs this
far less than the servers' figures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import grpc
import jwt
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.trace import NoOpTracerProvider

from bench.chassis.messages import journal_entry_request
from bench.chassis.server import create_journal_entry
from commerce.ledger.v1 import ledger_service_pb2 as ledger_pb
from services.chassis.access import access_rules
from services.chassis.auth import RbacPolicy, TokenVerifier
from services.chassis.config import DEFAULT_RBAC_POLICY
from services.chassis.interceptors import ChassisInterceptor
from services.chassis.telemetry import RpcMetrics, TelemetrySettings, build
from services.chassis.tracing import ServerSpans
from services.chassis.validation import RequestValidator

METHOD = "/commerce.ledger.v1.LedgerService/CreateJournalEntry"
SECRET = "bench-chassis-in-process-hmac-secret-0123456789"  # noqa: S105 - a bench's own key


class _Metadatum(NamedTuple):
    key: str
    value: str


class _Details:
    """grpc.HandlerCallDetails of one call."""

    def __init__(self, metadata: tuple[_Metadatum, ...]) -> None:
        self.method = METHOD
        self.invocation_metadata = metadata


class _Context:
    """The parts of grpc.aio.ServicerContext the interceptors use on a successful call."""

    def __init__(self, metadata: tuple[_Metadatum, ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[_Metadatum, ...]:
        return self._metadata

    def time_remaining(self) -> float:
        return 19.5

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def set_code(self, _code: Any) -> None: ...

    def set_details(self, _details: str) -> None: ...

    def code(self) -> None:
        return None

    def details(self) -> None:
        return None


def _token() -> str:
    now = int(time.time())
    claims = {"sub": "bench", "tenant": "acme", "roles": ["tenant_admin"], "iat": now}
    claims |= {"iss": "commerce-mesh", "aud": "commerce-mesh", "exp": now + 3600}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _chain(sample_ratio: float) -> tuple[Any, Any, Any]:
    """(ChassisInterceptor with its server spans, one without, the instrumentation's one)."""
    telemetry = build("bench-inprocess", TelemetrySettings(sample_ratio=sample_ratio))
    traced = _chassis(telemetry, ServerSpans(telemetry.tracer_provider))
    untraced = _chassis(telemetry, ServerSpans(NoOpTracerProvider()))
    tracing = aio_server_interceptor(tracer_provider=telemetry.tracer_provider)  # type: ignore[no-untyped-call]
    return traced, untraced, tracing


def _chassis(telemetry: Any, spans: ServerSpans) -> ChassisInterceptor:
    service = ledger_pb.DESCRIPTOR.services_by_name["LedgerService"]
    return ChassisInterceptor(
        rules=access_rules([service]),
        verifier=TokenVerifier(
            key=SECRET, algorithms=["HS256"], issuer="commerce-mesh", audience="commerce-mesh"
        ),
        policy=RbacPolicy.from_toml(DEFAULT_RBAC_POLICY),
        validator=RequestValidator(),
        error_domain="bench.commerce-mesh",
        metrics=RpcMetrics(telemetry.meter_provider),
        spans=spans,
    )


async def _per_call(
    resolve: Callable[[_Details], Awaitable[Any]], metadata: tuple[_Metadatum, ...], calls: int
) -> float:
    request = journal_entry_request()

    async def one() -> None:
        handler = await resolve(_Details(metadata))
        await handler.unary_unary(request, _Context(metadata))

    for _ in range(max(50, calls // 10)):
        await one()
    started = time.process_time()
    for _ in range(calls):
        await one()
    return (time.process_time() - started) / calls * 1e6


def measure(calls: int = 3000) -> dict[str, float]:
    """CPU µs per call for each chain."""
    metadata = (
        _Metadatum("authorization", f"Bearer {_token()}"),
        _Metadatum("user-agent", "grpc-go/1.0"),
    )
    handler = grpc.unary_unary_rpc_method_handler(create_journal_entry)

    async def bare(_details: _Details) -> Any:
        return handler

    figures: dict[str, float] = {"handler alone": asyncio.run(_per_call(bare, metadata, calls))}
    for ratio, label in ((1.0, "sampled"), (0.0, "not sampled")):
        traced, untraced, tracing = _chain(ratio)

        async def through_traced(details: _Details, chassis: Any = traced) -> Any:
            return await chassis.intercept_service(bare, details)

        async def through_untraced(details: _Details, chassis: Any = untraced) -> Any:
            return await chassis.intercept_service(bare, details)

        async def through_both(
            details: _Details, tracing: Any = tracing, inner: Any = through_untraced
        ) -> Any:
            return await tracing.intercept_service(inner, details)

        if ratio == 1.0:
            figures["chassis interceptor, no tracing"] = asyncio.run(
                _per_call(through_untraced, metadata, calls)
            )
        figures[f"chassis with its server span ({label})"] = asyncio.run(
            _per_call(through_traced, metadata, calls)
        )
        figures[f"before: otel interceptor + chassis ({label})"] = asyncio.run(
            _per_call(through_both, metadata, calls)
        )
    return figures
