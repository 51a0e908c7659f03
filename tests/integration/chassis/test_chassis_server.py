"""A real chassis server on port 0, serving the real LedgerService contract through a probe
servicer backed by real PostgreSQL: authentication, authorization from the contract's
permission option, validation, rich domain errors, and tenant isolation by row-level security."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from clients import ClientSettings, RetryPolicy, ServiceClient, create_channel
from clients import NotFound as ClientNotFound
from clients.deadline import current_deadline
from clients.services import LedgerClient
from commerce.ledger.v1 import ledger_service_pb2 as pb
from commerce.ledger.v1 import ledger_service_pb2_grpc as rpc
from commerce.ledger.v1 import resources_pb2
from services.chassis import context as request_context
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.rls import tenant_isolation_statements
from services.chassis.errors import NotFound
from services.chassis.server import RunningServer, ServiceRegistration, start_server
from services.chassis.telemetry import Telemetry, TelemetrySettings, build

pytestmark = pytest.mark.integration

SECRET = "integration-test-hmac-secret-0123456789abcdef"
DOMAIN = "ledger.commerce-mesh"
POLICY = """
[roles]
bookkeeper = ["ledger.accounts.*"]
viewer = ["ledger.accounts.get", "ledger.accounts.list"]
"""


class ProbeLedger(rpc.LedgerServiceServicer):
    """Just enough of a ledger to exercise the chassis. Its queries deliberately carry no
    tenant filter: row-level security alone keeps tenants apart."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _tenant(self) -> str:
        tenant = request_context.current().tenant
        assert tenant is not None
        return tenant

    async def CreateAccount(self, request: Any, context: Any) -> pb.CreateAccountResponse:
        name = f"{request.parent}/accounts/{request.account_id}"
        async with self._db.tenant_transaction(self._tenant()) as session:
            await session.execute(
                text(
                    "INSERT INTO probe_accounts (tenant_id, name, code, currency_code)"
                    " VALUES (:tenant, :name, :code, :currency)"
                ),
                {
                    "tenant": self._tenant(),
                    "name": name,
                    "code": request.account.code,
                    "currency": request.account.currency_code,
                },
            )
        account = resources_pb2.Account()
        account.CopyFrom(request.account)
        account.name = name
        account.metadata["seen_request_id"] = request_context.current().request_id or ""
        return pb.CreateAccountResponse(account=account)

    async def GetAccount(self, request: Any, context: Any) -> pb.GetAccountResponse:
        if request.name.endswith("/boom"):
            raise RuntimeError("a bug with a secret detail: s3cr3t")
        async with self._db.tenant_transaction(self._tenant()) as session:
            row = (
                await session.execute(
                    text("SELECT name, code, currency_code FROM probe_accounts WHERE name = :n"),
                    {"n": request.name},
                )
            ).first()
        if row is None:
            raise NotFound("ACCOUNT_NOT_FOUND", "no such account", metadata={"name": request.name})
        return pb.GetAccountResponse(account=_account(row))

    async def ListAccounts(self, request: Any, context: Any) -> pb.ListAccountsResponse:
        async with self._db.tenant_transaction(self._tenant()) as session:
            rows = (
                await session.execute(text("SELECT name, code, currency_code FROM probe_accounts"))
            ).all()
        # The probe reports the deadline its own downstream calls would get.
        deadline = current_deadline()
        remaining = f"{deadline.remaining():.3f}" if deadline else ""
        return pb.ListAccountsResponse(
            accounts=[_account(row) for row in rows], next_page_token=remaining
        )


def _account(row: Any) -> resources_pb2.Account:
    return resources_pb2.Account(name=row.name, code=row.code, currency_code=row.currency_code)


def token(tenant: str | None, *roles: str) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "tester",
        "roles": list(roles),
        "iss": "commerce-mesh",
        "aud": "commerce-mesh",
        "iat": now,
        "exp": now + 300,
    }
    if tenant is not None:
        claims["tenant"] = tenant
    return jwt.encode(claims, SECRET, algorithm="HS256")


def bearer(jwt_token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {jwt_token}"),)


@pytest.fixture(scope="module")
async def probe_db(service_database) -> Database:
    owner = create_async_engine(service_database.owner_url)
    async with owner.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE probe_accounts (tenant_id text NOT NULL, name text PRIMARY KEY,"
                " code text NOT NULL, currency_code text NOT NULL)"
            )
        )
        for statement in tenant_isolation_statements("probe_accounts"):
            await conn.execute(text(statement))
    await owner.dispose()
    database: Database = service_database.database
    return database


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def telemetry(spans) -> Iterator[Telemetry]:
    built = build("ledger-probe", TelemetrySettings(metrics_port=0, metrics_host="127.0.0.1"))
    assert isinstance(built.tracer_provider, TracerProvider)
    built.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    yield built
    built.shutdown()


@pytest.fixture(scope="module")
async def server(probe_db, telemetry, tmp_path_factory) -> AsyncIterator[RunningServer]:
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
                descriptor=pb.DESCRIPTOR.services_by_name["LedgerService"],
                # The probe implements three RPCs; the rest answer UNIMPLEMENTED at run time.
                servicer=ProbeLedger(probe_db),  # type: ignore[abstract]
                add_to_server=rpc.add_LedgerServiceServicer_to_server,
            )
        ],
        error_domain=DOMAIN,
        telemetry=telemetry,
    )
    yield running
    await running.stop()


@pytest.fixture
async def stub(server) -> AsyncIterator[rpc.LedgerServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield rpc.LedgerServiceStub(channel)


def create_request(tenant: str, account_id: str, **account: Any) -> pb.CreateAccountRequest:
    fields: dict[str, Any] = {
        "code": account_id.upper(),
        "currency_code": "USD",
        "display_name": account_id,
        "type": resources_pb2.ACCOUNT_TYPE_ASSET,
    }
    fields.update(account)
    return pb.CreateAccountRequest(
        parent=f"tenants/{tenant}",
        account_id=account_id,
        account=resources_pb2.Account(**fields),
        request_id="6f1d3c1e-8d4b-4c1a-9e7f-0b5d2c4a6e8f",
    )


def details(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, list[Any]]:
    """The single ErrorInfo and the other details of a rich status."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type] # AioRpcError works as a Call
    assert status is not None, "the error carries no google.rpc.Status"
    infos, others = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        else:
            others.append(detail)
    assert len(infos) == 1, "exactly one ErrorInfo"
    return infos[0], others


async def test_health_reports_serving_for_the_server_and_the_service(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "commerce.ledger.v1.LedgerService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_call_without_a_token_is_unauthenticated(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAccount(pb.GetAccountRequest(name="tenants/acme/accounts/cash"))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    info, _ = details(caught.value)
    assert (info.reason, info.domain) == ("TOKEN_MISSING", DOMAIN)


async def test_a_forged_token_is_unauthenticated(stub):
    forged = jwt.encode({"sub": "x", "tenant": "acme"}, "not-the-secret-but-long-enough!!!")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAccount(
            pb.GetAccountRequest(name="tenants/acme/accounts/cash"), metadata=bearer(forged)
        )
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert details(caught.value)[0].reason == "TOKEN_INVALID"


async def test_a_role_without_the_contracts_permission_is_denied(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateAccount(
            create_request("acme", "cash"), metadata=bearer(token("acme", "viewer"))
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    info, _ = details(caught.value)
    assert info.reason == "PERMISSION_DENIED"
    assert info.metadata["permission"] == "ledger.accounts.create"


async def test_an_invalid_request_is_invalid_argument_naming_the_field(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateAccount(
            create_request("acme", "cash", currency_code="usd"),
            metadata=bearer(token("acme", "bookkeeper")),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    info, others = details(caught.value)
    assert info.reason == "VALIDATION_FAILED"
    assert info.metadata["field"] == "account.currency_code"
    bad_request = error_details_pb2.BadRequest()
    assert len(others) == 1
    others[0].Unpack(bad_request)
    assert [(v.field, v.reason) for v in bad_request.field_violations] == [
        ("account.currency_code", "string.pattern")
    ]


async def test_a_card_number_in_any_field_is_rejected_and_not_echoed(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateAccount(
            create_request("acme", "cash", display_name="4242 4242 4242 4242"),
            metadata=bearer(token("acme", "bookkeeper")),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    info, _ = details(caught.value)
    assert (info.reason, info.metadata["field"]) == ("CARD_DATA_REJECTED", "account.display_name")
    assert "4242" not in (caught.value.details() or "")


async def test_a_domain_error_arrives_with_its_error_info_reason(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAccount(
            pb.GetAccountRequest(name="tenants/acme/accounts/missing"),
            metadata=bearer(token("acme", "viewer")),
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    info, _ = details(caught.value)
    assert (info.reason, info.domain) == ("ACCOUNT_NOT_FOUND", DOMAIN)
    assert info.metadata["name"] == "tenants/acme/accounts/missing"


async def test_an_unexpected_exception_is_internal_without_leaking_details(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAccount(
            pb.GetAccountRequest(name="tenants/acme/accounts/boom"),
            metadata=bearer(token("acme", "viewer")),
        )
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert details(caught.value)[0].reason == "INTERNAL"
    assert "s3cr3t" not in (caught.value.details() or "")


async def test_a_user_cannot_name_another_tenants_resource(stub):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetAccount(
            pb.GetAccountRequest(name="tenants/globex/accounts/cash"),
            metadata=bearer(token("acme", "viewer")),
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert details(caught.value)[0].reason == "TENANT_MISMATCH"


async def test_rows_of_one_tenant_are_invisible_to_another_even_without_a_tenant_filter(stub):
    await stub.CreateAccount(
        create_request("acme", "acme-cash"), metadata=bearer(token("acme", "bookkeeper"))
    )
    await stub.CreateAccount(
        create_request("globex", "globex-cash"), metadata=bearer(token("globex", "bookkeeper"))
    )
    acme = await stub.ListAccounts(
        pb.ListAccountsRequest(parent="tenants/acme"), metadata=bearer(token("acme", "viewer"))
    )
    globex = await stub.ListAccounts(
        pb.ListAccountsRequest(parent="tenants/globex"), metadata=bearer(token("globex", "viewer"))
    )
    assert [a.name for a in acme.accounts] == ["tenants/acme/accounts/acme-cash"]
    assert [a.name for a in globex.accounts] == ["tenants/globex/accounts/globex-cash"]
    # A service identity may act for any tenant, and still sees only the one it names.
    service = await stub.ListAccounts(
        pb.ListAccountsRequest(parent="tenants/globex"),
        metadata=bearer(token(None, "service:payments", "viewer")),
    )
    assert [a.name for a in service.accounts] == ["tenants/globex/accounts/globex-cash"]


async def test_the_typed_client_decodes_the_rich_status(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        client: ServiceClient[Any] = ServiceClient(
            rpc.LedgerServiceStub(channel),
            ClientSettings(
                token_provider=lambda: token("acme", "viewer"), retry=RetryPolicy.disabled()
            ),
        )
        with pytest.raises(ClientNotFound) as caught:
            await client.call(
                client.stub.GetAccount, pb.GetAccountRequest(name="tenants/acme/accounts/nope")
            )
    assert (caught.value.reason, caught.value.domain) == ("ACCOUNT_NOT_FOUND", DOMAIN)


async def test_an_idempotency_key_in_metadata_becomes_the_empty_request_id(stub):
    request = create_request("acme", "keyed")
    request.request_id = ""
    key = "0b5d2c4a-6e8f-4c1a-9e7f-6f1d3c1e8d4b"
    reply = await stub.CreateAccount(
        request,
        metadata=(*bearer(token("acme", "bookkeeper")), ("idempotency-key", key)),
    )
    assert reply.account.metadata["seen_request_id"] == key


async def test_a_mutating_call_without_any_request_id_names_the_missing_field(stub):
    request = create_request("acme", "unkeyed")
    request.request_id = ""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateAccount(request, metadata=bearer(token("acme", "bookkeeper")))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert details(caught.value)[0].metadata["field"] == "request_id"


def _scrape(port: int | None) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_red_metrics_count_each_rpc_by_status_and_are_scraped_from_metrics(stub, telemetry):
    viewer = bearer(token("acme", "viewer"))
    await stub.ListAccounts(pb.ListAccountsRequest(parent="tenants/acme"), metadata=viewer)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetAccount(
                pb.GetAccountRequest(name="tenants/acme/accounts/absent"), metadata=viewer
            )
    scraped = await asyncio.to_thread(_scrape, telemetry.metrics_port)
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in scraped.splitlines()
        if line.startswith("rpc_server_calls_total{")
    }

    def count(method: str, status: str) -> float:
        return sum(
            value
            for series, value in samples.items()
            if f'rpc_method="{method}"' in series and f'rpc_grpc_status="{status}"' in series
        )

    assert count("ListAccounts", "OK") >= 1
    assert count("GetAccount", "NOT_FOUND") >= 2
    assert count("GetAccount", "UNAUTHENTICATED") >= 1  # from the unauthenticated test
    assert "rpc_server_duration_milliseconds_bucket{" in scraped


async def test_a_served_call_continues_the_callers_trace_and_records_no_request_contents(
    stub, spans
):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    spans.clear()
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CreateAccount(
            create_request("acme", "traced", display_name="4111 1111 1111 1111"),
            metadata=(
                *bearer(token("acme", "bookkeeper")),
                ("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),
            ),
        )
    (span,) = await finished_spans(spans, "/CreateAccount")
    assert span.context is not None
    assert format(span.context.trace_id, "032x") == trace_id
    recorded = repr(dict(span.attributes or {})) + repr([e.attributes for e in span.events])
    assert "4111" not in recorded
    assert "traced" not in recorded  # no request fields at all, not only card numbers


async def finished_spans(spans: InMemorySpanExporter, suffix: str) -> list[Any]:
    """The finished spans named `...suffix`. A call that aborts sends its status before the
    server's span ends (grpc's abort sends, then raises): wait a little for the span."""
    for _ in range(200):
        found = [s for s in spans.get_finished_spans() if s.name.endswith(suffix)]
        if found:
            return found
        await asyncio.sleep(0.01)
    return []


async def test_a_generated_client_call_and_the_served_call_share_one_trace(server, spans):
    client_tracing = TracerProvider()
    client_tracing.add_span_processor(SimpleSpanProcessor(spans))
    spans.clear()
    async with create_channel(
        f"127.0.0.1:{server.port}", tracer_provider=client_tracing
    ) as channel:
        client = LedgerClient(
            channel,
            ClientSettings(token_provider=lambda: token("acme", "viewer")),
        )
        with client_tracing.get_tracer("test").start_as_current_span("checkout") as root:
            await client.call(
                client.stub.ListAccounts, pb.ListAccountsRequest(parent="tenants/acme")
            )
    finished = spans.get_finished_spans()
    served = [s for s in finished if s.kind is SpanKind.SERVER]
    calling = [s for s in finished if s.kind is SpanKind.CLIENT]
    assert len(served) == 1
    assert len(calling) == 1
    trace_id = root.get_span_context().trace_id
    assert {s.context.trace_id for s in (*served, *calling) if s.context} == {trace_id}
    assert served[0].parent is not None
    assert calling[0].context is not None
    assert served[0].parent.span_id == calling[0].context.span_id


async def test_the_callers_deadline_bounds_downstream_calls_made_while_serving(stub):
    reply = await stub.ListAccounts(
        pb.ListAccountsRequest(parent="tenants/acme"),
        metadata=bearer(token("acme", "viewer")),
        timeout=3.0,
    )
    assert 2.0 < float(reply.next_page_token) <= 3.1
    unbounded = await stub.ListAccounts(
        pb.ListAccountsRequest(parent="tenants/acme"), metadata=bearer(token("acme", "viewer"))
    )
    assert unbounded.next_page_token == ""
