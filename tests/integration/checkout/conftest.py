"""The real mesh behind checkout for its tests: the PSP sandbox, a ledger server, the payments
service (started by its own bootstrap) and checkout on migrated PostgreSQL databases; JWTs;
and a tenant-bound shopper client with shorthand for the checkout flow."""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from pydantic import SecretStr
from sqlalchemy.engine import URL

from commerce.checkout.v1 import checkout_service_pb2 as pb
from commerce.checkout.v1 import checkout_service_pb2_grpc as rpc
from commerce.checkout.v1 import resources_pb2 as res
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import ledger_service_pb2_grpc as lrpc
from commerce.payments.v1 import payments_service_pb2 as ppb
from commerce.payments.v1 import payments_service_pb2_grpc as prpc
from commerce.payments.v1 import routing_pb2 as rt
from commerce.type.v1.address_pb2 import Address
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money
from services.chassis.config import AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import drop_service_database, provision_service_database
from services.chassis.db.settings import DatabaseSettings
from services.chassis.server import RunningServer, start_server
from services.checkout import bootstrap as checkout_bootstrap
from services.checkout.config import ERROR_DOMAIN, CheckoutSettings, SagaSettings
from services.checkout.domain.ports import Checkpoint, ConfirmationCheck, captured_amount_matches
from services.ledger import bootstrap as ledger_bootstrap
from services.ledger.config import ERROR_DOMAIN as LEDGER_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner as LedgerRunner
from services.payments import bootstrap as payments_bootstrap
from services.payments.config import PaymentsSettings, PspSettings
from services.payments.sandbox.config import SandboxConfig
from services.payments.sandbox.server import RunningSandbox, start_sandbox

SECRET = "checkout-integration-test-hmac-secret-0123456789"
AUTH = AuthSettings(key=SecretStr(SECRET), algorithms=["HS256"])
PSP = "sandbox"


def token(tenant: str | None, *roles: str) -> str:
    now = int(time.time())
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
    return jwt.encode(claims, SECRET, algorithm="HS256")


def error_info(
    error: grpc.aio.AioRpcError, domain: str = ERROR_DOMAIN
) -> error_details_pb2.ErrorInfo:
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


def money(amount: int, currency: str = "USD") -> Money:
    return Money(currency_code=currency, amount_minor=amount)


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


@dataclass
class Mesh:
    """Everything checkout talks to, plus checkout's own migrated database."""

    sandbox: RunningSandbox
    ledger_port: int
    payments_port: int
    checkout_app_url: URL
    checkout_database: Database
    tmp: Path

    def set_psp(self, **knobs: Any) -> None:
        """Change the sandbox's behaviour now (e.g. error_rate=1.0: the PSP goes down)."""
        self.sandbox.state.config = dataclasses.replace(self.sandbox.state.config, **knobs)

    def psp_authorizations(self, order: str) -> list[Any]:
        """The PSP's own books: authorizations made for one order (by its description)."""
        order_id = order.rsplit("/", 1)[-1]
        return [
            a
            for a in self.sandbox.state.books.authorizations.values()
            if a.description == f"order {order_id}"
        ]


async def _provisioned(admin: URL, prefix: str, migrations: Path) -> tuple[str, URL, URL]:
    name = f"t_{prefix}_{secrets.token_hex(4)}"
    provisioned = await provision_service_database(admin, name)
    await upgrade(provisioned.owner_url, migrations)
    return name, provisioned.owner_url, provisioned.app_url


@pytest.fixture(scope="session")
async def mesh(postgres_admin_url, tmp_path_factory) -> AsyncIterator[Mesh]:
    """One mesh for the whole session (it takes seconds to start); tests keep apart by using
    a fresh tenant each."""
    tmp = tmp_path_factory.mktemp("checkout-mesh")
    sandbox = await start_sandbox(config=SandboxConfig(timeout_seconds=2.0))
    ledger_name, _, ledger_url = await _provisioned(
        postgres_admin_url, "cledger", ledger_bootstrap.MIGRATIONS
    )
    ledger_db = Database.connect(ledger_url, pool_size=10, max_overflow=20)
    ledger = await start_server(
        ServerSettings(port=0, grace_period_seconds=1, auth=AUTH),
        [ledger_bootstrap.registration(LedgerRunner(ledger_db))],
        error_domain=LEDGER_DOMAIN,
    )
    pay_name, pay_owner, pay_app = await _provisioned(
        postgres_admin_url, "cpay", payments_bootstrap.MIGRATIONS
    )
    credentials = tmp / "psps.toml"
    credentials.write_text(f'[psps.{PSP}]\nkind = "sandbox"\nbase_url = "{sandbox.url}"\n')
    payments = await payments_bootstrap.start(
        PaymentsSettings(
            port=0,
            grace_period_seconds=1,
            auth=AUTH,
            ledger_addr=f"127.0.0.1:{ledger.port}",
            resolve_interval_seconds=0.5,
            psp=PspSettings(
                credentials_file=credentials,
                attempt_timeout_seconds=1.0,
                deadline_seconds=4.0,
                max_attempts=2,
                initial_backoff_seconds=0.01,
                max_backoff_seconds=0.05,
                breaker_threshold=1000,  # the tests switch the PSP off and on at will
            ),
        ),
        DatabaseSettings(
            url=SecretStr(url_text(pay_app)),
            owner_url=SecretStr(url_text(pay_owner)),
            pool_size=20,
            max_overflow=20,
        ),
    )
    checkout_name, _, checkout_app = await _provisioned(
        postgres_admin_url, "checkout", checkout_bootstrap.MIGRATIONS
    )
    checkout_db = Database.connect(checkout_app, pool_size=20, max_overflow=30)
    try:
        yield Mesh(sandbox, ledger.port, payments.server.port, checkout_app, checkout_db, tmp)
    finally:
        await checkout_db.dispose()
        await payments.server.stop()
        await ledger.stop()
        await ledger_db.dispose()
        await sandbox.close()
        await drop_service_database(postgres_admin_url, checkout_name)
        await drop_service_database(postgres_admin_url, pay_name)
        await drop_service_database(postgres_admin_url, ledger_name)


def checkout_settings(mesh: Mesh, **saga: Any) -> CheckoutSettings:
    fast = {"base_delay_seconds": 0.02, "max_delay_seconds": 0.2, "lease_seconds": 2.0}
    return CheckoutSettings(
        port=0,
        grace_period_seconds=1,
        auth=AUTH,
        payments_addr=f"127.0.0.1:{mesh.payments_port}",
        payments_timeout_seconds=8.0,
        saga=SagaSettings(recover_in_server=False, **{**fast, **saga}),
    )


@dataclass
class CheckoutServer:
    server: RunningServer
    process: Any
    stub: rpc.CheckoutServiceStub
    channel: grpc.aio.Channel


StartCheckout = Callable[..., Awaitable[CheckoutServer]]


@pytest.fixture(scope="session")
async def start_checkout(mesh) -> AsyncIterator[StartCheckout]:
    """`await start_checkout(confirmation=..., checkpoint=..., **saga settings)`: an in-process
    checkout server over the session's database and the real payments service."""
    started: list[tuple[CheckoutServer, Any]] = []

    async def start(
        confirmation: ConfirmationCheck = captured_amount_matches,
        checkpoint: Checkpoint | None = None,
        **saga: Any,
    ) -> CheckoutServer:
        settings = checkout_settings(mesh, **saga)
        client, channel = checkout_bootstrap.payments_client(settings)
        runner, leases, saga_engine = checkout_bootstrap.build_saga(
            settings, mesh.checkout_database, client, confirmation, checkpoint
        )
        api = checkout_bootstrap.build_api(settings, runner, saga_engine)
        server = await start_server(
            settings, [checkout_bootstrap.registration(api)], error_domain=ERROR_DOMAIN
        )
        server.on_drain.append(api.drain)
        stub_channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        running = CheckoutServer(
            server, (runner, leases, saga_engine), rpc.CheckoutServiceStub(stub_channel), channel
        )
        started.append((running, stub_channel))
        return running

    yield start
    for running, stub_channel in started:
        await stub_channel.close()
        await running.server.stop()
        await running.channel.close(None)


@pytest.fixture(scope="session")
async def checkout(start_checkout) -> CheckoutServer:
    server: CheckoutServer = await start_checkout()
    return server


class Shopper:
    """One fresh tenant (routed to the sandbox PSP) with shorthand for the checkout flow."""

    def __init__(self, mesh: Mesh, stub: rpc.CheckoutServiceStub, tenant: str) -> None:
        self.mesh = mesh
        self.stub = stub
        self.tenant = tenant
        self.parent = f"tenants/{tenant}"
        self.metadata = (("authorization", f"Bearer {token(tenant)}"),)

    money = staticmethod(money)
    error_info = staticmethod(error_info)

    def with_stub(self, stub: rpc.CheckoutServiceStub) -> Shopper:
        return Shopper(self.mesh, stub, self.tenant)

    async def call(self, method: str, request: Any, **kwargs: Any) -> Any:
        return await getattr(self.stub, method)(request, metadata=self.metadata, **kwargs)

    async def fails(self, method: str, request: Any) -> tuple[grpc.StatusCode, Any]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.call(method, request)
        return caught.value.code(), error_info(caught.value)

    @staticmethod
    def line(sku: str = "mug", quantity: int = 1, price: int = 1250, **fields: Any):
        currency = fields.pop("currency", "USD")
        return res.CheckoutLine(
            sku=sku, quantity=quantity, unit_price=money(price, currency), **fields
        )

    def create_request(self, *lines: res.CheckoutLine, **fields: Any) -> pb.CreateCheckoutRequest:
        checkout = res.Checkout(
            customer=CustomerRef(customer_id=fields.pop("customer_id", "c-1")),
            currency_code=fields.pop("currency", "USD"),
            lines=list(lines) or [self.line()],
            **fields,
        )
        if "shipping_address" not in fields and "billing_address" not in fields:
            checkout.shipping_address.CopyFrom(Address(region_code="US", administrative_area="CA"))
        return pb.CreateCheckoutRequest(
            parent=self.parent, checkout=checkout, request_id=str(uuid.uuid4())
        )

    async def create(self, *lines: res.CheckoutLine, **fields: Any) -> res.Checkout:
        reply = await self.call("CreateCheckout", self.create_request(*lines, **fields))
        created: res.Checkout = reply.checkout
        return created

    async def quote(self, checkout: res.Checkout) -> res.Checkout:
        reply = await self.call(
            "QuoteCheckout",
            pb.QuoteCheckoutRequest(
                name=checkout.name, etag=checkout.etag, request_id=str(uuid.uuid4())
            ),
        )
        quoted: res.Checkout = reply.checkout
        return quoted

    def place_request(
        self,
        checkout: res.Checkout,
        token: str = "pm_sandbox_ok",  # noqa: S107 - a PSP test token, not a password
        request_id: str | None = None,
    ) -> pb.PlaceOrderRequest:
        return pb.PlaceOrderRequest(
            name=checkout.name,
            request_id=request_id or str(uuid.uuid4()),
            etag=checkout.etag,
            quote_id=checkout.quote.quote_id,
            payment_method_token=token,
        )

    async def quoted(self, *lines: res.CheckoutLine, **fields: Any) -> res.Checkout:
        return await self.quote(await self.create(*lines, **fields))

    async def order(self, name: str) -> Any:
        return (await self.call("GetOrder", pb.GetOrderRequest(name=name))).order

    # --- the other services' view ---------------------------------------------------------

    async def payments_for(self, order: str) -> list[Any]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.mesh.payments_port}") as channel:
            reply = await prpc.PaymentsServiceStub(channel).ListPayments(
                ppb.ListPaymentsRequest(parent=self.parent, order=order, page_size=50),
                metadata=self.metadata,
            )
        return list(reply.payments)

    async def ledger_balance(self, account: str) -> Any:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.mesh.ledger_port}") as channel:
            try:
                reply = await lrpc.LedgerServiceStub(channel).GetAccountBalance(
                    lpb.GetAccountBalanceRequest(account=f"{self.parent}/accounts/{account}"),
                    metadata=self.metadata,
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    return None  # never opened: nothing moved
                raise
        return reply.balance


async def route_to_sandbox(mesh: Mesh, tenant: str) -> None:
    metadata = (("authorization", f"Bearer {token(tenant)}"),)
    name = f"tenants/{tenant}/routingConfig"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.payments_port}") as channel:
        stub = prpc.PaymentsServiceStub(channel)
        current = await stub.GetRoutingConfig(
            ppb.GetRoutingConfigRequest(name=name), metadata=metadata
        )
        await stub.UpdateRoutingConfig(
            ppb.UpdateRoutingConfigRequest(
                routing_config=rt.RoutingConfig(
                    name=name, default_psps=[PSP], etag=current.routing_config.etag
                ),
                request_id=str(uuid.uuid4()),
            ),
            metadata=metadata,
        )


@pytest.fixture
async def shopper(mesh, checkout) -> Shopper:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    await route_to_sandbox(mesh, tenant)
    return Shopper(mesh, checkout.stub, tenant)


@pytest.fixture
async def another_shopper(mesh, checkout) -> Shopper:
    """A second fresh tenant, to prove tenants never see each other's resources."""
    tenant = f"t{uuid.uuid4().hex[:10]}"
    await route_to_sandbox(mesh, tenant)
    return Shopper(mesh, checkout.stub, tenant)


@pytest.fixture
def jwt_secret() -> str:
    """The HMAC key every test server verifies tokens with (for processes the test starts)."""
    return SECRET
