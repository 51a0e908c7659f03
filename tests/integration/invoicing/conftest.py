"""A real invoicing for the tests: migrated PostgreSQL, the real servicer on a chassis server,
JWTs, a tenant-bound client, the Pub/Sub API server (pstest build), tie-out views over
payments/ledger data the test controls, and a real ledger server (its own database) for the
ledger poster and the tie-out over real postings."""

from __future__ import annotations

import json
import os
import secrets
import time
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import jwt
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from clients.base import ClientSettings
from clients.services import LedgerClient
from commerce.checkout.v1 import events_pb2 as checkout_events
from commerce.checkout.v1 import quote_pb2
from commerce.invoicing.v1 import invoicing_service_pb2 as pb
from commerce.invoicing.v1 import invoicing_service_pb2_grpc as rpc
from commerce.invoicing.v1 import resources_pb2 as res
from commerce.ledger.v1 import ledger_service_pb2 as lpb
from commerce.ledger.v1 import ledger_service_pb2_grpc as lrpc
from commerce.ledger.v1 import resources_pb2 as lres
from commerce.type.v1.ids_pb2 import CustomerRef
from commerce.type.v1.money_pb2 import Money
from services.chassis.card_data import looks_like_card_number
from services.chassis.config import DEFAULT_RBAC_POLICY, AuthSettings, ServerSettings
from services.chassis.db.database import Database
from services.chassis.db.migrations import upgrade
from services.chassis.db.provision import drop_service_database, provision_service_database
from services.chassis.db.settings import libpq_conninfo
from services.chassis.events.emulator import EMULATOR_HOST_ENV, PubSubEmulator
from services.chassis.server import RunningServer, start_server
from services.invoicing.bootstrap import MIGRATIONS, registration
from services.invoicing.config import ERROR_DOMAIN
from services.invoicing.domain.ports import LedgerView, PaymentsView
from services.invoicing.domain.tie_out import CapturedPayment, LedgerPosting, RefundRecord
from services.invoicing.storage.unit_of_work import SqlTransactionRunner
from services.invoicing.tie_out import TieOutService
from services.ledger import bootstrap as ledger_bootstrap
from services.ledger.config import ERROR_DOMAIN as LEDGER_DOMAIN
from services.ledger.storage.unit_of_work import SqlTransactionRunner as LedgerRunner

SECRET = "invoicing-integration-test-hmac-secret-0123456789"


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


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1
    assert infos[0].domain == ERROR_DOMAIN
    return infos[0]


def money(amount: int, currency: str = "EUR") -> Money:
    return Money(currency_code=currency, amount_minor=amount)


def vat(rate_ppm: int = 190000) -> res.TaxRate:
    return res.TaxRate(jurisdiction="DE", tax_name="VAT", rate_ppm=rate_ppm)


def line(description: str, quantity: int, unit: int, *rates: res.TaxRate, **extra: Any):
    return res.InvoiceLine(
        description=description,
        quantity=quantity,
        unit_price=money(unit),
        tax_rates=list(rates),
        **extra,
    )


class InvoicingClient:
    """The generated stub bound to one tenant's token, with shorthand for common calls."""

    money = staticmethod(money)
    vat = staticmethod(vat)
    line = staticmethod(line)
    error_info = staticmethod(error_info)

    def __init__(self, stub: rpc.InvoicingServiceStub, tenant: str) -> None:
        self.stub = stub
        self.tenant = tenant
        self.parent = f"tenants/{tenant}"
        self.metadata = (("authorization", f"Bearer {token(tenant)}"),)

    @staticmethod
    def rid() -> str:
        """A fresh request id the server's card-number guard cannot mistake for a PAN (a few
        random UUIDs hold a digit run that passes Luhn)."""
        while True:
            candidate = str(uuid.uuid4())
            if not looks_like_card_number(candidate):
                return candidate

    async def call(self, method: str, request: Any) -> Any:
        return await getattr(self.stub, method)(request, metadata=self.metadata)

    async def fails(self, method: str, request: Any):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.call(method, request)
        return caught.value.code(), error_info(caught.value)

    async def draft(self, *lines: res.InvoiceLine, currency: str = "EUR", **fields: Any):
        reply = await self.call(
            "CreateInvoice",
            pb.CreateInvoiceRequest(
                parent=self.parent,
                invoice=res.Invoice(
                    customer=CustomerRef(customer_id="cust-1", display_name="Ada Lovelace"),
                    currency_code=currency,
                    lines=list(lines) or [line("Widget", 2, 1000, vat())],
                    **fields,
                ),
                request_id=self.rid(),
            ),
        )
        return reply.invoice

    async def issue(self, name: str):
        reply = await self.call(
            "IssueInvoice", pb.IssueInvoiceRequest(name=name, request_id=self.rid())
        )
        return reply.invoice

    async def issued(self, *lines: res.InvoiceLine, **fields: Any):
        return await self.issue((await self.draft(*lines, **fields)).name)


@pytest.fixture(scope="module")
async def invoicing_db(service_database) -> Any:
    """The module's service database, migrated to invoicing's head."""
    await upgrade(service_database.owner_url, MIGRATIONS)
    return service_database


@pytest.fixture(scope="module")
async def app_db(invoicing_db) -> AsyncIterator[Database]:
    database = Database.connect(invoicing_db.app_url, pool_size=10, max_overflow=10)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def runner(app_db) -> SqlTransactionRunner:
    return SqlTransactionRunner(app_db)


class Views:
    """Payments' and the ledger's records, as the test sets them: real implementations of the
    tie-out ports over data the test controls (the gRPC adapters need the real mesh)."""

    def __init__(self) -> None:
        self.captures: list[CapturedPayment] = []
        self.refund_records: list[RefundRecord] = []
        self.postings: list[LedgerPosting] = []


class StaticPayments(PaymentsView):
    """Payments' view of one tenant (names start with `tenants/{tenant}/`)."""

    def __init__(self, views: Views, tenant: str) -> None:
        self._views = views
        self._prefix = f"tenants/{tenant}/"

    def _captures(self) -> list[CapturedPayment]:
        return [c for c in self._views.captures if c.payment.startswith(self._prefix)]

    def _refunds(self) -> list[RefundRecord]:
        return [r for r in self._views.refund_records if r.refund.startswith(self._prefix)]

    async def captured_between(self, start: datetime, end: datetime) -> list[CapturedPayment]:
        return [c for c in self._captures() if start <= c.capture_time < end]

    async def payments(self, names):
        return [c for c in self._captures() if c.payment in set(names)]

    async def refunds_between(self, start: datetime, end: datetime) -> list[RefundRecord]:
        return [r for r in self._refunds() if start <= r.refund_time < end]

    async def refunds(self, names):
        return [r for r in self._refunds() if r.refund in set(names)]


class StaticLedger(LedgerView):
    """The ledger's view of one tenant (entries named `tenants/{tenant}/...`)."""

    def __init__(self, views: Views, tenant: str) -> None:
        self._views = views
        self._prefix = f"tenants/{tenant}/"

    async def postings_between(self, start: datetime, end: datetime) -> list[LedgerPosting]:
        return [
            p
            for p in self._views.postings
            if p.entry.startswith(self._prefix) and start <= p.post_time < end
        ]


@pytest.fixture(scope="module")
def views() -> Views:
    return Views()


@pytest.fixture(scope="module")
async def invoicing_server(runner, views) -> AsyncIterator[RunningServer]:
    settings = ServerSettings(
        port=0, grace_period_seconds=1, auth=AuthSettings(key=SECRET, algorithms=["HS256"])
    )
    tie_out = TieOutService(
        runner, lambda tenant, _md: (StaticPayments(views, tenant), StaticLedger(views, tenant))
    )
    running = await start_server(
        settings, [registration(runner, tie_out)], error_domain=ERROR_DOMAIN
    )
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def stub(invoicing_server) -> AsyncIterator[rpc.InvoicingServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{invoicing_server.port}") as channel:
        yield rpc.InvoicingServiceStub(channel)


@pytest.fixture
def invoicing(stub) -> InvoicingClient:
    """A client of a fresh tenant (tenants never see each other's documents)."""
    return InvoicingClient(stub, f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def bearer_token():
    """`bearer_token(tenant)`: a tenant admin's JWT for this server."""
    return token


@pytest.fixture
def client_for(stub):
    """`client_for(tenant)`: a client of that tenant."""
    return lambda tenant: InvoicingClient(stub, tenant)


@pytest.fixture
def owner_sql(invoicing_db):
    """Run SQL as the database owner, as a tenant (the tables are under RLS)."""

    async def run(statement: str, params=(), *, tenant: str):
        async with await psycopg.AsyncConnection.connect(
            libpq_conninfo(invoicing_db.owner_url), autocommit=True
        ) as conn:
            await conn.execute("SELECT set_config('app.tenant_id', %s, false)", [tenant])
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall() if cursor.description else []

    return run


@pytest.fixture(scope="session")
def pubsub_emulator():
    """One emulator process for the session; clients find it through PUBSUB_EMULATOR_HOST."""
    previous = os.environ.get(EMULATOR_HOST_ENV)
    with PubSubEmulator() as emulator:
        os.environ[EMULATOR_HOST_ENV] = emulator.host
        try:
            yield emulator
        finally:
            if previous is None:
                os.environ.pop(EMULATOR_HOST_ENV, None)
            else:
                os.environ[EMULATOR_HOST_ENV] = previous


def eur(amount: int) -> Money:
    return Money(currency_code="EUR", amount_minor=amount)


def completed(tenant: str, order_id: str) -> checkout_events.CheckoutCompleted:
    taxes = [
        quote_pb2.TaxLine(
            jurisdiction="DE",
            tax_name="VAT",
            rate_ppm=190000,
            taxable_amount=eur(3998),
            tax_amount=eur(760),
        )
    ]
    line = quote_pb2.QuoteLine(
        line_id="l1",
        sku="SKU-1",
        description="Widget",
        quantity=2,
        unit_price=eur(1999),
        subtotal=eur(3998),
        discount_amount=eur(0),
        net_amount=eur(3998),
        tax_amount=eur(760),
        total=eur(4758),
        taxes=taxes,
    )
    stamp = datetime.now(UTC)
    event = checkout_events.CheckoutCompleted(
        order=f"tenants/{tenant}/orders/{order_id}",
        checkout=f"tenants/{tenant}/checkouts/c-{order_id}",
        customer=CustomerRef(customer_id="cust-9", display_name="Grace Hopper"),
        currency_code="EUR",
        lines=[line],
        tax_breakdown=taxes,
        subtotal=eur(3998),
        discount_total=eur(0),
        tax_total=eur(760),
        total=eur(4758),
        payment=f"tenants/{tenant}/payments/pay-{order_id}",
        capture_reference="psp-cap-1",
        captured_amount=eur(4758),
    )
    event.complete_time.FromDatetime(stamp)
    event.event_time.FromDatetime(stamp)
    return event


@pytest.fixture
def checkout_completed():
    """`checkout_completed(tenant, order_id)`: the CheckoutCompleted checkout would publish for
    an order of two widgets at 19.99 EUR plus 19 % VAT, captured in full (47.58 EUR)."""
    return completed


# --- a real ledger server for the poster and the tie-out over real postings ----------------

# What `service:invoicing` needs on top of the default policy to post its journals (the
# proposed rbac.toml change, ADR 0015): open its accounts and create entries.
INVOICING_LEDGER_GRANTS = ("ledger.accounts.create", "ledger.entries.create")


def policy_with_poster_grants(path: Path) -> Path:
    """The default RBAC policy plus INVOICING_LEDGER_GRANTS for `service:invoicing`."""
    with DEFAULT_RBAC_POLICY.open("rb") as handle:
        roles = dict(tomllib.load(handle)["roles"])
    roles["service:invoicing"] = [*roles["service:invoicing"], *INVOICING_LEDGER_GRANTS]
    lines = ["[roles]"] + [f"{json.dumps(role)} = {json.dumps(p)}" for role, p in roles.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class LedgerServer:
    port: int
    database: Database
    stub: lrpc.LedgerServiceAsyncStub
    channel: grpc.aio.Channel

    def client(self, *roles: str, tenant: str | None = None) -> LedgerClient:
        """The typed client as a service identity (`roles`), on the shared channel."""
        return LedgerClient(
            self.channel, ClientSettings(token_provider=lambda: token(tenant, *roles))
        )

    async def balance(self, tenant: str, account: str) -> int:
        """The account's posted balance, debits positive (0 for an account never opened)."""
        try:
            reply = await self.stub.GetAccountBalance(
                lpb.GetAccountBalanceRequest(account=f"tenants/{tenant}/accounts/{account}"),
                metadata=(("authorization", f"Bearer {token(tenant)}"),),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return 0
            raise
        b = reply.balance
        return b.debits_posted.amount_minor - b.credits_posted.amount_minor

    async def accounts(self, tenant: str) -> list[str]:
        names: list[str] = []
        page = ""
        while True:
            reply = await self.stub.ListAccounts(
                lpb.ListAccountsRequest(parent=f"tenants/{tenant}", page_size=100, page_token=page),
                metadata=(("authorization", f"Bearer {token(tenant)}"),),
            )
            names += [a.name.rsplit("/", 1)[-1] for a in reply.accounts]
            page = reply.next_page_token
            if not page:
                return names

    async def entries(self, tenant: str) -> list[lres.JournalEntry]:
        out: list[lres.JournalEntry] = []
        page = ""
        while True:
            reply = await self.stub.ListJournalEntries(
                lpb.ListJournalEntriesRequest(
                    parent=f"tenants/{tenant}", page_size=100, page_token=page
                ),
                metadata=(("authorization", f"Bearer {token(tenant)}"),),
            )
            out += list(reply.journal_entries)
            page = reply.next_page_token
            if not page:
                return out


@pytest.fixture(scope="module")
async def ledger_server(postgres_admin_url, tmp_path_factory) -> AsyncIterator[LedgerServer]:
    """A real ledger server (its own provisioned, migrated database) whose RBAC policy is the
    default plus the invoicing poster's grants."""
    name = f"t_iledger_{secrets.token_hex(4)}"
    provisioned = await provision_service_database(postgres_admin_url, name)
    await upgrade(provisioned.owner_url, ledger_bootstrap.MIGRATIONS)
    database = Database.connect(provisioned.app_url, pool_size=5, max_overflow=5)
    policy = policy_with_poster_grants(tmp_path_factory.mktemp("rbac") / "rbac.toml")
    settings = ServerSettings(
        port=0,
        grace_period_seconds=1,
        auth=AuthSettings(key=SECRET, algorithms=["HS256"], rbac_policy_file=policy),
    )
    server = await start_server(
        settings,
        [ledger_bootstrap.registration(LedgerRunner(database))],
        error_domain=LEDGER_DOMAIN,
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield LedgerServer(server.port, database, lrpc.LedgerServiceStub(channel), channel)
    finally:
        await channel.close(None)
        await server.stop()
        await database.dispose()
        await drop_service_database(postgres_admin_url, name)
