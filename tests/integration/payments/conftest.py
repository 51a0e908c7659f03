"""Real servers for the payments tests: PSP sandboxes on port 0, and stripe-mock if installed.

stripe-mock is found through `$STRIPE_MOCK_BIN`, `.tools/bin/stripe-mock` (where `make`
installs Go tools) or `$PATH`; tests that need it are skipped, saying so, when it is absent.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import shutil
import socket
import subprocess
import time as _time
import uuid as _uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from clients.base import ClientSettings
from clients.channel import create_channel
from clients.services import LedgerClient as LedgerServiceClient
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import ledger_service_pb2_grpc as lrpc
from commerce.payments.v1 import payments_service_pb2 as pb
from commerce.payments.v1 import payments_service_pb2_grpc as rpc
from commerce.payments.v1 import resources_pb2 as res
from commerce.payments.v1 import routing_pb2 as rt
from commerce.type.v1.money_pb2 import Money as MoneyPb
from services.chassis.card_data import looks_like_card_number
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import (
    drop_service_database,
    provision_service_database,
)
from services.chassis.server import RunningServer, start_server
from services.chassis.telemetry import Telemetry
from services.ledger import bootstrap as ledger_bootstrap
from services.ledger.config import ERROR_DOMAIN as LEDGER_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner
from services.payments.bootstrap import (
    MIGRATIONS,
    SERVICE_ROLE,
    quiet_value_echoing_loggers,
    registration,
)
from services.payments.config import ERROR_DOMAIN, PspCredentials, PspSettings
from services.payments.ledger import LedgerPostings
from services.payments.psp.registry import PspRegistry, build_registry
from services.payments.sandbox.config import SandboxConfig
from services.payments.sandbox.server import RunningSandbox, start_sandbox
from services.payments.service import PaymentsService, ServiceOptions
from services.payments.storage.unit_of_work import TransactionRunner
from services.payments.webhook_http import start_webhook_endpoint

WEBHOOK_SECRET = b"whsec_integration_tests_only"
_REPO = Path(__file__).resolve().parents[3]
_LISTENING = re.compile(r"Listening for HTTP at address: (127\.0\.0\.1:\d+)")


@dataclass
class RecordingClient:
    """An httpx client that remembers every request it sent (to check forwarded headers)."""

    client: httpx.AsyncClient
    sent: list[httpx.Request] = field(default_factory=list)

    def keys_sent_to(self, base_url: str) -> list[str]:
        return [
            r.headers.get("Idempotency-Key", "")
            for r in self.sent
            if str(r.url).startswith(base_url) and r.method == "POST"
        ]


@pytest.fixture
async def http() -> AsyncIterator[RecordingClient]:
    recording = RecordingClient(httpx.AsyncClient())

    async def remember(request: httpx.Request) -> None:
        recording.sent.append(request)

    recording.client.event_hooks["request"] = [remember]
    async with recording.client:
        yield recording


@pytest.fixture
async def sandbox_factory():
    """`await sandbox_factory(**knobs)`: a fresh sandbox on a free loopback port."""
    started: list[RunningSandbox] = []

    async def start(**knobs: object) -> RunningSandbox:
        config = SandboxConfig(**knobs)  # type: ignore[arg-type]
        sandbox = await start_sandbox(config=config, webhook_secret=WEBHOOK_SECRET)
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        await sandbox.close()


@pytest.fixture
async def sandbox(sandbox_factory):
    """A fresh sandbox with default knobs."""
    return await sandbox_factory()


@pytest.fixture
def webhook_secret() -> bytes:
    """The secret every test sandbox signs its webhooks with."""
    return WEBHOOK_SECRET


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting is refused before anything is sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _stripe_mock_binary() -> str | None:
    candidates = [os.environ.get("STRIPE_MOCK_BIN", ""), str(_REPO / ".tools/bin/stripe-mock")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("stripe-mock")


@pytest.fixture(scope="session")
def stripe_mock_url() -> Iterator[str]:
    """Base URL of Stripe's official mock on a loopback port (HTTP and HTTPS both loopback)."""
    binary = _stripe_mock_binary()
    if binary is None:
        pytest.skip("stripe-mock not installed (go module github.com/stripe/stripe-mock)")
    process = subprocess.Popen(  # noqa: S603 - our own test binary, fixed arguments
        [binary, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for _ in range(20):
            match = _LISTENING.search(process.stdout.readline())
            if match:
                yield f"http://{match.group(1)}"
                break
        else:
            pytest.fail("stripe-mock did not report its HTTP address")
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# --- the payments service under test: real PostgreSQL, real ledger server, real sandboxes ----


JWT_SECRET = "payments-integration-test-hmac-secret-0123456789"
FAST_PSP = PspSettings(
    attempt_timeout_seconds=0.5,
    deadline_seconds=4.0,
    max_attempts=2,
    initial_backoff_seconds=0.01,
    max_backoff_seconds=0.05,
    breaker_threshold=3,
    breaker_ttl_seconds=1.0,
    bulkhead_limit=64,
    bulkhead_wait_seconds=1.0,
)


def new_request_id() -> str:
    """A fresh UUID request id that the card-number guard cannot mistake for a PAN (a few
    random UUIDs hold a digit run that passes Luhn)."""
    while True:
        candidate = str(_uuid.uuid4())
        if not looks_like_card_number(candidate):
            return candidate


def jwt_token(tenant: str | None, *roles: str) -> str:
    now = int(_time.time())
    claims: dict[str, Any] = {
        "sub": "tester",
        "roles": list(roles or ("tenant_admin",)),
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 3600,
    }
    if tenant is not None:
        claims["tenant"] = tenant
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def server_settings() -> ServerSettings:
    return ServerSettings(
        port=0, grace_period_seconds=1, auth=AuthSettings(key=JWT_SECRET, algorithms=["HS256"])
    )


def error_info(error: grpc.aio.AioRpcError, domain: str = ERROR_DOMAIN):
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1
    assert infos[0].domain == domain
    return infos[0]


def money(amount: int, currency: str = "USD") -> MoneyPb:
    return MoneyPb(currency_code=currency, amount_minor=amount)


@dataclass
class LedgerStack:
    name: str
    port: int
    database: Database
    stub: lrpc.LedgerServiceAsyncStub


@pytest.fixture(scope="session")
async def ledger_stack(postgres_admin_url) -> AsyncIterator[LedgerStack]:
    """A real ledger server on its own provisioned, migrated database."""
    name = f"t_pledger_{secrets.token_hex(4)}"
    provisioned = await provision_service_database(postgres_admin_url, name)
    await upgrade(provisioned.owner_url, ledger_bootstrap.MIGRATIONS)
    database = Database.connect(provisioned.app_url, pool_size=10, max_overflow=20)
    server = await start_server(
        server_settings(),
        [ledger_bootstrap.registration(SqlTransactionRunner(database))],
        error_domain=LEDGER_DOMAIN,
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield LedgerStack(name, server.port, database, lrpc.LedgerServiceStub(channel))
    finally:
        await channel.close(None)
        await server.stop()
        await database.dispose()
        await drop_service_database(postgres_admin_url, name)


@pytest.fixture(scope="module")
async def payments_database(service_database) -> AsyncIterator[Database]:
    await upgrade(service_database.owner_url, MIGRATIONS)
    database = Database.connect(service_database.app_url, pool_size=20, max_overflow=20)
    yield database
    await database.dispose()


@dataclass
class Payments:
    """A running payments server with two sandbox PSPs (alpha, beta) and a fresh tenant."""

    stub: rpc.PaymentsServiceStub
    service: PaymentsService
    registry: PspRegistry
    database: Database
    ledger: LedgerStack
    alpha: RunningSandbox
    beta: RunningSandbox
    webhook_url: str
    spans: InMemorySpanExporter
    tenant: str = field(default_factory=lambda: f"t{_uuid.uuid4().hex[:10]}")

    @property
    def parent(self) -> str:
        return f"tenants/{self.tenant}"

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {jwt_token(self.tenant)}"),)

    def name(self, payment_id: str) -> str:
        return f"{self.parent}/payments/{payment_id}"

    async def call(self, method: str, request: Any) -> Any:
        return await getattr(self.stub, method)(request, metadata=self.metadata)

    async def fails(self, method: str, request: Any) -> tuple[grpc.StatusCode, Any]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.call(method, request)
        return caught.value.code(), error_info(caught.value)

    async def route(self, *psps: str, rules: tuple[rt.RoutingRule, ...] = ()) -> rt.RoutingConfig:
        current = await self.call(
            "GetRoutingConfig", pb.GetRoutingConfigRequest(name=f"{self.parent}/routingConfig")
        )
        reply = await self.call(
            "UpdateRoutingConfig",
            pb.UpdateRoutingConfigRequest(
                routing_config=rt.RoutingConfig(
                    name=f"{self.parent}/routingConfig",
                    default_psps=list(psps),
                    rules=list(rules),
                    etag=current.routing_config.etag,
                ),
                request_id=new_request_id(),
            ),
        )
        config: rt.RoutingConfig = reply.routing_config
        return config

    def authorize_request(
        self,
        amount: int = 10_000,
        *,
        currency: str = "USD",
        pm: str = "pm_sandbox_ok",
        manual: bool = True,
        payment_id: str = "",
        request_id: str | None = None,
        **fields: Any,
    ) -> pb.AuthorizePaymentRequest:
        return pb.AuthorizePaymentRequest(
            parent=self.parent,
            payment_id=payment_id,
            order=f"{self.parent}/orders/o-{_uuid.uuid4().hex[:8]}",
            amount=money(amount, currency),
            payment_method=res.PaymentMethod(token=pm, type=res.PAYMENT_METHOD_TYPE_CARD),
            capture_method=res.CAPTURE_METHOD_MANUAL if manual else res.CAPTURE_METHOD_AUTOMATIC,
            request_id=request_id or new_request_id(),
            **fields,
        )

    async def authorize(self, amount: int = 10_000, **kwargs: Any) -> res.Payment:
        reply = await self.call("AuthorizePayment", self.authorize_request(amount, **kwargs))
        payment: res.Payment = reply.payment
        return payment

    async def capture(self, name: str, amount: int | None = None, **fields: Any) -> res.Payment:
        request = pb.CapturePaymentRequest(name=name, request_id=new_request_id(), **fields)
        if amount is not None:
            request.amount.CopyFrom(money(amount))
        reply = await self.call("CapturePayment", request)
        payment: res.Payment = reply.payment
        return payment

    def refund_request(self, name: str, amount: int | None = None, **fields: Any):
        request = pb.RefundPaymentRequest(
            name=name,
            reason=res.REFUND_REASON_REQUESTED_BY_CUSTOMER,
            request_id=new_request_id(),
            **fields,
        )
        if amount is not None:
            request.amount.CopyFrom(money(amount))
        return request

    async def get(self, name: str) -> res.Payment:
        reply = await self.call("GetPayment", pb.GetPaymentRequest(name=name))
        payment: res.Payment = reply.payment
        return payment

    async def balance(self, account: str) -> Any:
        reply = await self.ledger.stub.GetAccountBalance(
            lpb.GetAccountBalanceRequest(account=f"{self.parent}/accounts/{account}"),
            metadata=self.metadata,
        )
        return reply.balance

    async def holds(self) -> list[Any]:
        reply = await self.ledger.stub.ListHolds(
            lpb.ListHoldsRequest(parent=self.parent, page_size=500), metadata=self.metadata
        )
        return list(reply.holds)


@pytest.fixture(scope="module")
async def payments_env(ledger_stack, payments_database) -> AsyncIterator[Payments]:
    """One payments server per test module (PSP breakers are per server: modules that trip
    them get their own)."""
    quiet_value_echoing_loggers()  # as the payments process does at start
    knobs = SandboxConfig(timeout_seconds=2.0)
    alpha = await start_sandbox(config=knobs, webhook_secret=WEBHOOK_SECRET)
    beta = await start_sandbox(config=knobs, webhook_secret=WEBHOOK_SECRET)
    secret = WEBHOOK_SECRET.decode()
    credentials = {
        "alpha": PspCredentials(kind="sandbox", base_url=alpha.url, webhook_secret=secret),
        "beta": PspCredentials(kind="sandbox", base_url=beta.url, webhook_secret=secret),
    }
    http_client = httpx.AsyncClient()
    reader_meter = MeterProvider().get_meter("payments-test")
    registry = build_registry(credentials, FAST_PSP, http_client, meter=reader_meter)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    channel = create_channel(f"127.0.0.1:{ledger_stack.port}", tracer_provider=tracer_provider)
    ledger_client = LedgerServiceClient(
        channel, ClientSettings(token_provider=lambda: jwt_token(None, SERVICE_ROLE))
    )
    runner = TransactionRunner(payments_database)
    service = PaymentsService(
        runner,
        registry.psps,
        LedgerPostings(ledger_client),
        webhook_secrets=registry.webhook_secrets,
        options=ServiceOptions(
            psp_deadline_seconds=FAST_PSP.deadline_seconds, resolve_backoff_seconds=60.0
        ),
    )
    server: RunningServer = await start_server(
        server_settings(),
        [registration(service, runner)],
        error_domain=ERROR_DOMAIN,
        telemetry=Telemetry(tracer_provider, MeterProvider()),
    )
    endpoint = await start_webhook_endpoint(service, host="127.0.0.1", port=0)
    grpc_channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Payments(
            stub=rpc.PaymentsServiceStub(grpc_channel),
            service=service,
            registry=registry,
            database=payments_database,
            ledger=ledger_stack,
            alpha=alpha,
            beta=beta,
            webhook_url=endpoint.url,
            spans=spans,
        )
    finally:
        await grpc_channel.close(None)
        await server.stop()
        await endpoint.close()
        await channel.close(None)
        await http_client.aclose()
        tracer_provider.shutdown()
        await alpha.close()
        await beta.close()


@pytest.fixture
def payments(payments_env) -> Payments:
    """The module's payments server, seen by a fresh tenant; sandbox knobs back to defaults."""
    payments_env.spans.clear()
    for sandbox in (payments_env.alpha, payments_env.beta):
        sandbox.state.config = SandboxConfig(timeout_seconds=2.0)
    fresh: Payments = dataclasses.replace(payments_env, tenant=f"t{_uuid.uuid4().hex[:10]}")
    return fresh
